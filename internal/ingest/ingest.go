package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/store"
)

// chunkSize is how many records one decode worker takes at a time: large
// enough to amortise channel hand-offs, small enough to spread a poll over
// every worker.
const chunkSize = 512

// topicPartition names one Kafka partition.
type topicPartition struct {
	topic     string
	partition int32
}

// chunk is a run of polled records, decoded by one worker. The batcher
// reads chunks in poll order and waits for each to be done, so records
// keep their partition order while decoding runs in parallel.
type chunk struct {
	recs    []*kgo.Record
	items   []item
	block   *store.EventBlock // the chunk's valid rows
	done    chan struct{}
	barrier chan struct{}      // non-nil: not records but a drain request
	revoked map[string][]int32 // of a drain: the partitions handed over
	// drained: the last chunk of a poll that left nothing to fetch.
	drained bool
}

// batch is what one events INSERT writes and then commits. Its rows are
// streamed to ClickHouse chunk by chunk while it fills (see
// store.EventStream), so the client holds one data block's columns, not
// the batch's; the insert is accepted when the stream closes. The batch
// keeps no records: when its insert fails, consumption starts again from
// the committed offsets (see Run), so a batch's size costs no memory and
// batches can be as large as the server writes parts best.
type batch struct {
	rows    int
	bytes   int    // record bytes
	gen     uint64 // the batch's number in the session, from 1
	dead    []dead
	records int
	next    map[topicPartition]int64 // offset after the last record seen
	barrier chan struct{}
	revoked map[string][]int32

	stream  *store.EventStream
	opened  time.Time
	failed  error      // the stream could not be opened or written
	stopped func()     // releases the stream's context
	closed  chan error // the streamed insert's outcome, once the batch is cut
}

func (in *ingester) newBatch() *batch {
	in.batches++
	return &batch{next: map[topicPartition]int64{}, gen: in.batches}
}

type ingester struct {
	cfg   Config
	log   *slog.Logger
	st    *store.Store
	cl    *kgo.Client
	m     *metrics
	chain *checker
	dedup *dedup
	crash crashHook

	// drainMu guards the drain requests the poller is to put into
	// ordered, the poll they interrupt, and closed (ordered is closed: no
	// request will be served).
	drainMu    sync.Mutex
	drains     []*chunk
	pollCancel context.CancelFunc
	ordered    chan *chunk
	closed     bool
	// listedAt: when partition ends were last read for the chain checker
	// (by the flusher).
	listedAt time.Time

	committed map[topicPartition]int64
	seen      map[topicPartition]int64
	inserts   atomic.Int64
	behind    atomic.Int64 // records not yet fetched, as of the last fetch

	// rewind ends the current consumption session when an insert failed;
	// Run then starts another from the committed offsets.
	rewind context.CancelCauseFunc
	// The chain checker is fed by the batcher as batches stream and
	// settled by the flusher after their inserts; chainMu serialises the
	// two. Links are not kept with their batch: two batches of them were
	// half of what stayed live at full load.
	chainMu    sync.Mutex
	chunkLinks []link // the batcher's, reused chunk to chunk
	batches    uint64 // batches numbered by the batcher
	itemBufs   freeList[[]item]

	// failures counts consecutive failed sessions (back-off), reset by an
	// accepted insert; guarded by being touched only by the flush loop
	// while a session runs and by Run between sessions.
	failures int
}

// errInsertFailed is the cause a session ends with when an events insert
// was not accepted: what was read after the last commit is read again.
var errInsertFailed = errors.New("ingest: events insert failed; rewinding to the committed offsets")

