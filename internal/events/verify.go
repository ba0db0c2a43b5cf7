package events

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// ChainBreak names how a chain is broken.
type ChainBreak string

// Chain breaks reported by the verifier.
const (
	// BreakGap: events are missing (seq jumps forward and the missing seq
	// never arrives).
	BreakGap ChainBreak = "gap"
	// BreakReorder: an event arrived out of seq order.
	BreakReorder ChainBreak = "reorder"
	// BreakDuplicate: the same event (same id and hash) arrived twice.
	BreakDuplicate ChainBreak = "duplicate"
	// BreakEdit: an event's content does not match its own hash.
	BreakEdit ChainBreak = "edit"
	// BreakWrongPrev: an event's prev_hash is not its predecessor's hash (a
	// predecessor edited with its hash recomputed, or an event spliced in).
	BreakWrongPrev ChainBreak = "wrong_prev"
	// BreakBadStart: the first event of a chain has seq 1 but a prev_hash
	// other than GenesisHash.
	BreakBadStart ChainBreak = "bad_start"
)

// ErrChainBroken: every *ChainError is one.
var ErrChainBroken = errors.New("events: hash chain broken")

// ChainError reports the first break in a chain.
type ChainError struct {
	Break ChainBreak
	Key   ChainKey
	// EventID is the event at which the break shows; PrevEventID the last
	// good event before it in the chain ("" at the start) or, for reorder
	// and duplicate, the event it collides with.
	EventID     string
	PrevEventID string
	// WantSeq is the seq expected at EventID; GotSeq the seq it has.
	WantSeq, GotSeq uint64
}

func (e *ChainError) Error() string {
	switch e.Break {
	case BreakGap:
		return fmt.Sprintf("chain %s: gap: event %s has seq %d after event %s, want seq %d", e.Key, e.EventID, e.GotSeq, e.PrevEventID, e.WantSeq)
	case BreakReorder:
		return fmt.Sprintf("chain %s: reorder: event %s (seq %d) arrived where seq %d was due (event %s)", e.Key, e.EventID, e.GotSeq, e.WantSeq, e.PrevEventID)
	case BreakDuplicate:
		return fmt.Sprintf("chain %s: duplicate: event %s (seq %d) arrived again", e.Key, e.EventID, e.GotSeq)
	case BreakEdit:
		return fmt.Sprintf("chain %s: edit: event %s (seq %d) does not match its hash", e.Key, e.EventID, e.GotSeq)
	case BreakWrongPrev:
		return fmt.Sprintf("chain %s: wrong_prev: event %s (seq %d) prev_hash is not the hash of event %s", e.Key, e.EventID, e.GotSeq, e.PrevEventID)
	case BreakBadStart:
		return fmt.Sprintf("chain %s: bad_start: event %s has seq 1 but prev_hash is not the genesis hash", e.Key, e.EventID)
	}
	return fmt.Sprintf("chain %s: %s at event %s", e.Key, e.Break, e.EventID)
}

// Unwrap makes errors.Is(err, ErrChainBroken) true.
func (e *ChainError) Unwrap() error { return ErrChainBroken }

// Verifier checks events of any number of chains as they arrive. Events of
// one chain must arrive in seq order; chains may interleave.
type Verifier struct {
	heads    map[ChainKey]*chainHead
	partial  bool
	anyOrder bool
}

type chainHead struct {
	seq  uint64
	hash string
	id   string
}

// VerifyOption configures a Verifier.
type VerifyOption func(*Verifier)

// FromAnywhere accepts the first event seen of each chain at any seq, for
// checking a window of a chain (for example one day of a long session). The
// first event's own hash is still checked; its link to the events before the
// window is not. Without it, every chain must start at seq 1.
func FromAnywhere() VerifyOption { return func(v *Verifier) { v.partial = true } }

// AnyOrder makes VerifyChain sort each chain by seq before checking it, for
// events gathered from several topics or partitions (a runner's approval
// events travel on audit.approvals, its other events on audit.events), or
// read from storage. Reorders are then not reported; gaps, duplicates,
// edits and wrong links still are. Verifier.Add ignores it.
func AnyOrder() VerifyOption { return func(v *Verifier) { v.anyOrder = true } }

