package ingest

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
)

// Break kinds the checker records beyond store's (gap, reorder, edit,
// wrong_prev, duplicate_seq).
const breakBadStart = "bad_start" // seq 1 whose prev_hash is not the genesis hash

// link is what the chain checker needs of an event: its place in its chain,
// whether its content matches its hash (checked by the decode workers), and
// where it came from.
type link struct {
	key     events.ChainKey
	seq     uint64
	prev    string
	hash    string
	eventID uint64
	tenant  string
	time    time.Time
	rts     int64 // the record's timestamp, Unix ms: where its topics were read to
	src     store.Source
	editOK  bool
}

// chainSeq names one event position, for storage look-ups.
type chainSeq struct {
	key events.ChainKey
	seq uint64
}

// stored is an event of a chain as the events table has it.
type stored struct {
	hash    string
	eventID uint64
}

type chainState struct {
	known    bool
	seq      uint64
	hash     string
	id       uint64
	parked   []link // by seq; each waits for its predecessor
	since    time.Time
	sinceGen uint64      // the batch parked[0] began waiting in
	lookedUp bool        // parked[0]'s predecessor was looked up once already
	gaps     [][2]uint64 // recently reported gaps [from, to), to tell a late event
	last     time.Time
	part     int32 // the partition its events come from (the same on both topics)
}

func (st *chainState) gapsOrNil() [][2]uint64 {
	if st == nil {
		return nil
	}
	return st.gaps
}

// checker checks hash-chain links across batches. The batcher adds links
// and the flusher settles them; the ingester serialises the two
// (ingester.chainMu).
type checker struct {
	grace   time.Duration
	started time.Time
	// caughtUp reports whether every consumed partition was read to its
	// high watermark at the last fetch. A missing predecessor may still be
	// on its way from a partition that lags, so grace only runs out while
	// the consumer is caught up.
	caughtUp  func() bool
	m         *metrics
	chains    map[events.ChainKey]*chainState
	parked    int
	maxChains int
	suspects  []suspect // seq at or behind the head: compared with storage
	breaks    []store.ChainBreak
	breakGen  []uint64 // the batch each break was found in

	// Links are added as their batch streams, before its insert is
	// accepted. gen is the batch being added, inserted the last batch
	// whose rows are stored: a suspect is compared with storage only once
	// its own batch is stored, or the event it collides with could still
	// be on its way there.
	gen, inserted uint64
	// asked is what the last lookups returned: resolve acts on those
	// positions only, since links may be added between the two.
	asked         map[chainSeq]bool
	askedSuspects int

	// A missing predecessor may be on its way on the other topic; it is a
	// gap only once that topic's partition was read past the waiting
	// event (see past). topics are the chain's two topics; paired says
	// they have as many partitions, so that a chain is on the
	// same-numbered partition of each; owned is this member's assignment
	// and pos how far each owned partition was read.
	topics [2]string
	paired bool
	owned  map[topicPartition]bool
	pos    map[topicPartition]*partPos
}

// partPos is how far the checker has been fed one partition, and what
// Kafka last said of its ends.
type partPos struct {
	fed  bool
	ts   int64 // newest record timestamp fed, Unix ms
	next int64 // offset after the last record fed
	// listed: when start and end were read from Kafka; start is where
	// consumption began (the committed offset, else the log start), end
	// the last stable offset.
	listed     time.Time
	start, end int64
}

// suspect is a link at or behind its chain's head, and the batch it came
// in.
type suspect struct {
	link
	gen uint64
}

func newChecker(grace time.Duration, m *metrics) *checker {
	// maxChains bounds the chain heads kept: each is pointer-dense memory
	// the collector scans, and at 200k they were a fifth of the heap of a
	// 1M-event catch-up. A chain evicted and seen again resumes from
	// storage.
	return &checker{grace: grace, m: m, chains: map[events.ChainKey]*chainState{}, maxChains: 50_000,
		started: time.Now(), caughtUp: func() bool { return true },
		owned: map[topicPartition]bool{}, pos: map[topicPartition]*partPos{}}
}