// Run consumes until ctx is cancelled, then flushes what it has polled,
// commits it and returns nil. It returns an error only when it cannot
// start (bad config, Kafka client, metrics listener). While ClickHouse or
// Kafka is unavailable it retries with back-off and commits nothing.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Logger
	defer startProfile()()
	in := &ingester{
		cfg: cfg, log: log, m: newMetrics(),
		dedup:     newDedup(cfg.DedupWindow),
		committed: map[topicPartition]int64{},
		crash:     crashHookFromEnv(),
		itemBufs:  newFreeList[[]item](4 * (cfg.Workers + 2)),
	}

	// life outlives ctx: it ends when Run returns, after the final flush.
	life, endLife := context.WithCancel(context.WithoutCancel(ctx))
	defer endLife()
	if cfg.MetricsAddr != "off" {
		addr, err := in.m.serve(life, cfg.MetricsAddr, log)
		if err != nil {
			return err
		}
		log.Info("serving metrics", "addr", addr)
	}

	st, err := in.openStore(ctx)
	if err != nil {
		return nil // ctx ended while ClickHouse was down: nothing consumed
	}
	defer st.Close()
	in.st = st

	// A session consumes from the committed offsets until ctx ends or an
	// insert fails. After a failure the next session, after a back-off,
	// reads everything not committed again, exactly as a restarted
	// process would: a fresh client and chain checker, nothing kept from
	// the failed batches.
	backoff := cfg.RetryMin
	for {
		err := in.session(ctx)
		if !errors.Is(err, errInsertFailed) {
			return err
		}
		if ctx.Err() != nil {
			log.Info("stopped with an insert failing; uncommitted records will be redelivered", "err", err)
			return nil
		}
		in.failures++
		if in.failures == 1 {
			in.m.failing.Add(1)
			backoff = cfg.RetryMin
		}
		in.m.chUp.Set(0)
		in.m.retries.WithLabelValues("insert_events").Inc()
		if in.failures&(in.failures-1) == 0 {
			log.Warn("insert failed; reading again from the committed offsets", "attempt", in.failures, "backoff", backoff, "err", err)
		}
		select {
		case <-ctx.Done():
			in.m.failing.Add(-1)
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, cfg.RetryMax)
	}
}

// session runs one Kafka client and pipeline from the committed offsets
// until ctx ends (then it flushes and commits what it polled) or an
// insert fails (errInsertFailed).
func (in *ingester) session(ctx context.Context) error {
	cfg, log := in.cfg, in.log
	in.chain = newChecker(cfg.ChainGrace, in.m)
	in.chain.topics = [2]string{cfg.Topics.Events, cfg.Topics.Approvals}
	// Caught up: what is left to fetch fits in one poll.
	in.chain.caughtUp = func() bool { return in.behind.Load() <= caughtUpRecords }
	in.seen = nil
	in.batches = 0
	sctx, rewind := context.WithCancelCause(ctx)
	defer rewind(nil)
	in.rewind = rewind
	in.drainMu.Lock()
	in.closed, in.drains = false, nil
	in.drainMu.Unlock()

	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Events, cfg.Topics.Approvals),
		// Both topics are keyed by session: range assignment gives each
		// member partition N of both, so every chain it checks online is
		// whole on one member (with two ingesters, a sticky assignment
		// split chains between them and reported false gaps).
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Bounds what sits in fetch buffers beside the pipeline: a fetch
		// is decompressed whole and buffered until polled. Every
		// partition's share fits in one fetch, so none is starved, and
		// small shares let balance keep the topics close in time.
		kgo.FetchMaxBytes(16 << 20),
		kgo.FetchMaxPartitionBytes(512 << 10),
		// One fetch is in flight per broker, and partitions that become
		// fetchable meanwhile (after a restart, those whose start offset
		// is resolved a moment later) wait for it. At the default 5s
		// long poll a restarted ingester saw one topic's partitions 5s
		// after the other's, longer than a short chain grace.
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ClientID("agentaudit-ingest"),
		kgo.WithPools(newFetchPool()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, tps map[string][]int32) {
			in.chainMu.Lock()
			in.chain.assign(tps)
			in.chainMu.Unlock()
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, tps map[string][]int32) { in.drain(ctx, tps) }),
	}
	if cfg.InstanceID != "" {
		// A rewinding session's new client rejoins with the same id too,
		// and gets the same partitions back without a rebalance.
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("ingest: kafka client: %w", err)
	}
	in.cl = cl
	log.Info("ingest started", "group", cfg.Group, "instance_id", cfg.InstanceID, "topics", []string{cfg.Topics.Events, cfg.Topics.Approvals},
		"database", cfg.Database, "batch_rows", cfg.BatchRows, "batch_wait", cfg.BatchWait, "workers", cfg.Workers)

	paired := warnUnevenTopics(ctx, cl, cfg.Topics, log)
	in.chainMu.Lock()
	in.chain.paired = paired
	in.chainMu.Unlock()

	// hard ends ShutdownTimeout after ctx: the bound of the final flush.
	// A rewinding session ends it at once.
	hard, endHard := context.WithCancel(context.WithoutCancel(ctx))
	defer endHard()
	context.AfterFunc(sctx, func() {
		if errors.Is(context.Cause(sctx), errInsertFailed) {
			endHard()
		}
	})
	stop := context.AfterFunc(ctx, func() {
		log.Info("stop requested; flushing", "timeout", cfg.ShutdownTimeout)
		time.AfterFunc(cfg.ShutdownTimeout, endHard)
	})
	defer stop()

	in.ordered = make(chan *chunk, 2*cfg.Workers+2)
	work := make(chan *chunk, 2*cfg.Workers+2)
	// Batches cut but not yet committed wait here while their inserts
	// close.
	flushes := make(chan *batch, cfg.Inserts-1)
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Go(func() {
			for c := range work {
				in.decode(c)
			}
		})
	}
	flushed := make(chan struct{})
	go func() { defer close(flushed); in.flushLoop(hard, flushes) }()
	go in.batchLoop(hard, flushes)

	in.pollLoop(sctx, work)
	close(work)
	wg.Wait()
	<-flushed
	// Close leaves the group; its revoke callback finds the pipeline
	// closed and returns at once.
	cl.Close()
	if err := context.Cause(sctx); errors.Is(err, errInsertFailed) {
		return err
	}
	log.Info("ingest stopped", "committed_partitions", len(in.committed))
	return nil
}

