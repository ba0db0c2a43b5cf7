package main

import (
	"os"

	"github.com/agentaudit/agentaudit/internal/detect"
)

// runTest is `detect test DIR`.
func runTest(dir string) int { return detect.TestCommand(dir, os.Stdout, os.Stderr) }
