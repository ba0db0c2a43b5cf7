package main

import (
	"os"

	"github.com/agentaudit/agentaudit/internal/detect"
)

// runLint is `detect lint [--overrides FILE] DIR`.
func runLint(args []string) int {
	dir, opts, code := dirCmd("lint", args)
	if code >= 0 {
		return code
	}
	return detect.LintCommand(dir, os.Stdout, os.Stderr, opts...)
}