func (in *ingester) openStore(ctx context.Context) (*store.Store, error) {
	var st *store.Store
	err := in.retry(ctx, "open_clickhouse", func(ctx context.Context) error {
		s, err := store.Open(ctx, store.Config{
			Addr: in.cfg.ClickHouseAddr, User: in.cfg.ClickHouseUser, Password: in.cfg.ClickHousePassword,
			Database: in.cfg.Database, Cluster: in.cfg.ClickHouseCluster, Logger: in.log,
		})
		if err != nil {
			return err
		}
		if in.cfg.Migrate {
			if _, err := s.Migrate(ctx); err != nil {
				s.Close()
				return err
			}
		}
		st = s
		return nil
	})
	return st, err
}

// maxTopicSkew is how far (in record time) one topic's consumption may
// run ahead of the other's while the other still has records to fetch.
// A chain travels on both topics; when one topic is read far ahead, its
// events wait parked for predecessors still unread on the other, which
// costs memory, holds commits back and, past the grace, storage look-ups.
const maxTopicSkew = time.Second

// caughtUpRecords: the consumer counts as caught up while fewer records
// than this are left to fetch.
const caughtUpRecords = 10_000

// fetchState is what the poll loop knows of one partition.
type fetchState struct {
	lag  int64     // records left to fetch, as of the last fetch
	last time.Time // timestamp of the last record fetched
	poll int       // the poll that last returned its records
}

// lagPolls: a partition with records left counts as lagging while it
// delivered within this many polls.
const lagPolls = 8

