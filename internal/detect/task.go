package detect

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers of a re-keyed match on the repartition topic.
const (
	hdrRule   = "detect-rule"   // the rule whose state the match feeds
	hdrSource = "detect-source" // topic/partition/offset it was read at
)

type loggedKey struct {
	key  string
	upTo int64
}

type tp struct {
	topic     string
	partition int32
}

type taskKind int

const (
	kindEvents      taskKind = iota // audit.events: local rules, route the rest
	kindApprovals                   // audit.approvals: route only
	kindRepartition                 // re-keyed matches: one engine per rule
)

// task is the work and state of one assigned partition.
type task struct {
	tp    tp
	kind  taskKind
	local *Engine            // kindEvents
	rules map[string]*Engine // kindRepartition, by rule id
	seen  map[string]int64   // kindRepartition, see taskState.Seen
	sqlTo map[string]time.Time

	next      int64 // offset after the last processed record
	saved     int64 // next of the last durable checkpoint
	committed int64
	dirty     bool // state changed without the offset moving (SQL runs)
	savedAt   time.Time
	outbox    []*pendingEvent
	outboxAt  time.Time
	// decided holds the identities of the alerts behind outbox.
	decided []string
	// logKeys are the log records written since the last full checkpoint.
	logKeys []loggedKey
	// inflight are deliveries of outbox events not yet reaped; lastRun is,
	// per session, when its latest delivered events are done; saving is a
	// full checkpoint being written.
	inflight []*delivery
	lastRun  map[string]chan struct{}
	saving   *saveJob
	failed   error // of a delivery reaped outside handle
	// While replaying up to suppressUntil after a restart, alerts found in
	// the log records (by identity, with multiplicity) are not raised again.
	suppress      map[string]int
	suppressUntil int64

	lastEvent   time.Time // wall clock
	lastAdvance time.Time
}

func (s *Service) newTask(k tp) *task {
	// Full checkpoints of the partitions are spread over the interval
	// rather than all taken in one batch, which would stall it.
	spread := time.Duration(rand.Int64N(int64(s.cfg.CheckpointEvery)))
	t := &task{tp: k, lastEvent: time.Now(), savedAt: time.Now().Add(-spread)}
	switch k.topic {
	case s.cfg.Topics.Events:
		t.kind = kindEvents
		t.local = NewEngine(s.rs, WithRules(s.localID...), WithLogger(s.log))
	case s.cfg.Topics.Approvals:
		t.kind = kindApprovals
	default:
		t.kind = kindRepartition
		t.rules = map[string]*Engine{}
		t.seen = map[string]int64{}
	}
	return t
}

func (t *task) engine(s *Service, rule string) *Engine {
	e := t.rules[rule]
	if e == nil {
		e = NewEngine(s.rs, WithRules(rule), WithLogger(s.log), withoutChains())
		t.rules[rule] = e
	}
	return e
}

// task returns the task of a partition, creating a fresh one for a
// partition that arrived without the assignment callback.
func (s *Service) task(topic string, partition int32) *task {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := tp{topic, partition}
	t := s.tasks[k]
	if t == nil {
		t = s.newTask(k)
		s.tasks[k] = t
	}
	return t
}

func (s *Service) sortedTasks() []*task {
	ts := slices.Collect(maps.Values(s.tasks))
	slices.SortFunc(ts, func(a, b *task) int {
		return cmp.Or(strings.Compare(a.tp.topic, b.tp.topic), cmp.Compare(a.tp.partition, b.tp.partition))
	})
	return ts
}

