package ingest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/agentaudit/agentaudit/internal/store"
)

// flushLoop completes batches in order: it waits for each batch's
// streamed insert, then writes dead letters and chain breaks and commits.
// The next batch streams meanwhile; Config.Inserts bounds how many cut
// batches wait here. An insert that fails ends the session (the records
// are read again from the committed offsets, see Run), and nothing after
// it commits. When ctx (the hard shutdown bound) ends while finishing a
// batch it stops: what is not committed is redelivered on restart.
func (in *ingester) flushLoop(ctx context.Context, flushes <-chan *batch) {
	failed := false
	for b := range flushes {
		if failed {
			// Nothing after a failed batch may commit; end its insert
			// unaccepted, or wait for the one already closing. A drain
			// lets its partitions go uncommitted: the next owner reads
			// them again.
			if b.barrier != nil {
				close(b.barrier)
			}
			if b.closed != nil {
				<-b.closed
			} else if b.stream != nil {
				b.stream.Abort()
				b.stopped()
			}
			continue
		}
		if b.closed == nil && b.rows > 0 {
			in.close(b)
		}
		if err := in.insertEvents(b); err != nil {
			failed = true
			in.rewind(fmt.Errorf("%w: %w", errInsertFailed, err))
			continue
		}
		if err := in.finish(ctx, b); err != nil {
			in.log.Error("flush abandoned at shutdown; uncommitted records will be redelivered", "err", err)
			failed = true
		}
	}
}

// insertEvents waits for the batch's streamed insert.
func (in *ingester) insertEvents(b *batch) error {
	if b.closed == nil {
		return nil
	}
	if err := <-b.closed; err != nil {
		return err
	}
	if b.rows == 0 {
		return nil
	}
	if in.failures > 0 {
		in.log.Info("recovered", "op", "insert_events", "attempts", in.failures+1)
		in.failures = 0
		in.m.failing.Add(-1)
	}
	in.m.chUp.Set(1)
	in.m.insertSecs.WithLabelValues("events").Observe(time.Since(b.opened).Seconds())
	in.m.inserted.Add(float64(b.rows))
	in.m.batchRows.Observe(float64(b.rows))
	in.crash.afterInsert(int(in.inserts.Add(1)))
	return nil
}

// finish does what follows a batch's insert, then commits it.
func (in *ingester) finish(ctx context.Context, b *batch) error {
	if b.barrier != nil {
		defer close(b.barrier)
		// Partitions are moving: resume from storage what can be; what
		// still waits stays uncommitted, and its next owner reads it
		// again and decides.
		if err := in.checkChains(ctx, 0, true); err != nil {
			return err
		}
		if err := in.commit(ctx, nil); err != nil {
			return err
		}
		in.forget(b.revoked)
		return nil
	}
	if len(b.dead) > 0 {
		if err := in.deadLetters(ctx, b.dead); err != nil {
			return err
		}
	}
	if err := in.checkChains(ctx, b.gen, false); err != nil {
		return err
	}
	b.dead = nil
	return in.commit(ctx, b.next)
}

// deadLetters produces dead letters to the DLQ topic (acks=all) and
// inserts them into dlq_events; both before the batch's commit.
func (in *ingester) deadLetters(ctx context.Context, ds []dead) error {
	recs := make([]*kgo.Record, len(ds))
	rows := make([]store.DLQRow, len(ds))
	for i, d := range ds {
		rows[i] = d.row
		recs[i] = &kgo.Record{
			Topic: in.cfg.Topics.DLQ, Key: d.rec.Key, Value: d.rec.Value,
			Headers: []kgo.RecordHeader{
				{Key: "reason", Value: []byte(d.row.Reason)},
				{Key: "reason_code", Value: []byte(d.row.ReasonCode)},
				{Key: "pointer", Value: []byte(d.row.ErrorPointer)},
				{Key: "source_topic", Value: []byte(d.rec.Topic)},
				{Key: "source_partition", Value: []byte(strconv.Itoa(int(d.rec.Partition)))},
				{Key: "source_offset", Value: []byte(strconv.FormatInt(d.rec.Offset, 10))},
			},
		}
		in.m.dlq.WithLabelValues(d.row.ReasonCode).Inc()
		in.log.Warn("dead letter", "topic", d.rec.Topic, "partition", d.rec.Partition, "offset", d.rec.Offset,
			"reason_code", d.row.ReasonCode, "pointer", d.row.ErrorPointer, "reason", d.row.Reason)
	}
	pending := recs
	if err := in.retry(ctx, "produce_dlq", func(ctx context.Context) error {
		var failed []*kgo.Record
		var first error
		for _, r := range in.cl.ProduceSync(ctx, pending...) {
			if r.Err == nil {
				continue
			}
			first = cmp.Or(first, r.Err)
			// A fresh record: a produced one keeps the state of its
			// attempt. Only the failed ones are sent again.
			again := &kgo.Record{Topic: r.Record.Topic, Key: r.Record.Key, Value: r.Record.Value, Headers: r.Record.Headers}
			if errors.Is(r.Err, kerr.MessageTooLarge) || errors.Is(r.Err, kerr.RecordListTooLarge) {
				// The topic cannot hold the whole record: keep a bounded
				// prefix and say so, as dlq_events does.
				truncateDead(again)
			}
			failed = append(failed, again)
		}
		pending = failed
		return first
	}); err != nil {
		return err
	}
	start := time.Now()
	if err := in.retry(ctx, "insert_dlq", func(ctx context.Context) error { return in.st.InsertDLQ(ctx, rows) }); err != nil {
		return err
	}
	in.m.insertSecs.WithLabelValues("dlq_events").Observe(time.Since(start).Seconds())
	return nil
}