// pollLoop fetches until ctx ends, handing chunks to the workers and, in
// the same order, to the batcher.
func (in *ingester) pollLoop(ctx context.Context, work chan<- *chunk) {
	defer func() {
		in.drainMu.Lock()
		in.closed = true
		in.drainMu.Unlock()
		in.pushDrains()
		close(in.ordered)
	}()
	parts := map[topicPartition]*fetchState{}
	paused := map[string]bool{}
	for poll := 1; ; poll++ {
		// A drain request goes in after every record polled before it.
		in.pushDrains()
		pctx, cancel := context.WithCancel(ctx)
		if len(paused) > 0 {
			// A paused topic must be let go when the other stops
			// delivering; a poll that waits for ever would not notice.
			pctx, cancel = context.WithTimeout(ctx, 250*time.Millisecond)
		}
		in.drainMu.Lock()
		in.pollCancel = cancel
		pending := len(in.drains) > 0
		in.drainMu.Unlock()
		if pending {
			cancel()
		}
		fs := in.cl.PollRecords(pctx, in.cfg.BatchRows)
		in.drainMu.Lock()
		in.pollCancel = nil
		in.drainMu.Unlock()
		cancel()
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				in.log.Warn("fetch error; the client retries", "topic", topic, "partition", p, "err", err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				in.m.consumed.WithLabelValues(p.Topic).Add(float64(n))
				lag := max(p.HighWatermark-(p.Records[n-1].Offset+1), 0)
				in.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(lag))
				tp := topicPartition{p.Topic, p.Partition}
				st := parts[tp]
				if st == nil {
					st = &fetchState{}
					parts[tp] = st
				}
				st.lag, st.last, st.poll = lag, p.Records[n-1].Timestamp, poll
			}
		})
		var behind int64
		for _, st := range parts {
			behind += st.lag
		}
		in.behind.Store(behind)
		in.balance(parts, paused, poll)
		recs := fs.Records()
		for len(recs) > 0 {
			n := min(len(recs), chunkSize)
			items, ok := in.itemBufs.get()
			if !ok || cap(items) < n {
				items = make([]item, chunkSize)
			}
			c := &chunk{recs: recs[:n:n], items: items[:n], done: make(chan struct{})}
			recs = recs[n:]
			c.drained = len(recs) == 0 && behind == 0
			// The batcher gets the chunk first, so that it always waits
			// on chunks in poll order; it never blocks on work because
			// workers drain work independently.
			in.ordered <- c
			work <- c
		}
	}
}

// balance pauses fetching a topic whose records are more than
// maxTopicSkew ahead of the other topic's oldest still-lagging partition,
// and resumes it once they are not.
func (in *ingester) balance(parts map[topicPartition]*fetchState, paused map[string]bool, poll int) {
	topics := [2]string{in.cfg.Topics.Events, in.cfg.Topics.Approvals}
	for i, ahead := range aheadTopics(parts, topics, poll) {
		t := topics[i]
		switch {
		case ahead && !paused[t]:
			in.cl.PauseFetchTopics(t)
			paused[t] = true
			in.m.paused.WithLabelValues(t).Set(1)
			in.log.Debug("fetch paused: topic ahead of the other", "topic", t)
		case !ahead && paused[t]:
			in.cl.ResumeFetchTopics(t)
			delete(paused, t)
			in.m.paused.WithLabelValues(t).Set(0)
		}
	}
}

// aheadTopics reports, for each of the two topics, whether its newest
// fetched record is more than maxTopicSkew (record time) newer than the
// last record of the other topic's most lagging partition, and more so
// than the other way round. A partition
// counts as lagging only while it has records left and delivered within
// the last lagPolls polls (which while a topic is paused take at most
// 250ms each), so a stalled or revoked partition never holds the other
// topic back for long.
func aheadTopics(parts map[topicPartition]*fetchState, topics [2]string, poll int) [2]bool {
	var head, tail [2]time.Time
	for tp, st := range parts {
		i := 0
		switch tp.topic {
		case topics[0]:
		case topics[1]:
			i = 1
		default:
			continue
		}
		if st.last.After(head[i]) {
			head[i] = st.last
		}
		if st.lag > 0 && poll-st.poll < lagPolls && (tail[i].IsZero() || st.last.Before(tail[i])) {
			tail[i] = st.last
		}
	}
	var lead [2]time.Duration
	for i := range lead {
		if o := 1 - i; !tail[o].IsZero() {
			lead[i] = head[i].Sub(tail[o])
		}
	}
	// Never both: with their partitions spread, each topic can be ahead
	// of the other's slowest partition, and pausing both would stall.
	var out [2]bool
	for i := range out {
		out[i] = lead[i] > maxTopicSkew && lead[i] > lead[1-i]
	}
	return out
}

