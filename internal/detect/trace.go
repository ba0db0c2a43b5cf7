package detect

import (
	"fmt"
	"io"
	rtmetrics "runtime/metrics"
	"slices"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/twmb/franz-go/pkg/kgo"
)

// stageTrace records where an alert's latency goes, stage by stage, and
// what each turn of the poll loop spent its time on. Only `detect bench`
// sets one; a nil *stageTrace records nothing and costs a nil check.
type stageTrace struct {
	mu     sync.Mutex
	alerts map[string]*alertStages // by the triggering event's id
	loop   map[string][]time.Duration
	counts map[string][]int
}

// alertStages are the instants one alert.raised passed, from the record
// timestamp its producer set to the broker's acknowledgement.
type alertStages struct {
	produced  time.Time // the triggering record's timestamp
	polled    time.Time // the poll that returned it returned
	evaluated time.Time // the engine raised the alert
	queued    time.Time // its batch was evaluated; emission started
	logged    time.Time // its log record was acknowledged
	acked     time.Time // alert.raised was acknowledged
}

func newStageTrace() *stageTrace {
	return &stageTrace{alerts: map[string]*alertStages{}, loop: map[string][]time.Duration{}, counts: map[string][]int{}}
}

// loopStage records how long one turn of the loop spent in a stage.
func (st *stageTrace) loopStage(name string, d time.Duration) {
	if st == nil {
		return
	}
	st.mu.Lock()
	st.loop[name] = append(st.loop[name], d)
	st.mu.Unlock()
}

func (st *stageTrace) count(name string, n int) {
	if st == nil {
		return
	}
	st.mu.Lock()
	st.counts[name] = append(st.counts[name], n)
	st.mu.Unlock()
}

// mark records instant at of stage for the alert whose last matched event
// is trigger.
func (st *stageTrace) mark(trigger string, set func(*alertStages)) {
	if st == nil || trigger == "" {
		return
	}
	st.mu.Lock()
	a := st.alerts[trigger]
	if a == nil {
		a = &alertStages{}
		st.alerts[trigger] = a
	}
	set(a)
	st.mu.Unlock()
}

// alertStage names a step between two instants of alertStages.
type alertStage struct {
	name     string
	from, to func(*alertStages) time.Time
}

var alertStageList = []alertStage{
	{"produce → poll returned", func(a *alertStages) time.Time { return a.produced }, func(a *alertStages) time.Time { return a.polled }},
	{"poll → evaluated (batch queue)", func(a *alertStages) time.Time { return a.polled }, func(a *alertStages) time.Time { return a.evaluated }},
	{"evaluated → batch done", func(a *alertStages) time.Time { return a.evaluated }, func(a *alertStages) time.Time { return a.queued }},
	{"batch done → log record acked", func(a *alertStages) time.Time { return a.queued }, func(a *alertStages) time.Time { return a.logged }},
	{"log acked → alert acked (emit)", func(a *alertStages) time.Time { return a.logged }, func(a *alertStages) time.Time { return a.acked }},
	{"produce → alert acked (total)", func(a *alertStages) time.Time { return a.produced }, func(a *alertStages) time.Time { return a.acked }},
}