// add checks the next event of a chain in consumption order.
func (c *checker) add(l link, now time.Time) {
	st := c.chains[l.key]
	if st == nil {
		st = &chainState{}
		c.chains[l.key] = st
	}
	st.last, st.part = now, l.src.Partition
	if !st.known {
		if l.seq == 1 {
			c.apply(st, l, true)
			c.drain(st)
			return
		}
		c.park(st, l, now)
		return
	}
	c.next(st, l, now)
}

// next places l against a known head.
func (c *checker) next(st *chainState, l link, now time.Time) {
	switch {
	case l.seq == st.seq+1:
		c.apply(st, l, true)
		c.drain(st)
	case l.seq > st.seq+1:
		c.park(st, l, now)
	case l.seq == st.seq && l.eventID == st.id && l.hash == st.hash:
		c.m.redelivered.Inc()
	default:
		c.suspects = append(c.suspects, suspect{l, c.gen})
	}
}

// apply advances the chain to l, recording what is wrong with l's content
// or (when linked) its link to the head.
func (c *checker) apply(st *chainState, l link, linked bool) {
	switch {
	case !l.editOK:
		c.record(l, store.BreakEdit, st.seq+1, "", "", "content does not match its hash")
	case !linked:
	case l.seq == 1 && l.prev != events.GenesisHash:
		c.record(l, breakBadStart, 1, events.GenesisHash, l.prev, "seq 1 with a prev_hash other than the genesis hash")
	case l.seq > 1 && l.prev != st.hash:
		c.record(l, store.BreakWrongPrev, st.seq+1, st.hash, l.prev, fmt.Sprintf("prev_hash is not the hash of seq %d", st.seq))
	}
	st.known, st.seq, st.hash, st.id = true, l.seq, l.hash, l.eventID
}

// drain applies parked events that now follow the head.
func (c *checker) drain(st *chainState) {
	for len(st.parked) > 0 && st.parked[0].seq <= st.seq+1 {
		l := st.parked[0]
		st.parked = st.parked[1:]
		c.parked--
		// The chain moved: what is still parked gets a fresh grace.
		st.lookedUp, st.since, st.sinceGen = false, st.last, c.gen
		c.next(st, l, st.last)
	}
	if len(st.parked) == 0 {
		st.parked = nil
	}
	c.m.parked.Set(float64(c.parked))
}

func (c *checker) park(st *chainState, l link, now time.Time) {
	i := sort.Search(len(st.parked), func(i int) bool { return st.parked[i].seq >= l.seq })
	if i < len(st.parked) && st.parked[i].seq == l.seq {
		if st.parked[i].hash == l.hash && st.parked[i].eventID == l.eventID {
			c.m.redelivered.Inc()
			return
		}
		c.suspects = append(c.suspects, suspect{l, c.gen})
		return
	}
	if len(st.parked) == 0 {
		st.since, st.sinceGen = now, c.gen
	}
	if i == 0 {
		// A new first parked event: its own predecessor is not looked up
		// yet (after a handover it may be stored).
		st.lookedUp = false
	}
	st.parked = slices.Insert(st.parked, i, l)
	c.parked++
	c.m.parked.Set(float64(c.parked))
}

// lookups returns the positions to read from storage now: the predecessor
// of the first parked event of chains never seen before (at once, to resume
// after a restart) and of chains parked for longer than the grace (or all,
// when force: partitions are being handed over), and the positions of
// suspects.
func (c *checker) lookups(now time.Time, force bool) []chainSeq {
	var out []chainSeq
	if c.asked == nil {
		c.asked = map[chainSeq]bool{}
	}
	clear(c.asked)
	for k, st := range c.chains {
		if len(st.parked) == 0 {
			continue
		}
		if force || c.expired(st, now) || c.resuming(st, now) {
			cs := chainSeq{k, st.parked[0].seq - 1}
			out = append(out, cs)
			c.asked[cs] = true
		}
	}
	c.askedSuspects = 0
	for _, s := range c.suspects {
		if s.gen > c.inserted {
			break // added in order: the rest are later still
		}
		out = append(out, chainSeq{s.key, s.seq})
		c.askedSuspects++
	}
	return out
}

