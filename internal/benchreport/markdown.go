package benchreport

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteMarkdown writes rep as BENCHMARKS.md.
func WriteMarkdown(w io.Writer, rep *Report) error {
	m := rep.Machine
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` on %s (took %s) at commit %s. Every figure is the median of its runs;\n",
		rep.Start.UTC().Format("2006-01-02 15:04 MST"), rep.End.Sub(rep.Start).Round(time.Second), m.Commit)
	fmt.Fprintf(&b, "each peer was measured in the same run as ours. Raw output of every benchmark is in `.testenv/artifacts/bench/`.\n\n")
	fmt.Fprintf(&b, "**Machine:** %s, %d cores, %.0f GiB; Linux %s, %s; %s. Load average %s at the start, %s at the end.\n\n",
		m.CPU, m.Cores, m.MemGiB, m.Kernel, m.OS, m.Go, m.LoadStart, m.LoadEnd)
	b.WriteString("| what | ours | peer / reference | ratio | target | verdict | command |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Rows {
		cells := []string{r.What, r.Ours, r.Peer, r.Ratio, r.Target, string(r.Verdict), "`" + strings.ReplaceAll(r.Command, "|", `\|`) + "`"}
		for i, c := range cells {
			if c == "" {
				cells[i] = "—"
			}
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	if len(rep.Failures) > 0 {
		b.WriteString("\n## Failures\n\n")
		for _, f := range rep.Failures {
			fmt.Fprintf(&b, "```\n%s\n```\n", strings.TrimSpace(f))
		}
	}
	if m.Services != "" {
		fmt.Fprintf(&b, "\n## Services (`testenv/status`)\n\n```\n%s\n```\n", m.Services)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
