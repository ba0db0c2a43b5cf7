package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCommand builds the binary and checks what needs no data: the report
// list, the refusal of writes before connecting, and the exit statuses.
func TestCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "query")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tests := []struct {
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{[]string{"report", "--list"}, 0, []string{"activity", "approvals", "unapproved_actions", "yes (must be empty)",
			"denied_egress", "alerts", "chain_breaks", "top_commands", "policy_versions", "@lookback_hours UInt32 = 24"}, nil},
		{[]string{"sql", "DROP TABLE events"}, 2, nil, []string{"only read statements are allowed: DROP is not a read statement"}},
		{[]string{"sql", "--param", "n:UInt8=300", "SELECT @n"}, 2, nil, []string{"bad parameter: n"}},
		{[]string{"report", "no_such_report", "--from", "-1h"}, 2, nil, []string{"unknown report"}},
		{[]string{"report", "activity", "--from", "yesterday"}, 2, nil, []string{"--from: query: bad time"}},
		{[]string{"report", "activity", "--format", "xml"}, 2, nil, []string{"--format: query: unknown format"}},
		{[]string{"frobnicate"}, 2, nil, []string{"usage:"}},
	}
	for _, tc := range tests {
		cmd := exec.Command(bin, tc.args...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code {
			t.Errorf("query %v: exit %d, want %d\nstderr: %s", tc.args, code, tc.code, stderr.String())
		}
		for _, want := range tc.stdout {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("query %v: stdout lacks %q:\n%s", tc.args, want, stdout.String())
			}
		}
		for _, want := range tc.stderr {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("query %v: stderr lacks %q:\n%s", tc.args, want, stderr.String())
			}
		}
	}
}

// TestPeriodEndNow: the default end, now, includes what was recorded in the
// current second (event times are whole seconds and the end is excluded);
// an explicit end is taken as given.
func TestPeriodEndNow(t *testing.T) {
	now := time.Date(2026, 12, 6, 11, 52, 36, 700_000_000, time.UTC)
	cases := []struct {
		from, to string
		want     time.Time
	}{
		{"-1h", "now", time.Date(2026, 12, 6, 11, 52, 37, 0, time.UTC)},
		{"-1h", " now ", time.Date(2026, 12, 6, 11, 52, 37, 0, time.UTC)},
		{"-1h", "-1s", time.Date(2026, 12, 6, 11, 52, 35, 0, time.UTC)},
		{"-1h", "2026-12-06T11:52:36Z", time.Date(2026, 12, 6, 11, 52, 36, 0, time.UTC)},
	}
	for _, tc := range cases {
		p := period{from: tc.from, to: tc.to}
		got, err := p.value(now)
		if err != nil {
			t.Fatal(err)
		}
		if !got.To.Equal(tc.want) {
			t.Errorf("--to %q at %s: end %s, want %s", tc.to, now.Format(time.RFC3339Nano), got.To.Format(time.RFC3339), tc.want.Format(time.RFC3339))
		}
	}
}
