package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit/internal/detect"
)

// docsCmd is `detect docs`: the rule language reference, generated from
// the rule loader and the event types (checked in as docs/rules.md).
func docsCmd(args []string) int {
	fs := flag.NewFlagSet("detect docs", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: detect docs\n\nPrints the rule language reference as Markdown (docs/rules.md).\n")
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return detect.ExitUsage
	}
	if _, err := os.Stdout.Write(detect.RuleReference()); err != nil {
		return detect.ExitFail
	}
	return detect.ExitOK
}