// expired: st's first parked event waited the grace, and every partition
// that could carry its predecessor was read past it (see past). The grace
// covers a producer's records still in flight; the position covers a
// consumer that reads one topic behind the other, by any amount (after a
// rebalance, the new owner's fetches of one topic may start seconds after
// the other's). When the other topic's partition is not known to carry the
// chain (topics of different partition counts), the consumer must be
// caught up instead, or ten times the grace must pass (a consumer that
// never quite catches up must still report gaps and move its commits).
func (c *checker) expired(st *chainState, now time.Time) bool {
	if st.sinceGen > c.inserted {
		return false // its batch is still streaming: see settle
	}
	waited := now.Sub(st.since)
	if waited < c.grace {
		return false
	}
	first := st.parked[0]
	if tp, ok := c.partner(first); ok {
		return c.past(tp, first, st.since)
	}
	return c.caughtUp() || waited >= 10*c.grace
}

// partner is the partition of the other topic that carries l's chain, when
// this member reads it: its predecessor is there or earlier on l's own
// partition, which was read in order up to l.
func (c *checker) partner(l link) (topicPartition, bool) {
	if !c.paired {
		return topicPartition{}, false
	}
	var tp topicPartition
	switch l.src.Topic {
	case c.topics[0]:
		tp = topicPartition{c.topics[1], l.src.Partition}
	case c.topics[1]:
		tp = topicPartition{c.topics[0], l.src.Partition}
	default:
		return tp, false
	}
	return tp, c.owned[tp]
}

// past reports whether partition tp was read past l: a record newer than
// l (record time) was fed from it, or everything it held when it was last
// listed, after l began waiting (since), was fed. A chain's events are
// produced in order by one runner, so its predecessor is older than l.
func (c *checker) past(tp topicPartition, l link, since time.Time) bool {
	p := c.pos[tp]
	if p == nil {
		return false
	}
	if p.fed && p.ts > l.rts {
		return true
	}
	if p.listed.IsZero() || p.listed.Before(since) {
		return false
	}
	at := p.start
	if p.fed {
		at = p.next
	}
	return at >= p.end
}

// unlisted returns the partitions whose ends must be read from Kafka to
// tell whether a parked event past its grace waits for a predecessor still
// to come: those not read past it by record time and not listed since it
// began waiting.
func (c *checker) unlisted(now time.Time) []topicPartition {
	var out []topicPartition
	for _, st := range c.chains {
		if len(st.parked) == 0 || st.sinceGen > c.inserted || now.Sub(st.since) < c.grace {
			continue
		}
		first := st.parked[0]
		tp, ok := c.partner(first)
		if !ok || c.past(tp, first, st.since) {
			continue
		}
		if p := c.pos[tp]; p != nil && !p.listed.Before(st.since) {
			continue
		}
		if !slices.Contains(out, tp) {
			out = append(out, tp)
		}
	}
	return out
}

// fed records that partition tp was fed up to a record of time ts (Unix
// ms) and offset next-1.
func (c *checker) fed(tp topicPartition, ts, next int64) {
	p := c.pos[tp]
	if p == nil {
		p = &partPos{}
		c.pos[tp] = p
	}
	p.fed, p.ts, p.next = true, max(p.ts, ts), max(p.next, next)
}

// listed records partition tp's start and end as read from Kafka at at
// (when the request was sent).
func (c *checker) listed(tp topicPartition, start, end int64, at time.Time) {
	p := c.pos[tp]
	if p == nil {
		p = &partPos{}
		c.pos[tp] = p
	}
	p.listed, p.start, p.end = at, start, end
}

// assign records partitions assigned to this member.
func (c *checker) assign(tps map[string][]int32) {
	for t, ps := range tps {
		for _, p := range ps {
			c.owned[topicPartition{t, p}] = true
		}
	}
}

