package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit/internal/detect"
)

// importSigmaCmd is `detect import-sigma [-o FILE] SIGMA.yml…`.
func importSigmaCmd(args []string) int {
	fs := flag.NewFlagSet("detect import-sigma", flag.ContinueOnError)
	out := fs.String("o", "", "write the rule file here instead of standard output")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: detect import-sigma [-o FILE] SIGMA.yml...\n\n"+
			"Converts Sigma rules (process_creation on Linux; proxy, network_connection, firewall)\n"+
			"into one rule file with a firing and a non-firing test per rule. Refused constructs\n"+
			"are named on standard error and make the exit status 1.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return detect.ExitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return detect.ExitUsage
	}
	return detect.ImportSigmaCommand(fs.Args(), *out, os.Stdout, os.Stderr)
}
