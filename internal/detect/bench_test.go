package detect

import (
	"syscall"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// BenchmarkEngine runs the shipped rule pack over a realistic event mix.
// events/s is per core: the engine is single-threaded per Eval.
func BenchmarkEngine(b *testing.B) {
	rs, err := Load("../../rules")
	if err != nil {
		b.Fatal(err)
	}
	evs := mix(b, 20000, 1)
	e := NewEngine(rs)
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for i := 0; i < b.N; i++ {
		if i%len(evs) == 0 && i > 0 {
			// Replaying the same events into old state would be a stream
			// of duplicates; start each pass on a fresh engine.
			b.StopTimer()
			e = NewEngine(rs)
			b.StartTimer()
		}
		if _, err := e.Eval(evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
	reportRates(b, start)
}

// BenchmarkEngineWithDecode includes events.Decode of the wire bytes, as
// the detect service sees them.
func BenchmarkEngineWithDecode(b *testing.B) {
	rs, err := Load("../../rules")
	if err != nil {
		b.Fatal(err)
	}
	evs := mix(b, 20000, 1)
	wire := make([][]byte, len(evs))
	for i, ev := range evs {
		if wire[i], err = events.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
	e := NewEngine(rs)
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for i := 0; i < b.N; i++ {
		if i%len(wire) == 0 && i > 0 {
			b.StopTimer()
			e = NewEngine(rs)
			b.StartTimer()
		}
		ev, err := events.Decode(wire[i%len(wire)])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Eval(ev); err != nil {
			b.Fatal(err)
		}
	}
	reportRates(b, start)
}

// reportRates reports events/s of wall time and events per CPU second of
// this process (all threads, GC included): on a shared machine the second
// is the per-core figure.
func reportRates(b *testing.B, start time.Duration) {
	cpu := cpuTime() - start
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