// forget drops what the checker knows of partitions handed over, and of
// the chains they carry: their next owner resumes the chains from storage
// and reads their parked events again (commits stayed below them). If a
// partition comes back, it is read again from its committed offset, so
// what was known of it may be stale.
func (c *checker) forget(tps map[string][]int32, now time.Time) {
	gone := map[int32]bool{}
	for t, ps := range tps {
		for _, p := range ps {
			tp := topicPartition{t, p}
			delete(c.owned, tp)
			delete(c.pos, tp)
			if t == c.topics[0] || t == c.topics[1] {
				gone[p] = true
			}
		}
	}
	for k, st := range c.chains {
		if !gone[st.part] {
			continue
		}
		c.parked -= len(st.parked)
		delete(c.chains, k)
	}
	// Chains seen again resume from storage at once, as after a start.
	c.started = now
	c.m.parked.Set(float64(c.parked))
}

// resuming: a chain first seen mid-way in the first grace after start is
// looked up soon, to continue from what an earlier run stored: at once
// while the consumer is caught up, else after resumeWait, since while the
// topics are still being read its predecessor is far more often on its
// way on the other topic (the look-ups scan the events table). Later, a
// chain first seen mid-way waits like any parked event.
func (c *checker) resuming(st *chainState, now time.Time) bool {
	return st.sinceGen <= c.inserted && !st.known && !st.lookedUp && now.Sub(c.started) < c.grace &&
		(c.caughtUp() || now.Sub(st.since) >= min(resumeWait, c.grace))
}

// settle marks batch gen stored: events that began waiting in it wait
// their grace from now. Links are added as their batch streams, and the
// batch can take longer to store than the grace; counting from when they
// were added, an event would run out of grace before its predecessor,
// fetched in the next poll, was added.
func (c *checker) settle(gen uint64, now time.Time) {
	c.inserted = max(c.inserted, gen)
	if gen == 0 {
		return
	}
	for _, st := range c.chains {
		if len(st.parked) > 0 && st.sinceGen == gen {
			st.since = now
		}
	}
}

// resumeWait is how long a chain first seen mid-way waits for its
// predecessor while the consumer is behind: the topics are read at most
// maxTopicSkew apart, so the predecessor is usually there by then.
const resumeWait = 2*maxTopicSkew + 2*time.Second

// resolve uses what storage returned for lookups: resumes chains from a
// stored predecessor, reports gaps for chains past their grace, and
// classifies suspects.
func (c *checker) resolve(found map[chainSeq][]stored, now time.Time, force bool) {
	for _, st := range c.chains {
		if len(st.parked) == 0 {
			continue
		}
		first := st.parked[0]
		if !c.asked[chainSeq{first.key, first.seq - 1}] {
			continue // parked since the lookups: next time
		}
		// force only asks storage: a handover is no reason to call a
		// predecessor missing (the next owner reads the event again).
		expired := c.expired(st, now)
		if !expired && !force && !c.resuming(st, now) {
			continue
		}
		if pred := found[chainSeq{first.key, first.seq - 1}]; len(pred) > 0 {
			// An earlier run ingested the predecessor: continue from it.
			p := pred[0]
			for _, s := range pred {
				if s.hash == first.prev {
					p = s
				}
			}
			st.known, st.seq, st.hash, st.id = true, first.seq-1, p.hash, p.eventID
			c.drain(st)
			continue
		}
		if !expired {
			st.lookedUp = true
			continue
		}
		want := uint64(1)
		if st.known {
			want = st.seq + 1
		}
		c.record(first, store.BreakGap, want, "", "", fmt.Sprintf("seq %d..%d missing after %s", want, first.seq-1, c.grace))
		st.gaps = append(st.gaps, [2]uint64{want, first.seq})
		if len(st.gaps) > 4 {
			st.gaps = st.gaps[1:]
		}
		st.parked = st.parked[1:]
		c.parked--
		c.apply(st, first, false)
		c.drain(st)
	}
	asked := c.suspects[:c.askedSuspects]
	for _, s := range asked {
		l := s.link
		other := ""
		for _, s := range found[chainSeq{l.key, l.seq}] {
			if s.hash != l.hash {
				other = s.hash
			}
		}
		// A suspect waits for its batch's insert, so its chain may have
		// been evicted meanwhile: then no gap of it is remembered.
		st := c.chains[l.key]
		late := false
		for _, g := range st.gapsOrNil() {
			late = late || (l.seq >= g[0] && l.seq < g[1])
		}
		switch {
		case other != "":
			c.record(l, store.BreakDuplicateSeq, l.seq, other, l.hash, fmt.Sprintf("another event with seq %d is stored (hash %s)", l.seq, other))
		case late:
			c.record(l, store.BreakReorder, st.seq+1, "", "", fmt.Sprintf("seq %d arrived after the chain went on to seq %d", l.seq, st.seq))
		default:
			c.m.redelivered.Inc()
		}
	}
	// Suspects found while resolving were appended after the asked ones.
	n := copy(c.suspects, c.suspects[len(asked):])
	clear(c.suspects[n:])
	c.suspects = c.suspects[:n]
	c.askedSuspects = 0
	clear(c.asked)
	c.m.parked.Set(float64(c.parked))
	c.evict()
}

