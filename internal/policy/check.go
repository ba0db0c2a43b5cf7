package policy

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// ExampleResult is one rule example evaluated against the whole policy.
// An example matches its rule when the policy's decision names that rule,
// so an example that an earlier rule shadows fails.
type ExampleResult struct {
	RuleID   string
	Example  string // the example as written: a command, an argv or tool=… fields
	Want     string // "match" or "not_match"
	Got      string // "match" or "not_match"
	OK       bool
	Decision Decision
	Line     int
	Column   int
}

// CheckFile validates the policy file at path and writes a table of every
// rule example with its expected and actual result. It returns an error if
// the file does not load or any example fails; it is `runner policy check`.
func CheckFile(w io.Writer, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read policy: %w", err)
	}
	p, err := parse(path, data)
	if err != nil {
		fmt.Fprintf(w, "%v\n", err)
		return err
	}
	fmt.Fprintf(w, "policy %s version %s approval_mode %s sha256 %s\n", p.id, orDash(p.version), p.mode, p.sha256)
	fmt.Fprintf(w, "%d rules, %d examples\n\n", len(p.rules), len(p.examples))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tRULE\tWANT\tGOT\tDECISION\tEXAMPLE")
	failed := 0
	for _, ex := range p.examples {
		res := "ok"
		if !ex.OK {
			res = "FAIL"
			failed++
		}
		by := ex.Decision.RuleID
		if by == "" {
			by = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %s by %s\t%s\n", res, ex.RuleID, ex.Want, ex.Got,
			ex.Decision.Verdict, ex.Decision.ReasonCode, by, ex.Example)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d examples hold, %d do not\n", len(p.examples)-failed, failed)
	if err := p.exampleErrors(path); err != nil {
		fmt.Fprintf(w, "%v\n", err)
		return err
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