// pushDrains puts the pending drain requests into the pipeline.
func (in *ingester) pushDrains() {
	in.drainMu.Lock()
	ds := in.drains
	in.drains = nil
	in.drainMu.Unlock()
	for _, b := range ds {
		in.ordered <- b
	}
}

// drain is the partition-revoke callback: it has the poller push a barrier
// through the pipeline and waits until everything polled before it is
// written and committed, so that the partitions move to their next owner
// committed (below their parked events), and the chain checker forgets
// them. The poller, not the callback, puts the barrier in, after every
// record it polled: the client stopped fetching the revoked partitions
// before this callback, but a poll may have returned their records and
// not yet passed them on. The poll in progress is interrupted: it would
// wait for records that come only after the new assignment.
func (in *ingester) drain(ctx context.Context, revoked map[string][]int32) {
	in.drainMu.Lock()
	if in.closed {
		in.drainMu.Unlock()
		return
	}
	b := &chunk{barrier: make(chan struct{}), revoked: revoked}
	in.drains = append(in.drains, b)
	if in.pollCancel != nil {
		in.pollCancel()
	}
	in.drainMu.Unlock()
	t := time.NewTimer(45 * time.Second)
	defer t.Stop()
	select {
	case <-b.barrier:
	case <-ctx.Done():
	case <-t.C:
		in.log.Warn("partitions revoked before the pipeline drained; uncommitted records will be redelivered to the next owner")
	}
}

// batchLoop gathers decoded records into batches in poll order and
// streams each batch's rows into its insert as they come.
func (in *ingester) batchLoop(ctx context.Context, flushes chan<- *batch) {
	defer close(flushes)
	b := in.newBatch()
	var timer *time.Timer
	var expired <-chan time.Time
	send := func() {
		if timer != nil {
			timer.Stop()
			timer, expired = nil, nil
		}
		if b.records > 0 {
			if in.cfg.Inserts > 1 {
				// Batches queue for the flusher: close them now, so
				// their inserts complete while they wait.
				in.close(b)
			}
			flushes <- b
			b = in.newBatch()
		}
	}
	// Idle ticks let parked chain events run out of grace, and their
	// commits move, when no records arrive.
	tick := time.NewTicker(min(in.cfg.ChainGrace/2, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if b.records == 0 {
				select {
				case flushes <- &batch{}:
				default: // the flusher is busy; the next batch will do
				}
			}
		case c, ok := <-in.ordered:
			if !ok {
				send()
				return
			}
			if c.barrier != nil {
				send()
				flushes <- &batch{barrier: c.barrier, revoked: c.revoked}
				continue
			}
			<-c.done
			if b.records == 0 {
				timer = time.NewTimer(in.cfg.BatchWait)
				expired = timer.C
			}
			for i := range c.items {
				in.add(b, c, &c.items[i])
				b.bytes += len(c.items[i].rec.Value)
			}
			in.feedChains(b.gen, c.recs)
			in.stream(ctx, b, c)
			// The chunk's rows are in the insert and its dead letters own
			// their bytes: the records go back to the Kafka client.
			for _, r := range c.recs {
				r.Recycle()
			}
			clear(c.items)
			in.itemBufs.put(c.items)
			c.recs, c.items = nil, nil
			// Cut at chunk boundaries: a batch holds at most BatchRows
			// (or BatchBytes) plus one chunk. A failed batch is cut at
			// once: nothing more of it can be written. A large batch is
			// cut when the topics are drained: waiting out BatchWait
			// would only delay its rows (at the end of a catch-up, up to
			// BatchWait of idle time), while a trickle of small batches
			// still waits, so that parts stay large.
			if b.rows >= in.cfg.BatchRows || b.bytes >= in.cfg.BatchBytes || b.failed != nil ||
				c.drained && b.rows >= in.cfg.BatchRows/10 {
				send()
			}
		case <-expired:
			timer, expired = nil, nil
			send()
		}
	}
}

