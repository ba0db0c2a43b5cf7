package demo

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// reportNames are the compliance reports the demo prints for its period.
var reportNames = []string{"activity", "approvals", "alerts", "unapproved_actions"}

// record waits for ClickHouse to hold the session's events, then prints
// the timeline, the reports and the chain verification, and writes the
// HTML reports.
func (d *demo) record(ctx context.Context, from time.Time) error {
	sid := d.res.SessionID
	if !sessionIDPattern.MatchString(sid) {
		return errStep("session id %q is not one to put in SQL", sid)
	}
	want := total(d.res.Produced)
	st := d.p.step(fmt.Sprintf("wait until ClickHouse holds the session's %d events (ingest)", want))
	deadline := time.Now().Add(d.cfg.StepTimeout)
	for {
		out, err := d.runTool(ctx, "query", "sql", "--format", "csv",
			"SELECT count() FROM events FINAL WHERE session_id = '"+sid+"'")
		if err == nil {
			d.res.Stored = lastInt(out)
		}
		if d.res.Stored >= want {
			break
		}
		if time.Now().After(deadline) {
			return st.fail(errStep("ClickHouse holds %d of the session's %d events after %s (last error: %v); see %s",
				d.res.Stored, want, d.cfg.StepTimeout, err, filepath.Join(d.cfg.Dir, "logs", "ingest.log")))
		}
		if err := sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
	st.done("%d of %d events stored", d.res.Stored, want)

	to := time.Now().UTC().Add(time.Minute).Truncate(time.Second)
	period := []string{"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)}

	st = d.p.step("query session " + sid)
	out, err := d.runTool(ctx, "query", "session", sid)
	if err != nil {
		return st.fail(err)
	}
	d.res.Timeline = out
	d.p.printf("%s\n", strings.TrimRight(out, "\n"))
	st.done("timeline: %d lines", strings.Count(out, "\n"))

	for _, name := range reportNames {
		st = d.p.step(fmt.Sprintf("query report %s %s", name, strings.Join(period, " ")))
		out, err := d.runTool(ctx, "query", append([]string{"report", name}, period...)...)
		if err != nil {
			return st.fail(err)
		}
		d.res.Reports[name] = out
		d.p.printf("%s\n", strings.TrimRight(out, "\n"))
		st.done("report %s", name)
	}

	st = d.p.step("query verify --session " + sid)
	// The verdict goes to stderr, the broken events (none, we hope) to
	// stdout.
	out, verdict, code, err := d.runToolCode(ctx, "query", "verify", "--session", sid)
	d.res.Verify, d.res.VerifyCode = strings.TrimSpace(verdict+out), code
	d.p.printf("%s\n", d.res.Verify)
	if err != nil {
		return st.fail(fmt.Errorf("%w (exit %d)", err, code))
	}
	st.done("every chain of the session verified (exit %d)", code)

	st = d.p.step("write the HTML reports")
	dir := filepath.Join(d.cfg.Dir, "reports")
	timeline := filepath.Join(dir, "session-"+sid+".html")
	if _, err := d.runTool(ctx, "query", "session", sid, "--format", "html", "-o", timeline); err != nil {
		return st.fail(err)
	}
	d.res.HTMLReports = append(d.res.HTMLReports, timeline)
	for _, name := range reportNames {
		file := filepath.Join(dir, name+".html")
		if _, err := d.runTool(ctx, "query", append([]string{"report", name, "--format", "html", "-o", file}, period...)...); err != nil {
			return st.fail(err)
		}
		d.res.HTMLReports = append(d.res.HTMLReports, file)
	}
	for _, f := range d.res.HTMLReports {
		d.p.line("%s", f)
	}
	st.done("%d HTML reports in %s", len(d.res.HTMLReports), dir)
	return nil
}

// lastInt returns the last line of out as an integer (0 when it is not).
func lastInt(out string) int {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	n, _ := strconv.Atoi(strings.Trim(strings.TrimSpace(lines[len(lines)-1]), `"`))
	return n
}
