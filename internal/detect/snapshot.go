package detect

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// snapshotVersion is bumped when the snapshot format changes incompatibly.
const snapshotVersion = 1

type snapshotDoc struct {
	Version   int                  `json:"version"`
	Watermark time.Time            `json:"watermark"`
	LastSweep time.Time            `json:"last_sweep"`
	Rules     map[string]*ruleSnap `json:"rules"`
	Chains    []chainSnap          `json:"chains"`
}

type ruleSnap struct {
	Version string                 `json:"version"`
	Steps   int                    `json:"steps,omitempty"`
	Windows map[string]*winGroup   `json:"windows,omitempty"`
	Seqs    map[string]*seqGroup   `json:"sequences,omitempty"`
	Dedup   map[string]*dedupEntry `json:"dedup,omitempty"`
}

type chainSnap struct {
	Session string `json:"session"`
	Runner  string `json:"runner"`
	chainPos
}

// Snapshot returns the engine's state (windows, sequences, dedup windows
// with their suppressed counts, chain positions and event-time watermark)
// as JSON, so a service can checkpoint it with its consumer offsets.
func (e *Engine) Snapshot() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	doc := snapshotDoc{Version: snapshotVersion, Watermark: e.st.watermark, LastSweep: e.st.lastSweep, Rules: map[string]*ruleSnap{}}
	for i, cr := range e.rules {
		rs := e.st.rules[i]
		if len(rs.windows)+len(rs.seqs)+len(rs.dedup) == 0 {
			continue
		}
		doc.Rules[cr.rule.ID] = &ruleSnap{Version: cr.rule.Version, Steps: cr.steps, Windows: rs.windows, Seqs: rs.seqs, Dedup: rs.dedup}
	}
	for k, c := range e.st.chains {
		doc.Chains = append(doc.Chains, chainSnap{Session: k.SessionID, Runner: k.RunnerID, chainPos: *c})
	}
	slices.SortFunc(doc.Chains, func(a, b chainSnap) int {
		return cmp.Or(strings.Compare(a.Session, b.Session), strings.Compare(a.Runner, b.Runner))
	})
	return json.Marshal(doc)
}

// Restore replaces the engine's state with a snapshot. State of rules the
// engine does not run, or that changed version since, is dropped (a new
// rule version starts clean) and counted in the returned number.
func (e *Engine) Restore(data []byte) (dropped int, err error) {
	var doc snapshotDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	if doc.Version != snapshotVersion {
		return 0, fmt.Errorf("%w: version %d, want %d", ErrSnapshot, doc.Version, snapshotVersion)
	}
	st := newState(len(e.rules))
	st.watermark, st.lastSweep = doc.Watermark, doc.LastSweep
	byID := map[string]int{}
	for i, cr := range e.rules {
		byID[cr.rule.ID] = i
	}
	for id, rsnap := range doc.Rules {
		i, ok := byID[id]
		if !ok || rsnap == nil || rsnap.Version != e.rules[i].rule.Version || rsnap.Steps != e.rules[i].steps {
			dropped++
			continue
		}
		rs := st.rules[i]
		for k, w := range rsnap.Windows {
			if w != nil {
				rs.windows[k] = w
			}
		}
		for k, s := range rsnap.Seqs {
			if s == nil {
				continue
			}
			if len(s.Partials) != e.rules[i].steps-1 {
				return 0, fmt.Errorf("%w: rule %s: sequence state has %d partials", ErrSnapshot, id, len(s.Partials))
			}
			rs.seqs[k] = s
		}
		for k, d := range rsnap.Dedup {
			if d != nil {
				rs.dedup[k] = d
			}
		}
	}
	for _, c := range doc.Chains {
		pos := c.chainPos
		st.chains[events.ChainKey{SessionID: c.Session, RunnerID: c.Runner}] = &pos
	}
	e.mu.Lock()
	e.st = st
	e.mu.Unlock()
	return dropped, nil
}
