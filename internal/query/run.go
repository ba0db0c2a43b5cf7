package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Output says how results are written.
type Output struct {
	Format string    // table (default), csv, json, ndjson, html
	Width  int       // terminal width for table; 0: no limit
	Wide   bool      // table: never cut cells
	W      io.Writer // where to write
	Now    func() time.Time
}

func (o Output) write(res *Result, page Page) error {
	switch o.Format {
	case "", FormatTable:
		w := o.Width
		if o.Wide {
			w = 0
		}
		return WriteTable(o.W, res, TableOptions{Width: w})
	case FormatCSV:
		return WriteCSV(o.W, res)
	case FormatNDJSON:
		return WriteNDJSON(o.W, res)
	case FormatJSON:
		meta := JSONMeta{Report: page.reportName, From: page.Period.From, To: page.Period.To}
		return WriteJSON(o.W, res, meta)
	case FormatHTML:
		page.Result = res
		if page.SQL == "" {
			page.SQL = res.SQL
		}
		if page.Generated.IsZero() {
			page.Generated = o.now()
		}
		return WriteHTML(o.W, page)
	}
	return fmt.Errorf("%w: %q", ErrFormat, o.Format)
}

func (o Output) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// SQLCommand is `query sql`.
type SQLCommand struct {
	SQL    string
	Params []Param
}

// RunSQL runs one read statement and writes its result.
func RunSQL(ctx context.Context, cfg Config, cmd SQLCommand, out Output) error {
	if err := CheckReadOnly(cmd.SQL); err != nil {
		return err
	}
	db, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Query(ctx, cmd.SQL, cmd.Params)
	if err != nil {
		return err
	}
	return out.write(res, Page{Title: "Query", SQL: cmd.SQL, Params: cmd.Params})
}

// ReportCommand is `query report NAME`.
type ReportCommand struct {
	Name   string
	Period Period
	Params map[string]string
	// FailOnFindings makes a findings report with rows return ErrFindings
	// (after writing them).
	FailOnFindings bool
}

// RunReport runs a report and writes it; with html, its charts too.
func RunReport(ctx context.Context, cfg Config, cmd ReportCommand, out Output) error {
	r, err := FindReport(cmd.Name)
	if err != nil {
		return err
	}
	db, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.RunReport(ctx, r, cmd.Period, cmd.Params)
	if err != nil {
		return err
	}
	params, _ := r.Bind(cmd.Period, cmd.Params)
	page := Page{Title: r.Title, Purpose: r.Purpose, Period: cmd.Period, SQL: r.SQL, Params: params,
		Findings: r.Findings, reportName: r.Name}
	if out.Format == FormatHTML {
		if page.Charts, err = db.charts(ctx, r, res, cmd.Period); err != nil {
			return err
		}
	}
	if err := out.write(res, page); err != nil {
		return err
	}
	if r.Findings && len(res.Rows) > 0 && cmd.FailOnFindings {
		return fmt.Errorf("%w: %s returned %d rows", ErrFindings, r.Name, len(res.Rows))
	}
	return nil
}

// charts runs the reports a report's chart lines name and draws them.
func (db *DB) charts(ctx context.Context, r *Report, res *Result, p Period) ([]Chart, error) {
	var out []Chart
	for _, spec := range r.Charts {
		src, title := res, r.Title
		if spec.Source != "self" {
			other, err := FindReport(spec.Source)
			if err != nil {
				return nil, err
			}
			if src, err = db.RunReport(ctx, other, p, nil); err != nil {
				return nil, err
			}
			title = other.Title
		}
		c, err := ChartFrom(title+" ("+spec.Title()+")", src, spec)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// RunList writes the reports with their purpose and parameters.
func RunList(w io.Writer) error {
	all, err := Reports()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPORT\tFINDINGS\tTITLE")
	for _, r := range all {
		f := "no"
		if r.Findings {
			f = "yes (must be empty)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, f, r.Title)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, r := range all {
		fmt.Fprintf(w, "%s: %s\n", r.Name, r.Purpose)
		for _, p := range r.Params {
			def := ""
			if p.Default != "" {
				def = " = " + p.Default
			}
			fmt.Fprintf(w, "    @%s %s%s  %s\n", p.Name, p.Type, def, p.Doc)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// RunSession writes a session's timeline.
func RunSession(ctx context.Context, cfg Config, sessionID string, out Output) error {
	db, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Timeline(ctx, sessionID)
	if err != nil {
		return err
	}
	return out.write(res, Page{Title: "Session " + sessionID, Params: []Param{{"session", sessionID}}})
}

// RunVerify verifies the chains in scope, writes every break and a summary
// line, and returns ErrChainBroken when there is any.
func RunVerify(ctx context.Context, cfg Config, scope VerifyScope, out Output, summary io.Writer) error {
	db, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := db.Verify(ctx, scope)
	if err != nil {
		return err
	}
	res := FindingsResult(rep.Findings)
	what := "session " + scope.SessionID
	if scope.SessionID == "" {
		what = "sessions with events from " + scope.Period.From.Format(time.RFC3339) + " to " + scope.Period.To.Format(time.RFC3339)
	}
	page := Page{Title: "Chain verification: " + what, Findings: true, Period: scope.Period,
		Purpose: "Every hash chain recomputed from the stored canonical events."}
	if len(rep.Findings) > 0 || out.Format != FormatTable && out.Format != "" {
		if err := out.write(res, page); err != nil {
			return err
		}
	}
	verdict := "OK"
	if len(rep.Findings) > 0 {
		verdict = fmt.Sprintf("BROKEN: %d findings", len(rep.Findings))
	}
	fmt.Fprintf(summary, "verify %s: %d rows, %d events, %d chains in %s: %s\n",
		what, rep.Rows, rep.Events, rep.Chains, rep.Elapsed.Round(time.Millisecond), verdict)
	if len(rep.Findings) > 0 {
		kinds := map[string]int{}
		for _, f := range rep.Findings {
			kinds[f.Kind]++
		}
		var parts []string
		for k, n := range kinds {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
		slices.Sort(parts)
		return fmt.Errorf("%w: %s", ErrChainBroken, strings.Join(parts, " "))
	}
	return nil
}

// ExitCode maps an error of a Run function to the process exit status:
// 0 success, 1 findings or a broken chain (the answer is "no"), 2 any
// other failure.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrFindings), errors.Is(err, ErrChainBroken):
		return 1
	}
	return 2
}
