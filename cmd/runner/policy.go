package main

import (
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit/internal/policy"
)

// policyCmd is `runner policy check FILE`.
func policyCmd(args []string) int {
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprint(os.Stderr, "usage: runner policy check FILE\n")
		return 2
	}
	if err := policy.CheckFile(os.Stdout, args[1]); err != nil {
		return 1
	}
	return 0
}
