package ingest

import (
	"os"
	"strconv"
	"syscall"
)

// CrashAfterInsertEnv is a test-only hook: when set to N in the
// ingester's environment, the process kills itself with SIGKILL right
// after its N-th events insert returned and before that batch's offsets
// are committed, the worst moment for exactly-once effect. Fault tests
// use it to crash deterministically; nothing else should set it.
const CrashAfterInsertEnv = "AGENTAUDIT_INGEST_TEST_CRASH_AFTER_INSERT"

type crashHook struct{ afterN int }

func crashHookFromEnv() crashHook {
	n, _ := strconv.Atoi(os.Getenv(CrashAfterInsertEnv))
	return crashHook{afterN: n}
}

func (h crashHook) afterInsert(n int) {
	if h.afterN > 0 && n >= h.afterN {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
