package faults

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

func TestReadAndMarkdown(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{
			name: "pass and fail",
			in: `{"name":"kafka killed","package":"internal/faults","produced":10,"stored":10,"dlq":0,"lost":0,"duplicated":0,"detail":"down 9s","passed":true}

{"name":"a|b","produced":3,"stored":2,"dlq":1,"lost":1,"duplicated":0,"detail":"x\ny","passed":false}
`,
			want: "| case | package | produced | stored | dlq | lost | duplicated | result | detail |\n" +
				"|---|---|---:|---:|---:|---:|---:|---|---|\n" +
				"| kafka killed | internal/faults | 10 | 10 | 0 | 0 | 0 | pass | down 9s |\n" +
				"| a\\|b |  | 3 | 2 | 1 | 1 | 0 | FAIL | x y |\n" +
				"\n2 cases, 1 passed, 1 failed.\n",
		},
		{
			// A case that doubled events fails even if its test passed.
			name: "duplicates fail",
			in:   `{"name":"c","produced":1,"stored":1,"duplicated":1,"passed":true}`,
			want: "| case | package | produced | stored | dlq | lost | duplicated | result | detail |\n" +
				"|---|---|---:|---:|---:|---:|---:|---|---|\n" +
				"| c |  | 1 | 1 | 0 | 0 | 1 | FAIL |  |\n" +
				"\n1 cases, 0 passed, 1 failed.\n",
		},
		{name: "empty", in: "", want: "| case | package | produced | stored | dlq | lost | duplicated | result | detail |\n" +
			"|---|---|---:|---:|---:|---:|---:|---|---|\n\n0 cases, 0 passed, 0 failed.\n"},
		{name: "not a case", in: "{oops\n", err: ErrReport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cases, err := Read(strings.NewReader(tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("Read: %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			var b strings.Builder
			if err := Markdown(&b, cases); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, b.String()); d != "" {
				t.Errorf("table (-want +got):\n%s", d)
			}
		})
	}
}

// The report the table reads is the one faultreport writes.
func TestRecordRoundTrip(t *testing.T) {
	path := t.TempDir() + "/report.jsonl"
	t.Setenv(faultreport.EnvFile, path)
	c := faultreport.Case{Name: "round trip", Package: "internal/faults", Produced: 5, Stored: 4, DLQ: 1, Detail: "one dead letter"}
	faultreport.Record(t, c)
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Passed = true
	if d := cmp.Diff([]faultreport.Case{c}, got); d != "" {
		t.Errorf("loaded (-want +got):\n%s", d)
	}
}