// report prints, for the triggers in want, each stage's p50/p99/max, then
// the loop's per-turn figures.
func (st *stageTrace) report(w io.Writer, want map[string]time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	fmt.Fprintf(w, "%-34s %10s %10s %10s\n", "detect stages (per alert)", "p50", "p99", "max")
	for _, s := range alertStageList {
		var ds []time.Duration
		for id := range want {
			a := st.alerts[id]
			if a == nil {
				continue
			}
			from, to := s.from(a), s.to(a)
			if from.IsZero() || to.IsZero() {
				continue
			}
			ds = append(ds, to.Sub(from))
		}
		fmt.Fprintf(w, "  %-32s %10s %10s %10s\n", s.name, ms(quantile(ds, 0.5)), ms(quantile(ds, 0.99)), ms(quantile(ds, 1)))
	}
	fmt.Fprintf(w, "%-34s %10s %10s %10s %8s\n", "poll loop (per turn)", "p50", "p99", "max", "turns")
	for _, name := range slices.Sorted(mapsKeys(st.loop)) {
		ds := st.loop[name]
		fmt.Fprintf(w, "  %-32s %10s %10s %10s %8d\n", name, ms(quantile(ds, 0.5)), ms(quantile(ds, 0.99)), ms(quantile(ds, 1)), len(ds))
	}
	for _, name := range slices.Sorted(mapsKeys(st.counts)) {
		ns := slices.Clone(st.counts[name])
		slices.Sort(ns)
		q := func(p float64) int { return ns[max(0, min(len(ns)-1, int(p*float64(len(ns))+0.5)-1))] }
		if len(ns) > 0 {
			fmt.Fprintf(w, "  %-32s %10d %10d %10d %8d\n", name, q(0.5), q(0.99), ns[len(ns)-1], len(ns))
		}
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// runtimeSample is the Go runtime's view of a stretch of time: GC pauses
// and how long runnable goroutines waited for a CPU (the share of a busy
// machine this process did not get).
type runtimeSample struct {
	samples []rtmetrics.Sample
}

var runtimeMetricNames = []string{
	"/sched/pauses/total/gc:seconds",
	"/sched/latencies:seconds",
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/cpu/classes/idle:cpu-seconds",
}

func readRuntime() runtimeSample {
	s := runtimeSample{samples: make([]rtmetrics.Sample, len(runtimeMetricNames))}
	for i, n := range runtimeMetricNames {
		s.samples[i].Name = n
	}
	rtmetrics.Read(s.samples)
	return s
}

// report prints what changed between s and a later sample.
func (s runtimeSample) report(w io.Writer, later runtimeSample, wall time.Duration) {
	hist := func(i int) (p50, p99, mx float64, n uint64) {
		a, b := s.samples[i].Value, later.samples[i].Value
		if a.Kind() != rtmetrics.KindFloat64Histogram || b.Kind() != rtmetrics.KindFloat64Histogram {
			return
		}
		ha, hb := a.Float64Histogram(), b.Float64Histogram()
		counts := make([]uint64, len(hb.Counts))
		for j := range counts {
			counts[j] = hb.Counts[j] - ha.Counts[j]
			n += counts[j]
		}
		at := func(q float64) float64 {
			target := uint64(q*float64(n) + 0.5)
			var c uint64
			for j, k := range counts {
				c += k
				if c >= target && k > 0 {
					return hb.Buckets[j+1] // upper bound of the bucket
				}
			}
			return 0
		}
		for j := len(counts) - 1; j >= 0; j-- {
			if counts[j] > 0 {
				mx = hb.Buckets[j+1]
				break
			}
		}
		return at(0.5), at(0.99), mx, n
	}
	f := func(i int) float64 { return later.samples[i].Value.Float64() - s.samples[i].Value.Float64() }
	u := func(i int) uint64 { return later.samples[i].Value.Uint64() - s.samples[i].Value.Uint64() }
	sec := func(x float64) string {
		if x > 1e9 { // +Inf bucket bound
			return "inf"
		}
		return ms(time.Duration(x * float64(time.Second)))
	}
	p50, p99, mx, n := hist(0)
	fmt.Fprintf(w, "  %-32s %10s %10s %10s %8d  (%d GC cycles, GC %.1f%% of the process's CPU)\n", "GC stop-the-world pauses", sec(p50), sec(p99), sec(mx), n, u(2), 100*f(3)/max(f(4)-f(5), 1e-9))
	p50, p99, mx, n = hist(1)
	fmt.Fprintf(w, "  %-32s %10s %10s %10s %8d\n", "goroutine runnable → running", sec(p50), sec(p99), sec(mx), n)
}

// traceEvaluated marks the alert a that record r raised.
func (s *Service) traceEvaluated(r *kgo.Record, a Alert) {
	if s.trace == nil || len(a.EventIDs) == 0 {
		return
	}
	now := time.Now()
	s.trace.mark(a.EventIDs[len(a.EventIDs)-1], func(x *alertStages) {
		x.produced, x.polled, x.evaluated = r.Timestamp, s.polledAt, now
	})
}

// traceOutbox marks instant set for every alert.raised in ps.
func (s *Service) traceOutbox(ps []*pendingEvent, set func(*alertStages, time.Time)) {
	if s.trace == nil {
		return
	}
	now := time.Now()
	for _, p := range ps {
		if p.EventType == events.TypeAlertRaised {
			s.trace.mark(p.Parent, func(x *alertStages) { set(x, now) })
		}
	}
}