// truncateDead cuts a dead letter to store.MaxDLQRaw bytes and records
// the original length and sha256 in headers.
func truncateDead(r *kgo.Record) {
	if len(r.Value) <= store.MaxDLQRaw {
		return
	}
	sum := sha256.Sum256(r.Value)
	r.Headers = append(r.Headers,
		kgo.RecordHeader{Key: "truncated", Value: []byte("true")},
		kgo.RecordHeader{Key: "raw_length", Value: []byte(strconv.Itoa(len(r.Value)))},
		kgo.RecordHeader{Key: "raw_sha256", Value: []byte(hex.EncodeToString(sum[:]))})
	r.Value = r.Value[:store.MaxDLQRaw]
}

// checkChains runs after batch gen's insert was accepted (gen 0: no
// batch): it settles parked events and suspects against storage and
// inserts the breaks found. The batcher fed the links as they streamed.
func (in *ingester) checkChains(ctx context.Context, gen uint64, force bool) error {
	now := time.Now()
	in.chainMu.Lock()
	in.chain.settle(gen, now)
	unlisted := in.chain.unlisted(now)
	in.chainMu.Unlock()
	if len(unlisted) > 0 {
		in.listEnds(ctx, unlisted, now)
	}
	in.chainMu.Lock()
	want := in.chain.lookups(now, force)
	in.chainMu.Unlock()
	found := map[chainSeq][]stored{}
	if len(want) > 0 {
		in.m.lookups.Add(float64(len(want)))
		if err := in.retry(ctx, "chain_lookup", func(ctx context.Context) error {
			var err error
			found, err = in.lookup(ctx, want)
			return err
		}); err != nil {
			return err
		}
	}
	in.chainMu.Lock()
	in.chain.resolve(found, now, force)
	breaks := in.chain.takeBreaks()
	in.chainMu.Unlock()
	if len(breaks) == 0 {
		return nil
	}
	for _, b := range breaks {
		in.log.Warn("chain break", "kind", b.Kind, "session_id", b.SessionID, "runner_id", b.RunnerID,
			"event_id", b.EventID, "expected_seq", b.ExpectedSeq, "got_seq", b.GotSeq, "detail", b.Detail)
	}
	start := time.Now()
	err := in.retry(ctx, "insert_chain_breaks", func(ctx context.Context) error { return in.st.InsertChainBreaks(ctx, breaks) })
	if err == nil {
		in.m.insertSecs.WithLabelValues("chain_breaks").Observe(time.Since(start).Seconds())
	} else {
		// Not inserted and the links are consumed: put them back so a
		// retry at the next flush does not lose them.
		in.chainMu.Lock()
		in.chain.putBreaks(breaks)
		in.chainMu.Unlock()
	}
	return err
}

