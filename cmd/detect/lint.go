package main

import (
	"os"

	"github.com/agentaudit/agentaudit/internal/detect"
)

// runLint is `detect lint DIR`.
func runLint(dir string) int { return detect.LintCommand(dir, os.Stdout, os.Stderr) }
