package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit/internal/detect"
)

// dirCmd parses the flags of `detect test` and `detect lint`: one rule
// directory and an optional override file.
func dirCmd(name string, args []string) (dir string, opts []detect.LoadOption, code int) {
	fs := flag.NewFlagSet("detect "+name, flag.ContinueOnError)
	overrides := overridesFlag(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: detect %s [--overrides FILE] DIR\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return "", nil, detect.ExitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return "", nil, detect.ExitUsage
	}
	return fs.Arg(0), []detect.LoadOption{detect.WithOverrides(*overrides)}, -1
}

// runTest is `detect test [--overrides FILE] DIR`.
func runTest(args []string) int {
	dir, opts, code := dirCmd("test", args)
	if code >= 0 {
		return code
	}
	return detect.TestCommand(dir, os.Stdout, os.Stderr, opts...)
}