// process evaluates recs (one partition, in order) and appends the
// re-keyed matches to fwd.
func (s *Service) process(t *task, recs []*kgo.Record, fwd []*kgo.Record) []*kgo.Record {
	if len(recs) == 0 {
		return fwd
	}
	t.lastEvent = time.Now()
	n := 0
	defer func() { s.metrics.events.WithLabelValues(recs[0].Topic).Add(float64(n)) }()
	for _, r := range recs {
		if r.Offset < t.next {
			continue // already applied (a fetch from before a seek)
		}
		n++
		if t.suppress != nil && r.Offset >= t.suppressUntil {
			t.suppress = nil // replay done
		}
		t.next = r.Offset + 1
		switch t.kind {
		case kindRepartition:
			s.applyForwarded(t, r)
		default:
			env, err := events.Decode(r.Value)
			if err != nil {
				// The ingester sends these to the DLQ; here they are
				// counted and skipped.
				s.metrics.invalid.WithLabelValues(r.Topic).Inc()
				s.log.Debug("invalid event skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
				continue
			}
			if t.kind == kindEvents {
				alerts, err := t.local.Eval(env)
				if err != nil {
					s.metrics.invalid.WithLabelValues(r.Topic).Inc()
					continue
				}
				for _, a := range alerts {
					s.traceEvaluated(r, a)
					s.enqueue(t, a)
				}
			}
			fwd = s.route(r, env, fwd)
		}
	}
	return fwd
}

// route re-keys env's matches of non-local rules.
func (s *Service) route(r *kgo.Record, env *events.Envelope, fwd []*kgo.Record) []*kgo.Record {
	if s.router == nil {
		return fwd
	}
	routes, err := s.router.Route(env)
	if err != nil {
		return fwd
	}
	src := r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
	for _, rt := range routes {
		fwd = append(fwd, &kgo.Record{
			Topic: s.cfg.RepartitionTopic,
			// The rule id is part of the key so two rules' groups with the
			// same value spread independently.
			Key:   []byte(rt.RuleID + "\x00" + rt.Key),
			Value: r.Value,
			Headers: []kgo.RecordHeader{
				{Key: hdrRule, Value: []byte(rt.RuleID)},
				{Key: hdrSource, Value: []byte(src)},
			},
		})
	}
	return fwd
}

func (s *Service) applyForwarded(t *task, r *kgo.Record) {
	var rule, src string
	for _, h := range r.Headers {
		switch h.Key {
		case hdrRule:
			rule = string(h.Value)
		case hdrSource:
			src = string(h.Value)
		}
	}
	i := strings.LastIndexByte(src, '/')
	if rule == "" || i < 0 || s.rs.Rule(rule) == nil {
		s.metrics.invalid.WithLabelValues(r.Topic).Inc()
		return
	}
	off, err := strconv.ParseInt(src[i+1:], 10, 64)
	if err != nil {
		s.metrics.invalid.WithLabelValues(r.Topic).Inc()
		return
	}
	// A forwarder that crashed before its checkpoint forwards again what
	// it had forwarded: per source partition and rule, offsets only grow.
	seenKey := src[:i] + "|" + rule
	if last, ok := t.seen[seenKey]; ok && off <= last {
		s.metrics.duplicates.Inc()
		return
	}
	t.seen[seenKey] = off
	env, err := events.Decode(r.Value)
	if err != nil {
		s.metrics.invalid.WithLabelValues(r.Topic).Inc()
		return
	}
	alerts, err := t.engine(s, rule).Eval(env)
	if err != nil {
		s.metrics.invalid.WithLabelValues(r.Topic).Inc()
		return
	}
	for _, a := range alerts {
		s.enqueue(t, a)
	}
}

func (t *task) snapshot() (*taskState, error) {
	st := &taskState{Next: t.next, Seen: t.seen, Outbox: t.outbox, SQLTo: t.sqlTo}
	if len(t.outbox) > 0 {
		st.OutboxAt = t.outboxAt
	}
	snap := func(id string, e *Engine) error {
		b, err := e.Snapshot()
		if err != nil {
			return fmt.Errorf("%w: snapshot %s/%d: %w", ErrCheckpoint, t.tp.topic, t.tp.partition, err)
		}
		if st.Engines == nil {
			st.Engines = map[string]json.RawMessage{}
		}
		st.Engines[id] = b
		return nil
	}
	if t.local != nil {
		if err := snap("", t.local); err != nil {
			return nil, err
		}
	}
	for id, e := range t.rules {
		if err := snap(id, e); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// restore loads a partition's checkpoint and the log records written
// after it into a fresh task.
func (s *Service) restore(t *task, r *restored) error {
	if st := r.state; st != nil {
		t.next, t.saved, t.committed = st.Next, st.Next, st.Next
		t.sqlTo = st.SQLTo
		if st.Seen != nil {
			t.seen = st.Seen
		}
		for id, b := range st.Engines {
			var e *Engine
			switch {
			case id == "" && t.local != nil:
				e = t.local
			case id != "" && t.rules != nil && s.rs.Rule(id) != nil:
				e = t.engine(s, id)
			default:
				continue // a rule that is gone: its state goes with it
			}
			dropped, err := e.Restore(b)
			if err != nil {
				return fmt.Errorf("%s/%d: %w", t.tp.topic, t.tp.partition, err)
			}
			if dropped > 0 {
				s.log.Info("checkpointed state of changed rules dropped", "topic", t.tp.topic, "partition", t.tp.partition, "rules", dropped)
			}
		}
		t.outbox, t.outboxAt = st.Outbox, st.OutboxAt
	}
	var covered []string
	for _, lr := range r.logs {
		if r.state != nil && lr.UpTo <= r.state.Next {
			covered = append(covered, lr.key)
			continue
		}
		if len(t.outbox) == 0 || lr.At.Before(t.outboxAt) {
			t.outboxAt = lr.At
		}
		t.outbox = append(t.outbox, lr.Events...)
		if t.suppress == nil {
			t.suppress = map[string]int{}
		}
		for _, id := range lr.Alerts {
			t.suppress[id]++
		}
		t.suppressUntil = max(t.suppressUntil, lr.UpTo)
		if lr.SQLTo != nil {
			t.sqlTo = lr.SQLTo
		}
		t.logKeys = append(t.logKeys, loggedKey{lr.key, lr.UpTo})
	}
	s.state.forget(covered)
	for _, p := range t.outbox {
		p.MaybeSent = true
	}
	return nil
}

// onAssigned restores the checkpoints of newly assigned partitions and
// makes consumption resume where each checkpoint ends.
func (s *Service) onAssigned(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := map[string][]int32{}
	for topic, ps := range offsets {
		for p := range ps {
			parts[topic] = append(parts[topic], p)
		}
	}
	found, err := s.state.load(ctx, parts)
	if err != nil {
		if errors.Is(err, errBadCheckpoint) {
			// Starting without it would lose windows and alerts.
			s.log.Error("a checkpoint does not decode; stopping rather than losing state", "err", err)
			s.fail(err)
		} else {
			// The group rejoins and this runs again.
			s.log.Warn("cannot read checkpoints yet", "err", err)
		}
		return offsets, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range offsets {
		for p := range ps {
			k := tp{topic, p}
			t := s.newTask(k)
			t.next, t.saved, t.committed = -1, -1, -1
			if r := found[k]; r != nil {
				if err := s.restore(t, r); err != nil {
					s.fail(err)
					return offsets, err
				}
				if r.state != nil {
					ps[p] = kgo.NewOffset().At(r.state.Next).WithEpoch(-1)
				}
			}
			s.tasks[k] = t
			s.log.Info("partition assigned", "topic", topic, "partition", p, "checkpoint", found[k] != nil && found[k].state != nil, "next", t.next, "replay_to", t.suppressUntil)
		}
	}
	s.ready1()
	return offsets, nil
}

func (s *Service) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if s.halted.Load() {
		s.drop(revoked)
		return
	}
	var ts []*task
	for topic, ps := range revoked {
		for _, p := range ps {
			s.mu.Lock()
			t := s.tasks[tp{topic, p}]
			s.mu.Unlock()
			if t == nil {
				continue
			}
			if err := s.drainAndSave(ctx, t, true); err != nil {
				s.log.Error("checkpoint of a revoked partition failed; its next owner repeats the work", "topic", topic, "partition", p, "err", err)
			}
			ts = append(ts, t)
		}
	}
	s.commit(ctx, ts, true)
	s.drop(revoked)
}

func (s *Service) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) { s.drop(lost) }

func (s *Service) drop(parts map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			k := tp{topic, p}
			if t := s.tasks[k]; t != nil {
				for id, st := range t.ruleStats() {
					r := s.retired[id]
					r.Add(st)
					s.retired[id] = r
				}
			}
			delete(s.tasks, k)
		}
	}
}

