package detect

import (
	"context"
	"maps"
	"slices"
	"time"
)

// maxInflight bounds a partition's deliveries in flight: past it the poll
// loop waits for the oldest, so a Kafka that stops acknowledging slows
// consumption down instead of piling up decided alerts in memory.
const maxInflight = 64

// delivery writes what one batch of one partition decided, off the poll
// loop: its log record first (so a restart knows these alerts were
// raised), then its events, each session's in order and after that
// session's events of earlier deliveries. The loop reaps it when done:
// only acknowledged events leave the outbox, so a checkpoint taken in the
// meantime still holds the rest.
type delivery struct {
	events []*pendingEvent
	// lr is the log record written ahead of the events; nil for events
	// recovered from a checkpoint, which are durable already but may have
	// been written by a predecessor (MaybeSent): those are looked up first.
	lr    *logRecord
	key   string
	since time.Time // recovered events: where the lookup starts
	// runs is, per session, closed when that session's events are done;
	// a later delivery's run of the same session waits for it.
	runs   map[string]chan struct{}
	done   chan struct{}
	logged bool
	err    error
}

// dispatch hands t's decided events that no delivery holds yet to new
// deliveries. It runs on the poll loop (or with the loop stopped).
func (s *Service) dispatch(ctx context.Context, t *task) {
	var fresh, recovered []*pendingEvent
	for _, p := range t.outbox {
		if p.queued {
			continue
		}
		p.queued = true
		if p.MaybeSent {
			recovered = append(recovered, p)
		} else {
			fresh = append(fresh, p)
		}
	}
	if len(recovered) > 0 {
		s.startDelivery(ctx, t, &delivery{events: recovered, since: t.outboxAt})
	}
	if len(fresh) > 0 {
		// Between full checkpoints, what a batch decided goes ahead of its
		// events as a small log record; a restart replays from the last
		// checkpoint and finds its alerts there instead of raising them
		// again.
		lr := &logRecord{UpTo: t.next, At: time.Now(), Events: fresh, Alerts: t.decided, SQLTo: maps.Clone(t.sqlTo)}
		s.startDelivery(ctx, t, &delivery{events: fresh, lr: lr, key: s.state.logPrefix(t.tp.topic, t.tp.partition) + fresh[0].EventID})
		t.decided = nil
	}
}

func (s *Service) startDelivery(ctx context.Context, t *task, d *delivery) {
	for len(t.inflight) >= maxInflight {
		<-t.inflight[0].done
		if err := s.reap(t); err != nil {
			t.failed = err // handle's next reap returns it
		}
	}
	s.traceOutbox(d.events, func(x *alertStages, now time.Time) { x.queued = now })
	if t.lastRun == nil {
		t.lastRun = map[string]chan struct{}{}
	}
	type run struct {
		prev, done chan struct{}
		events     []*pendingEvent
	}
	var runs []*run
	bySession := map[string]*run{}
	d.runs = map[string]chan struct{}{}
	for _, p := range d.events {
		r := bySession[p.SessionID]
		if r == nil {
			r = &run{prev: t.lastRun[p.SessionID], done: make(chan struct{})}
			bySession[p.SessionID] = r
			runs = append(runs, r)
			t.lastRun[p.SessionID] = r.done
			d.runs[p.SessionID] = r.done
		}
		r.events = append(r.events, p)
	}
	d.done = make(chan struct{})
	t.inflight = append(t.inflight, d)
	ectx := context.WithoutCancel(ctx) // finish what the log record promised
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(d.done)
		var err error
		if d.lr != nil {
			err = s.saveLog(ctx, d.key, d.lr)
			d.logged = err == nil
			s.traceOutbox(d.events, func(x *alertStages, now time.Time) { x.logged = now })
		} else {
			var write []*pendingEvent
			if write, err = s.skipSent(ctx, d.since, d.events); err == nil {
				for _, p := range d.events {
					p.acked = !slices.Contains(write, p) // found on the topic
				}
				for _, r := range runs {
					r.events = slices.DeleteFunc(r.events, func(p *pendingEvent) bool { return !slices.Contains(write, p) })
				}
			}
		}
		errs := make([]error, len(runs))
		sem := make(chan struct{}, 32)
		for i, r := range runs {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				defer close(r.done)
				if r.prev != nil {
					<-r.prev
				}
				if err != nil {
					return // nothing of this delivery is written
				}
				for _, p := range r.events {
					p.tried = true
					if errs[i] = s.emitOne(ectx, p); errs[i] != nil {
						return
					}
					p.acked = true
				}
			}()
		}
		for range cap(sem) {
			sem <- struct{}{}
		}
		d.err = err
		for _, e := range errs {
			if d.err == nil {
				d.err = e
			}
		}
	}()
}

