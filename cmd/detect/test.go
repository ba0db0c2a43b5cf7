package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit/internal/detect"
	"github.com/agentaudit/agentaudit/internal/envflag"
)

// dirCmd parses the flags of `detect test` and `detect lint`: one rule
// directory and an optional override file.
func dirCmd(name string, args []string) (dir string, opts []detect.LoadOption, code int) {
	fs := envflag.New("detect "+name, flag.ContinueOnError)
	var overrides string
	overridesFlag(fs, &overrides)
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
	return fs.Arg(0), []detect.LoadOption{detect.WithOverrides(overrides)}, -1
}

// runTest is `detect test [--overrides FILE] DIR`.
func runTest(args []string) int {
	dir, opts, code := dirCmd("test", args)
	if code >= 0 {
		return code
	}
	return detect.TestCommand(dir, os.Stdout, os.Stderr, opts...)
}