func (t *task) ruleStats() map[string]RuleStats {
	out := map[string]RuleStats{}
	add := func(e *Engine) {
		for id, st := range e.RuleStats() {
			r := out[id]
			r.Add(st)
			out[id] = r
		}
	}
	if t.local != nil {
		add(t.local)
	}
	for _, e := range t.rules {
		add(e)
	}
	return out
}

func (s *Service) fail(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

// skipSent returns those of ps a predecessor has not written yet, looking
// for the recovered ones (MaybeSent) on both topics from shortly before
// since.
func (s *Service) skipSent(ctx context.Context, since time.Time, ps []*pendingEvent) ([]*pendingEvent, error) {
	want := map[string]bool{}
	for _, p := range ps {
		if p.MaybeSent {
			want[p.EventID] = true
		}
	}
	if len(want) == 0 {
		return ps, nil
	}
	found, err := s.findEvents(ctx, since.Add(-10*time.Second), want)
	if err != nil {
		return nil, err
	}
	var kept []*pendingEvent
	for _, p := range ps {
		if p.MaybeSent && found[p.EventID] {
			s.metrics.recovered.WithLabelValues("already_written").Inc()
			continue
		}
		if p.MaybeSent {
			s.metrics.recovered.WithLabelValues("written_now").Inc()
		}
		p.MaybeSent = false
		kept = append(kept, p)
	}
	return kept, nil
}

func (s *Service) findEvents(ctx context.Context, since time.Time, want map[string]bool) (map[string]bool, error) {
	topics := []string{s.cfg.Topics.Events, s.cfg.Topics.Approvals}
	adm := kadm.NewClient(s.state.cl)
	starts, err := adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("detect: outbox recovery: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("detect: outbox recovery: %w", err)
	}
	from := map[string]map[int32]kgo.Offset{}
	left := map[tp]int64{}
	starts.Each(func(o kadm.ListedOffset) {
		end, _ := ends.Lookup(o.Topic, o.Partition)
		if o.Offset >= end.Offset {
			return
		}
		if from[o.Topic] == nil {
			from[o.Topic] = map[int32]kgo.Offset{}
		}
		from[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		left[tp{o.Topic, o.Partition}] = end.Offset
	})
	found := map[string]bool{}
	if len(left) == 0 {
		return found, nil
	}
	rd, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.cfg.Brokers...), kgo.ConsumePartitions(from)}, s.kopts...)...)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	for len(left) > 0 {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := rd.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fs.NumRecords() == 0 {
			break // transaction markers or a compaction gap at the end
		}
		fs.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			if r.Offset+1 >= left[k] {
				delete(left, k)
			}
			for id := range want {
				if bytes.Contains(r.Value, []byte(`"event_id":"`+id+`"`)) {
					found[id] = true
				}
			}
		})
	}
	return found, nil
}

