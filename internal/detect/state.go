package detect

import (
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// state is everything an engine remembers between events. Its exported
// fields are the snapshot format.
type state struct {
	watermark time.Time
	lastSweep time.Time
	rules     []*ruleState
	chains    map[events.ChainKey]*chainPos
}

type ruleState struct {
	windows map[string]*winGroup
	seqs    map[string]*seqGroup
	dedup   map[string]*dedupEntry
}

func newState(n int) *state {
	s := &state{chains: map[events.ChainKey]*chainPos{}}
	for range n {
		s.rules = append(s.rules, newRuleState())
	}
	return s
}

func newRuleState() *ruleState {
	return &ruleState{windows: map[string]*winGroup{}, seqs: map[string]*seqGroup{}, dedup: map[string]*dedupEntry{}}
}

type winEntry struct {
	T  time.Time `json:"t"`
	ID string    `json:"id"`
	V  string    `json:"v,omitempty"`
}

type winGroup struct {
	Entries []winEntry `json:"entries"`
}

func (w *winGroup) last() time.Time {
	var t time.Time
	for _, e := range w.Entries {
		if e.T.After(t) {
			t = e.T
		}
	}
	return t
}

type seqPartial struct {
	Start    time.Time         `json:"start"`
	Last     time.Time         `json:"last"`
	IDs      []string          `json:"ids"`
	Captures map[string]string `json:"captures,omitempty"`
}

// seqGroup holds, per completed prefix of the steps, the latest partial
// match: Partials[k] has completed steps 0..k.
type seqGroup struct {
	Partials []*seqPartial `json:"partials"`
}

func (s *seqGroup) empty() bool {
	for _, p := range s.Partials {
		if p != nil {
			return false
		}
	}
	return true
}

func (s *seqGroup) last() time.Time {
	var t time.Time
	for _, p := range s.Partials {
		if p != nil && p.Last.After(t) {
			t = p.Last
		}
	}
	return t
}

// dedupEntry is one suppression window: alerts with Key before Until are
// folded into Suppressed.
type dedupEntry struct {
	Key        string    `json:"key"`
	Until      time.Time `json:"until"`
	Suppressed uint64    `json:"suppressed"`
	First      time.Time `json:"first,omitzero"`
	Last       time.Time `json:"last,omitzero"`
	IDs        []string  `json:"ids,omitempty"`
	Message    string    `json:"message"`
	Tenant     string    `json:"tenant,omitempty"`
	Session    string    `json:"session,omitempty"`
}

type chainPos struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Last time.Time `json:"last"`
	// OffTopic counts events this chain owes to audit.approvals: after an
	// ask decision the emitter's next seq is its approval.requested, which
	// travels on the other topic, so a gap of that size is expected here.
	OffTopic uint64 `json:"off_topic,omitempty"`
}
