// Command detect is the detection engineers' CLI: `detect test DIR` runs
// every rule's inline tests, `detect lint DIR` checks a rule directory.
package main

import (
	"fmt"
	"os"
)

const usage = `usage:
  detect test DIR   load the rules in DIR, run their inline tests, print a table
  detect lint DIR   report load errors, unused lists and macros, rules that cannot match their tests
`

func main() {
	if len(os.Args) != 3 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var code int
	switch os.Args[1] {
	case "test":
		code = runTest(os.Args[2])
	case "lint":
		code = runLint(os.Args[2])
	default:
		fmt.Fprint(os.Stderr, usage)
		code = 2
	}
	os.Exit(code)
}