// NewVerifier returns a Verifier with no chains seen.
func NewVerifier(opts ...VerifyOption) *Verifier {
	v := &Verifier{heads: map[ChainKey]*chainHead{}}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Resume declares the last verified event of a chain (for a verifier that
// continues where an earlier run stopped).
func (v *Verifier) Resume(k ChainKey, seq uint64, hash, eventID string) {
	v.heads[k] = &chainHead{seq: seq, hash: hash, id: eventID}
}

// Head returns the last good event of a chain.
func (v *Verifier) Head(k ChainKey) (seq uint64, hash, eventID string, ok bool) {
	h := v.heads[k]
	if h == nil {
		return 0, "", "", false
	}
	return h.seq, h.hash, h.id, true
}

// Add checks the next event. After a break the chain continues from env, so
// that one break is reported once and later events are still checked. A
// forward jump in seq is reported as a gap: a streaming verifier cannot know
// whether the missing events come later (VerifyChain can).
func (v *Verifier) Add(env *Envelope) error {
	k := env.Key()
	h := v.heads[k]
	want := uint64(1)
	prevHash, prevID := GenesisHash, ""
	if h != nil {
		want, prevHash, prevID = h.seq+1, h.hash, h.id
	}
	breakAt := func(b ChainBreak, other string) error {
		return &ChainError{Break: b, Key: k, EventID: env.EventID, PrevEventID: other, WantSeq: want, GotSeq: env.Seq}
	}
	advance := func() { v.heads[k] = &chainHead{seq: env.Seq, hash: env.Hash, id: env.EventID} }
	// Position first: a missing or misplaced event is the earlier fault.
	switch {
	case h == nil && v.partial:
		want = env.Seq
	case env.Seq > want:
		advance()
		return breakAt(BreakGap, prevID)
	case env.Seq < want:
		if h != nil && env.Seq == h.seq && env.EventID == h.id && env.Hash == h.hash {
			return breakAt(BreakDuplicate, h.id)
		}
		return breakAt(BreakReorder, prevID)
	}
	// Then content, then the link to the predecessor.
	if hash, err := ComputeHash(env); err != nil || hash != env.Hash {
		advance()
		return breakAt(BreakEdit, prevID)
	}
	switch {
	case h == nil && v.partial:
	case h == nil && env.PrevHash != GenesisHash:
		advance()
		return breakAt(BreakBadStart, "")
	case env.PrevHash != prevHash:
		advance()
		return breakAt(BreakWrongPrev, prevID)
	}
	advance()
	return nil
}

// VerifyChain checks events of one or more chains, in the order given, and
// returns the first break as a *ChainError (nil when every chain is whole).
// Unlike Verifier.Add it looks ahead: a seq that jumps forward is a reorder
// when the missing seq arrives later in events, and a gap otherwise.
func VerifyChain(events []*Envelope, opts ...VerifyOption) error {
	v := NewVerifier(opts...)
	if v.anyOrder {
		events = slices.Clone(events)
		first := map[ChainKey]int{}
		for i, e := range events {
			if _, ok := first[e.Key()]; !ok {
				first[e.Key()] = i
			}
		}
		slices.SortStableFunc(events, func(a, b *Envelope) int {
			if c := cmp.Compare(first[a.Key()], first[b.Key()]); c != 0 {
				return c
			}
			return cmp.Compare(a.Seq, b.Seq)
		})
	}
	for i, e := range events {
		err := v.Add(e)
		if err == nil {
			continue
		}
		var ce *ChainError
		if errors.As(err, &ce) && ce.Break == BreakGap {
			for _, later := range events[i+1:] {
				if later.Key() == ce.Key && later.Seq >= ce.WantSeq && later.Seq < ce.GotSeq {
					ce.Break = BreakReorder
					ce.PrevEventID = later.EventID
					break
				}
			}
		}
		return err
	}
	return nil
}