// evict forgets the least recently seen chains without parked events when
// there are too many; a forgotten chain seen again resumes from storage.
func (c *checker) evict() {
	if len(c.chains) <= c.maxChains {
		return
	}
	var lasts []time.Time
	for _, st := range c.chains {
		if len(st.parked) == 0 {
			lasts = append(lasts, st.last)
		}
	}
	drop := len(c.chains) - c.maxChains*3/4
	if drop <= 0 || len(lasts) == 0 {
		return
	}
	slices.SortFunc(lasts, func(a, b time.Time) int { return a.Compare(b) })
	cut := lasts[min(drop, len(lasts))-1]
	for k, st := range c.chains {
		if len(st.parked) == 0 && !st.last.After(cut) {
			delete(c.chains, k)
		}
	}
}

// parkedFloor returns, per partition, the offset of the oldest parked
// event: commits must stay below it so a restart redelivers it.
func (c *checker) parkedFloor() map[topicPartition]int64 {
	out := map[topicPartition]int64{}
	for _, st := range c.chains {
		for _, l := range st.parked {
			tp := topicPartition{l.src.Topic, l.src.Partition}
			if o, ok := out[tp]; !ok || l.src.Offset < o {
				out[tp] = l.src.Offset
			}
		}
	}
	return out
}

func (c *checker) record(l link, kind string, want uint64, wantPrev, gotPrev, detail string) {
	c.m.breaks.WithLabelValues(kind).Inc()
	c.breakGen = append(c.breakGen, c.gen)
	c.breaks = append(c.breaks, store.ChainBreak{
		EventTime: l.time, Tenant: l.tenant, SessionID: l.key.SessionID, RunnerID: l.key.RunnerID,
		Kind: kind, EventID: l.eventID, ExpectedSeq: want, GotSeq: l.seq,
		ExpectedPrevHash: wantPrev, GotPrevHash: gotPrev, Detail: detail, Source: l.src,
	})
}

// takeBreaks returns and forgets the breaks recorded so far in batches
// whose rows are stored; the rest wait for their batch.
func (c *checker) takeBreaks() []store.ChainBreak {
	n := 0
	for n < len(c.breaks) && c.breakGen[n] <= c.inserted {
		n++
	}
	b := slices.Clone(c.breaks[:n])
	c.breaks = slices.Delete(c.breaks, 0, n)
	c.breakGen = slices.Delete(c.breakGen, 0, n)
	return b
}

// putBreaks puts back breaks takeBreaks returned and could not be
// inserted, ahead of the rest.
func (c *checker) putBreaks(b []store.ChainBreak) {
	c.breaks = append(b, c.breaks...)
	c.breakGen = append(make([]uint64, len(b)), c.breakGen...)
}