// runSQL runs the due SQL rules, on the instance that holds partition 0 of
// the events topic (one instance at a time), keeping each rule's progress
// in that partition's checkpoint so ranges neither overlap nor leave gaps
// across restarts.
func (s *Service) runSQL(ctx context.Context) error {
	if s.sql == nil {
		return nil
	}
	s.mu.Lock()
	t := s.tasks[tp{s.cfg.Topics.Events, 0}]
	s.mu.Unlock()
	if t == nil {
		return nil
	}
	now := time.Now().Add(-s.cfg.SQLDelay).UTC().Truncate(time.Second)
	var errs []error
	for _, r := range s.sql.Rules() {
		last, ok := t.sqlTo[r.ID]
		if ok && now.Sub(last) < r.Schedule {
			continue
		}
		from := now.Add(-r.Lookback)
		if ok && last.Before(from) {
			from = last // catch up on the time the service was away
		}
		start := time.Now()
		alerts, err := s.sql.RunRule(ctx, r, from, now)
		s.metrics.sqlSeconds.WithLabelValues(r.ID).Observe(time.Since(start).Seconds())
		if err != nil {
			s.metrics.sqlErrors.WithLabelValues(r.ID).Inc()
			errs = append(errs, err)
			continue
		}
		s.metrics.sqlRuns.WithLabelValues(r.ID).Inc()
		for _, a := range alerts {
			s.metrics.sqlAlerts.WithLabelValues(r.ID).Inc()
			s.enqueue(t, a)
		}
		if t.sqlTo == nil {
			t.sqlTo = map[string]time.Time{}
		}
		t.sqlTo[r.ID] = now
		t.dirty = true
	}
	// The alerts go out like a batch's; the progress with the next
	// checkpoint (dirty).
	s.dispatch(ctx, t)
	return errors.Join(errs...)
}
