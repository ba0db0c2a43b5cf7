// Command faulttable prints the fault suite's report (the JSON lines
// faultreport.Record appended to a file) as a Markdown table, to stdout
// and, with -o, to a file.
//
//	faulttable [-o faults.md] report.jsonl
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit/internal/faults"
)

func main() {
	out := flag.String("o", "", "also write the table to this `file`")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: faulttable [-o file.md] report.jsonl")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out); err != nil {
		fmt.Fprintln(os.Stderr, "faulttable:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	cases, err := faults.Load(in)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := faults.Markdown(&b, cases); err != nil {
		return err
	}
	os.Stdout.Write(b.Bytes())
	if out != "" {
		return os.WriteFile(out, b.Bytes(), 0o644)
	}
	return nil
}
