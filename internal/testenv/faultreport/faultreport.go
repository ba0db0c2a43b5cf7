// Package faultreport records the outcome of each fault-suite case, so
// `make faults` can print one table of events produced, stored and
// dead-lettered across every package's TestFault… tests.
package faultreport

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
)

// EnvFile names the file Record appends to, one JSON object a line. When
// it is unset, Record only logs.
const EnvFile = "AGENTAUDIT_FAULT_REPORT"

// Case is one fault case's accounting. Produced counts the events the
// case's writers had acknowledged (or, for bypass attempts, the attempts
// made); Stored what reached the store (ClickHouse rows, or the topic when
// the case ends there); DLQ what was dead-lettered. Lost and Duplicated
// are what the case found missing or doubled; either non-zero fails it.
type Case struct {
	Name       string `json:"name"`
	Package    string `json:"package,omitempty"`
	Produced   int64  `json:"produced"`
	Stored     int64  `json:"stored"`
	DLQ        int64  `json:"dlq"`
	Lost       int64  `json:"lost"`
	Duplicated int64  `json:"duplicated"`
	// Detail is one line on what the fault was and what held (for
	// example "broker stopped 8 s mid-load; 3 retries").
	Detail string `json:"detail,omitempty"`
	Passed bool   `json:"passed"`
}

var mu sync.Mutex

// Record logs c on t, fails t when c lost or doubled events, and appends
// c to the report file. Call it once per case, after the case's checks.
func Record(t testing.TB, c Case) {
	t.Helper()
	if c.Name == "" {
		c.Name = t.Name()
	}
	if c.Lost != 0 || c.Duplicated != 0 {
		t.Errorf("fault case %s: %d lost, %d duplicated", c.Name, c.Lost, c.Duplicated)
	}
	c.Passed = !t.Failed()
	t.Logf("fault case %s: produced %d, stored %d, dlq %d, lost %d, duplicated %d; %s",
		c.Name, c.Produced, c.Stored, c.DLQ, c.Lost, c.Duplicated, c.Detail)
	path := os.Getenv(EnvFile)
	if path == "" {
		return
	}
	line, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("faultreport: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatalf("faultreport: %v", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s\n", line); err != nil {
		t.Fatalf("faultreport: %v", err)
	}
}
