package detect

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/twmb/franz-go/pkg/kgo"
)

// StageTrace records where an alert's latency goes, stage by stage, and
// what each turn of the poll loop spent its time on. Only `detect bench`
// sets one (WithStageTrace); a nil *StageTrace records nothing and costs
// a nil check.
type StageTrace struct {
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

// NewStageTrace returns an empty trace.
func NewStageTrace() *StageTrace {
	return &StageTrace{alerts: map[string]*alertStages{}, loop: map[string][]time.Duration{}, counts: map[string][]int{}}
}

// WithStageTrace makes the service record into st.
func WithStageTrace(st *StageTrace) ServiceOption { return func(s *Service) { s.trace = st } }

// loopStage records how long one turn of the loop spent in a stage.
func (st *StageTrace) loopStage(name string, d time.Duration) {
	if st == nil {
		return
	}
	st.mu.Lock()
	st.loop[name] = append(st.loop[name], d)
	st.mu.Unlock()
}

func (st *StageTrace) count(name string, n int) {
	if st == nil {
		return
	}
	st.mu.Lock()
	st.counts[name] = append(st.counts[name], n)
	st.mu.Unlock()
}

// mark records instant at of stage for the alert whose last matched event
// is trigger.
func (st *StageTrace) mark(trigger string, set func(*alertStages)) {
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

// Report prints, for the triggers in want (by event id), each stage's
// p50/p99/max, then the loop's per-turn figures.
func (st *StageTrace) Report(w io.Writer, want map[string]time.Time) {
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

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[max(0, min(i, len(ds)-1))]
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
