package detect

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
)

// Exit codes of the detect CLI.
const (
	ExitOK    = 0
	ExitFail  = 1 // a test failed, a rule did not load, lint found something
	ExitUsage = 2
)

// TestCommand is `detect test DIR` (or `detect test FILE`): load every
// rule, run the inline tests, print a table and return ExitFail on any
// failure or load error. Given one file, it loads the file's directory, so
// the lists and macros the file uses from its neighbours resolve, and runs
// that file's tests only.
func TestCommand(dir string, stdout, stderr io.Writer, opts ...LoadOption) int {
	only := ""
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		dir, only = filepath.Split(dir)
		if dir == "" {
			dir = "."
		}
	}
	rs, err := Load(dir, opts...)
	if err != nil {
		for _, f := range LoadFindings(err) {
			fmt.Fprintf(stderr, "%s\n", f.locMessage(dir))
		}
		fmt.Fprintf(stderr, "detect test: rules in %s do not load\n", dir)
		return ExitFail
	}
	results := RunTests(rs)
	if only != "" {
		results = slices.DeleteFunc(results, func(r TestResult) bool { return filepath.Base(r.File) != only || filepath.Dir(r.File) != "." })
		if len(results) == 0 {
			fmt.Fprintf(stderr, "detect test: %s has no rule tests\n", filepath.Join(dir, only))
			return ExitFail
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tTEST\tEXPECTED\tGOT\tOK")
	failed := 0
	for _, r := range results {
		ok := "ok"
		if !r.Pass {
			ok = "FAIL"
			failed++
		}
		got := fmt.Sprintf("%d alerts", r.Got)
		if r.Err != "" {
			got = "error: " + r.Err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Rule, r.Test, r.Expected(), got, ok)
	}
	tw.Flush()
	for _, r := range results {
		if !r.Pass {
			fmt.Fprintf(stderr, "%s:%d: rule %s, test %q: expected %s, got %d alerts\n", joinDir(dir, r.File), r.Line, r.Rule, r.Test, r.Expected(), r.Got)
		}
	}
	fmt.Fprintf(stdout, "%d rules, %d tests: %d passed, %d failed\n", len(rs.Rules)+len(rs.SQLRules), len(results), len(results)-failed, failed)
	if failed > 0 {
		return ExitFail
	}
	return ExitOK
}

// LintCommand is `detect lint DIR`: print load errors, unused lists and
// macros, and rules that cannot match their own tests; ExitFail if any.
func LintCommand(dir string, stdout, stderr io.Writer, opts ...LoadOption) int {
	var findings []Finding
	rs, err := Load(dir, opts...)
	if err != nil {
		findings = LoadFindings(err)
	} else {
		findings = Lint(rs)
	}
	for _, f := range findings {
		fmt.Fprintln(stdout, f.locMessage(dir))
	}
	if len(findings) > 0 {
		fmt.Fprintf(stderr, "detect lint: %d findings\n", len(findings))
		return ExitFail
	}
	fmt.Fprintf(stdout, "detect lint: %d rules, no findings\n", len(rs.Rules)+len(rs.SQLRules))
	return ExitOK
}

func (f Finding) locMessage(dir string) string {
	f.File = joinDir(dir, f.File)
	return f.String()
}

// joinDir places a rule file under its directory; override files are
// reported by absolute path and stay as they are.
func joinDir(dir, file string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(dir, file)
}
