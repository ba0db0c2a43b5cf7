package benchreport

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/agentaudit/agentaudit/internal/events
BenchmarkDecodeValidate   	  200000	      5012 ns/op	 168.9 MB/s	      4800 cpu-ns/op	    208333 events/cpu-s	     512 B/op	       3 allocs/op
BenchmarkDecodeValidate   	  200000	      4990 ns/op	 169.1 MB/s	      4600 cpu-ns/op	    217391 events/cpu-s	     512 B/op	       3 allocs/op
BenchmarkDecodeValidate   	  200000	      5100 ns/op	 168.0 MB/s	      5000 cpu-ns/op	    200000 events/cpu-s	     512 B/op	       3 allocs/op
BenchmarkEgressThroughput-2   	       3	1000024772 ns/op	1073.72 MB/s	      2396 bridge+proxy-MB/s	        59.78 bridge-%-of-direct
BenchmarkEngine log line without figures
--- BENCH: BenchmarkX
PASS
`
	res, err := ParseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, c := range []struct{ bench, unit string }{
		{"BenchmarkDecodeValidate", "events/cpu-s"},
		{"BenchmarkDecodeValidate", "allocs/op"},
		{"BenchmarkEgressThroughput", "bridge-%-of-direct"},
	} {
		v, ok := res.Median(c.bench, c.unit)
		if !ok {
			t.Fatalf("no %s %s", c.bench, c.unit)
		}
		got[c.bench+" "+c.unit] = v
	}
	want := map[string]float64{
		"BenchmarkDecodeValidate events/cpu-s":         208333,
		"BenchmarkDecodeValidate allocs/op":            3,
		"BenchmarkEgressThroughput bridge-%-of-direct": 59.78,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("medians (-want +got):\n%s", d)
	}
	if _, ok := res.Median("BenchmarkEngine", "ns/op"); ok {
		t.Error("a log line was parsed as a result")
	}
}

func TestParseGoBenchRejectsBrokenLine(t *testing.T) {
	_, err := ParseGoBench(strings.NewReader("BenchmarkA-2 10 5 ns/op 7\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err = %v, want one naming line 1", err)
	}
	_, err = ParseGoBench(strings.NewReader("BenchmarkA-2 10 five ns/op\n"))
	if err == nil {
		t.Fatal("a non-numeric value parsed")
	}
}

func TestMedianEven(t *testing.T) {
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Fatalf("median = %v, want 2.5", got)
	}
}

func TestWriteMarkdown(t *testing.T) {
	rep := &Report{Rows: []Row{
		{What: "load", Ours: "10k events/s", Peer: "`kcat \\| clickhouse-client`", Ratio: "1.10×", Target: "≥ 1.0×", Verdict: Met, Command: "a | b"},
		{What: "hash", Ours: "3µs/op", Verdict: NoTarget, Command: "go test"},
	}, Failures: []string{"query: boom"}}
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, rep); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, want := range []string{
		"| load | 10k events/s | `kcat \\| clickhouse-client` | 1.10× | ≥ 1.0× | met | `a \\| b` |",
		"| hash | 3µs/op | — | — | — | — | `go test` |",
		"## Failures", "query: boom",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func FuzzParseGoBench(f *testing.F) {
	f.Add("BenchmarkA-2 10 5 ns/op 3 allocs/op\n")
	f.Add("BenchmarkA 1 x y\n")
	f.Fuzz(func(t *testing.T, s string) {
		res, err := ParseGoBench(strings.NewReader(s))
		if err != nil {
			return
		}
		for name := range res {
			res.Median(name, "ns/op")
		}
	})
}

func TestQueryClusterRows(t *testing.T) {
	r := &runner{cfg: Config{Raw: t.TempDir()}}
	if _, err := queryClusterRows(context.Background(), r); err == nil || !strings.Contains(err.Error(), "make bench-query-cluster") {
		t.Fatalf("without the cluster's figures: %v, want an error naming make bench-query-cluster", err)
	}
	figs := Figures{"events": 9461504, "days": 30, "shards": 2, "replicas": 2, "slowest_day_ms": 612, "slowest_period_ms": 2100,
		"failed_reports": 0, "verify_day_ms": 1432, "report_period_ms.activity": 2100, "report_period_ms.alerts": 16,
		"verify_day_events": 315504, "verify_day_heap_mib": 700, "verify_period_ms": 37112, "verify_period_events": 9461504, "verify_period_heap_mib": 464}
	if err := WriteFigures(filepath.Join(r.cfg.Raw, "query-cluster.json"), figs); err != nil {
		t.Fatal(err)
	}
	rows, err := queryClusterRows(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want the reports' and verify's", len(rows))
	}
	if !strings.Contains(rows[0].What, "on 2 shards × 2 replicas") || !strings.Contains(rows[0].What, "make bench-query-cluster") {
		t.Errorf("reports row does not say where and by what it was measured: %q", rows[0].What)
	}
	if rows[0].Verdict == verdict(true) || !strings.HasPrefix(rows[0].Ours, "slowest report over one day 612") || !strings.Contains(rows[0].Ours, "activity 2.1s, alerts 16") {
		t.Errorf("reports row: verdict %v, ours %q (activity over 2 s must fail it)", rows[0].Verdict, rows[0].Ours)
	}
	if !strings.Contains(rows[1].What, "each shard's local table") {
		t.Errorf("verify row does not say it reads the shards' local tables: %q", rows[1].What)
	}
	if rows[1].Verdict != verdict(true) || !strings.Contains(rows[1].Ours, "one day 220k events/s") || !strings.Contains(rows[1].Ours, "30 days 255k events/s") {
		t.Errorf("verify row: verdict %v, ours %q", rows[1].Verdict, rows[1].Ours)
	}
}
