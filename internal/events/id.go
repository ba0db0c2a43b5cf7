package events

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bwmarrin/snowflake"
)

// ID is a snowflake event id: 41 bits of milliseconds since the Twitter
// epoch, 10 bits of node id, 12 bits of sequence. It is written as a decimal
// string in events.
type ID = snowflake.ID

// ErrNodeID reports a node id outside 0..1023.
var ErrNodeID = errors.New("events: snowflake node id must be 0..1023")

// ErrID reports a malformed event id.
var ErrID = errors.New("events: malformed event id")

const (
	idStepBits = 12
	idNodeBits = 10
	idStepMask = 1<<idStepBits - 1
	idNodeMax  = 1<<idNodeBits - 1
)

// IDGen issues strictly increasing snowflake ids for one node.
//
// bwmarrin's Generate measures time on the monotonic clock from NewNode, so a
// wall-clock step inside one process does not reach it, but nothing keeps a
// restarted process (or an injected clock) from going back in time, and
// Generate resets its sequence whenever the millisecond changes, backwards
// included, which re-issues ids. IDGen therefore remembers the last id it
// issued and never issues one at or below it: when time is behind, it
// continues in the last millisecond and then borrows the next ones, so ids
// stay unique and ordered, and the clock catches up.
type IDGen struct {
	mu    sync.Mutex
	node  *snowflake.Node
	nodeN int64
	clock func() time.Time
	last  int64
}

// IDOption configures an IDGen.
type IDOption func(*IDGen)

// WithClock makes the generator read time from clock instead of bwmarrin's
// monotonic clock. For tests and for replay.
func WithClock(clock func() time.Time) IDOption { return func(g *IDGen) { g.clock = clock } }

// WithFloor makes the generator issue only ids above last, for example the
// last id a previous run of this node wrote, so a clock that stepped back
// across a restart cannot repeat ids.
func WithFloor(last ID) IDOption { return func(g *IDGen) { g.last = int64(last) } }

// NewIDGen returns a generator for node (0..1023). Every emitter that runs at
// the same time needs its own node id.
func NewIDGen(node int64, opts ...IDOption) (*IDGen, error) {
	if node < 0 || node > idNodeMax {
		return nil, fmt.Errorf("%w: %d", ErrNodeID, node)
	}
	n, err := snowflake.NewNode(node)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNodeID, err)
	}
	g := &IDGen{node: n, nodeN: node}
	for _, o := range opts {
		o(g)
	}
	return g, nil
}

// Next returns the next id. It is safe for concurrent use.
func (g *IDGen) Next() ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	var cand int64
	if g.clock == nil {
		cand = int64(g.node.Generate())
	} else {
		ms := g.clock().UnixMilli() - snowflake.Epoch
		if ms < 0 {
			ms = 0
		}
		cand = ms<<(idNodeBits+idStepBits) | g.nodeN<<idStepBits
	}
	if cand <= g.last {
		ms := g.last >> (idNodeBits + idStepBits)
		step := g.last&idStepMask + 1
		if step > idStepMask {
			ms, step = ms+1, 0
		}
		cand = ms<<(idNodeBits+idStepBits) | g.nodeN<<idStepBits | step
	}
	g.last = cand
	return ID(cand)
}

// ParseID parses a decimal event id.
func ParseID(s string) (ID, error) {
	if !isSnowflake(s) {
		return 0, fmt.Errorf("%w: %q", ErrID, s)
	}
	id, err := snowflake.ParseString(s)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: %q", ErrID, s)
	}
	return id, nil
}

// IDTime returns the millisecond an id was issued at.
func IDTime(id ID) time.Time { return time.UnixMilli(id.Time()).UTC() }

// isSnowflake matches the schema's pattern for ids: a positive decimal
// int64 without leading zeros.
func isSnowflake(s string) bool {
	if len(s) == 0 || len(s) > 19 || s[0] < '1' || s[0] > '9' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) < 19 || s <= "9223372036854775807"
}
