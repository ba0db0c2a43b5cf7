package approvals

import (
	"bytes"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// recent keeps what the inbox shows from the events topic: the latest
// alerts, and the events approval requests are about (a tool call's full
// arguments, an egress decision, an alert), bounded in number. The window
// is how far back the service starts reading.
type recent struct {
	window    time.Duration
	maxAlerts int
	maxSubj   int

	mu       sync.Mutex
	alerts   []AlertView // oldest first
	subjects map[string]SubjectView
	order    []string // subject ids, oldest first
}

func newRecent(window time.Duration, alerts, subjects int) *recent {
	return &recent{window: window, maxAlerts: max(alerts, 1), maxSubj: max(subjects, 1), subjects: map[string]SubjectView{}}
}

// subjectTypes are the event types a request can be about. Events are
// canonical JSON, so the type can be recognised before the event is
// decoded and validated; the rest of the topic is skipped cheaply.
var subjectTypes = [][]byte{
	[]byte(`"event_type":"` + events.TypeAlertRaised + `"`),
	[]byte(`"event_type":"` + events.TypeToolCallRequested + `"`),
	[]byte(`"event_type":"` + events.TypeNetEgress + `"`),
}

// add takes one record of the events topic and returns the alert it
// carried, if any.
func (r *recent) add(value []byte, log *slog.Logger) *AlertView {
	if !slices.ContainsFunc(subjectTypes, func(t []byte) bool { return bytes.Contains(value, t) }) {
		return nil
	}
	env, err := events.Decode(value)
	if err != nil {
		log.Warn("undecodable record on the events topic", "err", err)
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.subjects[env.EventID]; dup {
		return nil
	}
	r.subjects[env.EventID] = SubjectView{EventID: env.EventID, EventType: env.EventType, EventTime: env.EventTime, Payload: env.Payload}
	r.order = append(r.order, env.EventID)
	if len(r.order) > r.maxSubj {
		delete(r.subjects, r.order[0])
		r.order = r.order[1:]
	}
	if env.EventType != events.TypeAlertRaised {
		return nil
	}
	p, err := env.DecodePayload()
	if err != nil {
		return nil
	}
	a := AlertView{EventID: env.EventID, EventTime: env.EventTime, Tenant: env.Tenant, SessionID: env.SessionID, AlertRaised: *p.(*events.AlertRaised)}
	r.alerts = append(r.alerts, a)
	if len(r.alerts) > r.maxAlerts {
		r.alerts = slices.Delete(r.alerts, 0, len(r.alerts)-r.maxAlerts)
	}
	return &a
}

func (r *recent) subject(id string) *SubjectView {
	if id == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.subjects[id]
	if !ok {
		return nil
	}
	return &v
}

func (r *recent) alert(id string) *AlertView {
	if id == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.alerts) - 1; i >= 0; i-- {
		if r.alerts[i].EventID == id {
			a := r.alerts[i]
			return &a
		}
	}
	return nil
}

// list returns the alerts newest first, at most limit.
func (r *recent) list(limit int) []AlertView {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]AlertView, 0, min(limit, len(r.alerts)))
	for i := len(r.alerts) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, r.alerts[i])
	}
	return out
}