// reap takes t's finished deliveries off the outbox and returns the first
// error one of them met since the last call. It runs on the poll loop (or
// with it stopped).
func (s *Service) reap(t *task) error {
	s.reapSave(t)
	first := t.failed
	t.failed = nil
	kept := t.inflight[:0]
	changed := false
	for _, d := range t.inflight {
		select {
		case <-d.done:
		default:
			kept = append(kept, d)
			continue
		}
		changed = true
		for sess, done := range d.runs {
			if t.lastRun[sess] == done {
				delete(t.lastRun, sess)
			}
		}
		if d.logged {
			if d.lr.UpTo <= t.saved {
				s.state.forget([]string{d.key}) // a checkpoint covers it already
			} else {
				t.logKeys = append(t.logKeys, loggedKey{d.key, d.lr.UpTo})
			}
		}
		for _, p := range d.events {
			p.sent = p.acked // read only once d is done: its goroutines wrote it
		}
		if d.err != nil {
			if first == nil {
				first = d.err
			}
			// Perhaps written (an ack lost): whoever writes them next looks
			// first.
			for _, p := range d.events {
				if !p.acked {
					p.queued = false
					p.MaybeSent = p.MaybeSent || p.tried
				}
			}
		}
	}
	clear(t.inflight[len(kept):])
	t.inflight = kept
	if changed {
		t.outbox = slices.DeleteFunc(t.outbox, func(p *pendingEvent) bool { return p.sent })
		if len(t.outbox) == 0 {
			t.outbox, t.outboxAt = nil, time.Time{}
		}
	}
	return first
}

// settle waits for t's deliveries and checkpoint in flight and reaps them.
func (s *Service) settle(t *task) error {
	for _, d := range t.inflight {
		<-d.done
	}
	if t.saving != nil {
		<-t.saving.done
	}
	return s.reap(t)
}

// saveJob is a full checkpoint being written off the poll loop.
type saveJob struct {
	st   *taskState
	n    int
	err  error
	done chan struct{}
}

// saveDue reports whether t's periodic checkpoint is due and none is in
// flight.
func (s *Service) saveDue(t *task, now time.Time) bool {
	return t.saving == nil && (t.dirty || t.next > t.saved && now.Sub(t.savedAt) >= s.cfg.CheckpointEvery)
}

// snapshotForSave takes t's checkpoint: it must run between batches of
// t's partition (state and offset agree), but may run beside other
// partitions' evaluation.
func (s *Service) snapshotForSave(t *task) (*taskState, error) {
	start := time.Now()
	st, err := t.snapshot()
	if err != nil {
		return nil, err
	}
	s.trace.loopStage("checkpoint snapshot", time.Since(start))
	// The loop goes on changing these; the checkpoint is of now.
	st.Seen, st.SQLTo, st.Outbox = maps.Clone(st.Seen), maps.Clone(st.SQLTo), slices.Clone(st.Outbox)
	return st, nil
}

// startSave writes checkpoint st of t in the background; reap applies it.
func (s *Service) startSave(ctx context.Context, t *task, st *taskState) {
	t.dirty = false
	j := &saveJob{st: st, done: make(chan struct{})}
	t.saving = j
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(j.done)
		start := time.Now()
		j.n, j.err = s.writeState(ctx, t.tp, st)
		s.trace.loopStage("checkpoint write (off the loop)", time.Since(start))
		s.trace.count("checkpoint bytes", j.n)
	}()
}

func (s *Service) reapSave(t *task) {
	j := t.saving
	if j == nil {
		return
	}
	select {
	case <-j.done:
	default:
		return
	}
	t.saving = nil
	if j.err != nil {
		t.dirty = true // try again at the next turn
		return
	}
	s.applySaved(t, j.st, j.n)
}
