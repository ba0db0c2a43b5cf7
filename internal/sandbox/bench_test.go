package sandbox_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// percentiles returns the p50 and p99 of d in milliseconds (nearest rank).
func percentiles(d []time.Duration) (p50, p99 float64) {
	if len(d) == 0 {
		return 0, 0
	}
	d = append([]time.Duration(nil), d...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(d)))) - 1
		i = max(0, min(i, len(d)-1))
		return float64(d[i]) / float64(time.Millisecond)
	}
	return at(0.50), at(0.99)
}

// reportLatencies adds p50 and p99 (milliseconds) of the per-op times.
func reportLatencies(b *testing.B, d []time.Duration) {
	b.Helper()
	p50, p99 := percentiles(d)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(0, "ns/op") // the percentiles say it better
}

// BenchmarkSessionStart times Start (container create + start + inspect +
// the supervisor's hello),
// with the keep-id copy of the image already made by a first start.
func BenchmarkSessionStart(b *testing.B) {
	c := newClient(b)
	ws := newWorkspace(b, map[string]string{".env": "X=1\n"})
	ctx := context.Background()
	startSession(b, c, sandbox.DefaultProfile(), ws) // the keep-id image copy, once
	var d []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		s, err := c.Start(ctx, fmt.Sprintf("bench-start-%d-%d", os.Getpid(), i), sandbox.DefaultProfile(), ws, sandbox.WithExecChecker(allowAll))
		if err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
		b.StopTimer()
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportLatencies(b, d)
}

// BenchmarkExecTrue times `true` four ways against one container: the bare
// bindings round trip, Session.Exec through the supervisor (traced, the
// exec checked), the old podman exec path (PodmanExec: bindings and
// watchdog), and `podman exec` on the command line as the Podman user. The
// ways take turns within each iteration so that load from elsewhere on the
// machine falls on all of them alike.
func BenchmarkExecTrue(b *testing.B) {
	c := newClient(b)
	s := startSession(b, c, sandbox.DefaultProfile(), newWorkspace(b, nil))
	ctx := context.Background()
	cli := podmanCLI(b)
	ways := []struct {
		name string
		do   func() error
	}{
		{"bindings", func() error {
			code, err := c.RawExec(ctx, s.ContainerID(), "true")
			if err == nil && code != 0 {
				err = fmt.Errorf("exit %d", code)
			}
			return err
		}},
		{"session", func() error {
			res, err := s.Exec(ctx, sandbox.ExecRequest{Argv: []string{"true"}})
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("exit %d", res.ExitCode)
			}
			return err
		}},
		{"podman-path", func() error {
			res, err := s.PodmanExec(ctx, sandbox.ExecRequest{Argv: []string{"true"}})
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("exit %d", res.ExitCode)
			}
			return err
		}},
		{"cli", func() error {
			_, err := cli.Exec(ctx, s.ContainerID(), "true")
			return err
		}},
	}
	d := make([][]time.Duration, len(ways))
	for i := 0; b.Loop(); i++ {
		for k := range ways {
			w := (i + k) % len(ways)
			start := time.Now()
			if err := ways[w].do(); err != nil {
				b.Fatalf("%s: %v", ways[w].name, err)
			}
			d[w] = append(d[w], time.Since(start))
		}
	}
	for w := range ways {
		p50, p99 := percentiles(d[w])
		b.ReportMetric(p50, ways[w].name+"-p50-ms")
		b.ReportMetric(p99, ways[w].name+"-p99-ms")
	}
	b.ReportMetric(0, "ns/op")
}