// listEnds reads from Kafka where partitions tps start and end, for parked
// events whose predecessor may be on one of them (see checker.past); at
// most once a second. Failing, it logs: the events wait for the next try.
func (in *ingester) listEnds(ctx context.Context, tps []topicPartition, now time.Time) {
	if now.Sub(in.listedAt) < time.Second {
		return
	}
	in.listedAt = now
	var topics []string
	for _, tp := range tps {
		if !slices.Contains(topics, tp.topic) {
			topics = append(topics, tp.topic)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adm := kadm.NewClient(in.cl)
	// Last stable offsets: records are read committed.
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	var starts kadm.ListedOffsets
	if err == nil {
		starts, err = adm.ListStartOffsets(ctx, topics...)
	}
	if err != nil {
		in.log.Warn("could not list partition ends for the chain check; parked events wait", "err", err)
		return
	}
	committed := in.cl.CommittedOffsets()
	in.chainMu.Lock()
	defer in.chainMu.Unlock()
	for _, tp := range tps {
		end, ok := ends.Lookup(tp.topic, tp.partition)
		if !ok || end.Err != nil {
			continue
		}
		// Where consumption began, for a partition fed nothing yet.
		start := int64(-1)
		if o, ok := committed[tp.topic][tp.partition]; ok && o.Offset >= 0 {
			start = o.Offset
		} else if s, ok := starts.Lookup(tp.topic, tp.partition); ok && s.Err == nil {
			start = s.Offset
		}
		if start >= 0 {
			in.chain.listed(tp, start, end.Offset, now)
		}
	}
}

// forget drops what the chain checker and the commits know of partitions
// handed over, once they are committed.
func (in *ingester) forget(revoked map[string][]int32) {
	in.chainMu.Lock()
	in.chain.forget(revoked, time.Now())
	in.chainMu.Unlock()
	for t, ps := range revoked {
		for _, p := range ps {
			// Their offsets must not be committed again: the next owner
			// commits them from now on.
			delete(in.seen, topicPartition{t, p})
			delete(in.committed, topicPartition{t, p})
		}
	}
}

// lookup reads the stored (hash, event_id) of chain positions, 500 per
// query. Only plain string literals are spliced: quote escapes them.
func (in *ingester) lookup(ctx context.Context, want []chainSeq) (map[chainSeq][]stored, error) {
	out := map[chainSeq][]stored{}
	for len(want) > 0 {
		n := min(len(want), 500)
		var q strings.Builder
		q.WriteString("SELECT session_id, runner_id, seq, hash, event_id FROM ")
		q.WriteString(in.cfg.Database)
		q.WriteString(".events WHERE (session_id, runner_id, seq) IN (")
		for i, w := range want[:n] {
			if i > 0 {
				q.WriteByte(',')
			}
			fmt.Fprintf(&q, "(%s,%s,%d)", quote(w.key.SessionID), quote(w.key.RunnerID), w.seq)
		}
		q.WriteString(")")
		want = want[n:]
		rows, err := in.st.Conn().Query(ctx, q.String())
		if err != nil {
			return nil, fmt.Errorf("ingest: chain lookup: %w", err)
		}
		for rows.Next() {
			var cs chainSeq
			var s stored
			if err := rows.Scan(&cs.key.SessionID, &cs.key.RunnerID, &cs.seq, &s.hash, &s.eventID); err != nil {
				rows.Close()
				return nil, fmt.Errorf("ingest: chain lookup: %w", err)
			}
			out[cs] = append(out[cs], s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("ingest: chain lookup: %w", err)
		}
	}
	return out, nil
}

var quoter = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

func quote(s string) string { return "'" + quoter.Replace(s) + "'" }

// commit moves each partition's offset to after its last written record,
// but not past its oldest parked event.
func (in *ingester) commit(ctx context.Context, next map[topicPartition]int64) error {
	in.chainMu.Lock()
	floor := in.chain.parkedFloor()
	in.chainMu.Unlock()
	want := map[string]map[int32]kgo.EpochOffset{}
	for tp, o := range next {
		if in.seen == nil {
			in.seen = map[topicPartition]int64{}
		}
		in.seen[tp] = o
	}
	for tp, o := range in.seen {
		if f, ok := floor[tp]; ok && f < o {
			o = f
		}
		if o <= in.committed[tp] {
			continue
		}
		if want[tp.topic] == nil {
			want[tp.topic] = map[int32]kgo.EpochOffset{}
		}
		want[tp.topic][tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	if len(want) == 0 {
		return nil
	}
	err := in.retry(ctx, "commit", func(ctx context.Context) error {
		var cerr error
		in.cl.CommitOffsetsSync(ctx, want, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil && cerr == nil {
						cerr = fmt.Errorf("commit %s/%d: %w", t.Topic, p.Partition, e)
					}
				}
			}
		})
		return cerr
	})
	if err != nil {
		return err
	}
	for t, ps := range want {
		for p, eo := range ps {
			in.committed[topicPartition{t, p}] = eo.Offset
		}
	}
	in.m.commits.Inc()
	in.m.lastCommit.SetToCurrentTime()
	return nil
}

// retry runs f until it succeeds or ctx ends, with exponential back-off,
// counting and logging failures (first, then at powers of two).
func (in *ingester) retry(ctx context.Context, op string, f func(context.Context) error) error {
	backoff := in.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := f(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				in.m.failing.Add(-1)
				in.log.Info("recovered", "op", op, "attempts", attempt)
			}
			if op != "commit" && op != "produce_dlq" {
				in.m.chUp.Set(1)
			}
			return nil
		}
		if attempt == 1 {
			in.m.failing.Add(1)
		}
		if op != "commit" && op != "produce_dlq" {
			in.m.chUp.Set(0)
		}
		if ctx.Err() != nil {
			in.m.failing.Add(-1)
			return fmt.Errorf("ingest: %s: %w (gave up at shutdown)", op, err)
		}
		in.m.retries.WithLabelValues(op).Inc()
		if attempt&(attempt-1) == 0 {
			in.log.Warn("write failed; retrying", "op", op, "attempt", attempt, "backoff", backoff, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, in.cfg.RetryMax)
	}
}
