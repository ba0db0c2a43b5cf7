// Package faults is the end-to-end fault suite (make faults)
// and the table that reports it: per case, events produced, stored and
// dead-lettered, and what was lost or doubled.
package faults

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

// ErrReport: the report file holds a line that is not a case.
var ErrReport = errors.New("faults: bad report line")

// Load reads the cases faultreport.Record appended to path, in order.
func Load(path string) ([]faultreport.Case, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}

// Read parses one JSON case a line; blank lines are skipped.
func Read(r io.Reader) ([]faultreport.Case, error) {
	var out []faultreport.Case
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var c faultreport.Case
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return out, fmt.Errorf("%w %d: %w", ErrReport, n, err)
		}
		out = append(out, c)
	}
	return out, sc.Err()
}

// Markdown writes cases as one Markdown table and a totals line. A case
// passes only when its test passed; lost or doubled events fail it.
func Markdown(w io.Writer, cases []faultreport.Case) error {
	var b strings.Builder
	b.WriteString("| case | package | produced | stored | dlq | lost | duplicated | result | detail |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|---|\n")
	failed := 0
	for _, c := range cases {
		result := "pass"
		if !c.Passed || c.Lost != 0 || c.Duplicated != 0 {
			result = "FAIL"
			failed++
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %s | %s |\n",
			cell(c.Name), cell(c.Package), c.Produced, c.Stored, c.DLQ, c.Lost, c.Duplicated, result, cell(c.Detail))
	}
	fmt.Fprintf(&b, "\n%d cases, %d passed, %d failed.\n", len(cases), len(cases)-failed, failed)
	_, err := io.WriteString(w, b.String())
	return err
}

// cell keeps a value inside its table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}