// stream writes chunk c's rows into b's insert, opening it for the first
// rows, and recycles c's block. A failure leaves b.failed set and the
// rest of the batch unsent: the flusher retries the whole insert.
func (in *ingester) stream(ctx context.Context, b *batch, c *chunk) {
	blk := c.block
	c.block = nil
	defer putBlock(blk)
	if blk.Rows() == 0 {
		return
	}
	b.rows += blk.Rows()
	if b.failed != nil {
		return
	}
	if b.stream == nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		b.opened = time.Now()
		w, err := in.st.OpenEventStream(sctx)
		if err != nil {
			cancel()
			b.failed = err
			return
		}
		b.stream, b.stopped = w, cancel
	}
	if err := b.stream.Write(blk); err != nil {
		b.failed = err
	}
}

// close ends b's streamed insert in the background; its outcome arrives
// on b.closed while the next batch streams. With Inserts = 1 the flusher
// closes a batch when it takes it, after the previous batch committed, so
// at most one batch is accepted and not yet committed (what a crash
// redelivers).
func (in *ingester) close(b *batch) {
	b.closed = make(chan error, 1)
	if b.rows == 0 {
		b.closed <- nil
		return
	}
	go func() {
		err := b.failed
		if b.stream != nil {
			if err != nil {
				b.stream.Abort()
			} else {
				err = b.stream.Close()
			}
			b.stopped()
		} else if err == nil {
			err = errors.New("ingest: insert stream never opened")
		}
		b.closed <- err
	}()
}

// add accounts one decoded record of chunk c to b; its row stays in the
// chunk's block (dropped there if it turns out to be a dead letter).
func (in *ingester) add(b *batch, c *chunk, it *item) {
	r := it.rec
	b.records++
	b.next[topicPartition{r.Topic, r.Partition}] = r.Offset + 1
	if it.dead == nil {
		if seen, ok := in.dedup.check(it.eventID, it.fp); ok && seen != it.fp {
			id := strconv.FormatUint(it.eventID, 10)
			r = ownRecord(r)
			it.dead = &dead{rec: r, row: dlqRow(r, it.typ, id, ReasonDuplicateID, "/event_id", "event_id "+id+" was seen with other content")}
			c.block.Drop(it.blockRow)
		}
	}
	if it.dead != nil {
		b.dead = append(b.dead, *it.dead)
		return
	}
	in.chunkLinks = append(in.chunkLinks, it.link)
}

// feedChains adds the links of the chunk just batched (records recs) to
// the chain checker as part of batch gen, and how far each partition was
// read.
func (in *ingester) feedChains(gen uint64, recs []*kgo.Record) {
	now := time.Now()
	in.chainMu.Lock()
	in.chain.gen = gen
	for _, l := range in.chunkLinks {
		in.chain.add(l, now)
	}
	// A poll's records come partition by partition, in offset order.
	for i, r := range recs {
		if i+1 < len(recs) && recs[i+1].Partition == r.Partition && recs[i+1].Topic == r.Topic {
			continue
		}
		in.chain.fed(topicPartition{r.Topic, r.Partition}, r.Timestamp.UnixMilli(), r.Offset+1)
	}
	in.chainMu.Unlock()
	clear(in.chunkLinks)
	in.chunkLinks = in.chunkLinks[:0]
}

// warnUnevenTopics says when the two topics have different partition
// counts: range assignment then no longer gives one member both halves of
// a session's chains, and with several ingesters the online chain check
// reports gaps that query verify will not find. Nothing is lost either way.
// It reports whether both topics are known to have as many partitions.
func warnUnevenTopics(ctx context.Context, cl *kgo.Client, t eventlog.Topics, log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	td, err := kadm.NewClient(cl).ListTopics(ctx, t.Events, t.Approvals)
	if err != nil {
		log.Warn("ingest: could not read the topics' partition counts", "err", err)
		return false
	}
	ev, ap := len(td[t.Events].Partitions), len(td[t.Approvals].Partitions)
	if ev > 0 && ap > 0 && ev != ap {
		log.Warn("ingest: the topics have different partition counts; with more than one ingester the online chain check will report false gaps (query verify is unaffected): give both the same count",
			"topic_events", t.Events, "partitions_events", ev, "topic_approvals", t.Approvals, "partitions_approvals", ap)
	}
	return ev > 0 && ev == ap
}
