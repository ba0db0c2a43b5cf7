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

	"github.com/twmb/franz-go/pkg/kgo"

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
	barrier chan struct{} // non-nil: not records but a drain request
}

// batch is what one flush writes and then commits.
type batch struct {
	blocks  []*store.EventBlock
	rows    int
	links   []link
	dead    []dead
	records int
	next    map[topicPartition]int64 // offset after the last record seen
	barrier chan struct{}
}

func newBatch(rows int) *batch {
	return &batch{links: make([]link, 0, rows), next: map[topicPartition]int64{}}
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

	// drainMu guards ordered against a drain request after the poller
	// closed it.
	drainMu sync.Mutex
	ordered chan *chunk
	closed  bool

	committed map[topicPartition]int64
	seen      map[topicPartition]int64
	inserts   atomic.Int64
	behind    atomic.Int64 // records not yet fetched, as of the last fetch
}

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
	}
	in.chain = newChecker(cfg.ChainGrace, in.m)
	// Caught up: what is left to fetch fits in one poll.
	in.chain.caughtUp = func() bool { return in.behind.Load() <= int64(cfg.BatchRows) }

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

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Events, cfg.Topics.Approvals),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Bounds what sits in fetch buffers beside the pipeline.
		kgo.FetchMaxBytes(16<<20),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ClientID("agentaudit-ingest"),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, _ map[string][]int32) { in.drain(ctx) }),
	)
	if err != nil {
		return fmt.Errorf("ingest: kafka client: %w", err)
	}
	in.cl = cl
	log.Info("ingest started", "group", cfg.Group, "topics", []string{cfg.Topics.Events, cfg.Topics.Approvals},
		"database", cfg.Database, "batch_rows", cfg.BatchRows, "batch_wait", cfg.BatchWait, "workers", cfg.Workers)

	// hard ends ShutdownTimeout after ctx: the bound of the final flush.
	hard, endHard := context.WithCancel(context.WithoutCancel(ctx))
	defer endHard()
	stop := context.AfterFunc(ctx, func() {
		log.Info("stop requested; flushing", "timeout", cfg.ShutdownTimeout)
		time.AfterFunc(cfg.ShutdownTimeout, endHard)
	})
	defer stop()

	in.ordered = make(chan *chunk, 2*cfg.Workers+2)
	work := make(chan *chunk, 2*cfg.Workers+2)
	flushes := make(chan *batch, 1)
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
	go in.batchLoop(flushes)

	in.pollLoop(ctx, work)
	close(work)
	wg.Wait()
	<-flushed
	// Close leaves the group; its revoke callback finds the pipeline
	// closed and returns at once.
	cl.Close()
	log.Info("ingest stopped", "committed_partitions", len(in.committed))
	return nil
}

func (in *ingester) openStore(ctx context.Context) (*store.Store, error) {
	var st *store.Store
	err := in.retry(ctx, "open_clickhouse", func(ctx context.Context) error {
		s, err := store.Open(ctx, store.Config{
			Addr: in.cfg.ClickHouseAddr, User: in.cfg.ClickHouseUser, Password: in.cfg.ClickHousePassword,
			Database: in.cfg.Database, Logger: in.log,
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

// pollLoop fetches until ctx ends, handing chunks to the workers and, in
// the same order, to the batcher.
func (in *ingester) pollLoop(ctx context.Context, work chan<- *chunk) {
	defer func() {
		in.drainMu.Lock()
		in.closed = true
		close(in.ordered)
		in.drainMu.Unlock()
	}()
	lags := map[topicPartition]int64{}
	for {
		fs := in.cl.PollRecords(ctx, in.cfg.BatchRows)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				in.log.Warn("fetch error; the client retries", "topic", topic, "partition", p, "err", err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				in.m.consumed.WithLabelValues(p.Topic).Add(float64(n))
				lag := max(p.HighWatermark-(p.Records[n-1].Offset+1), 0)
				in.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(lag))
				lags[topicPartition{p.Topic, p.Partition}] = lag
			}
		})
		var behind int64
		for _, l := range lags {
			behind += l
		}
		in.behind.Store(behind)
		recs := fs.Records()
		for len(recs) > 0 {
			n := min(len(recs), chunkSize)
			c := &chunk{recs: recs[:n:n], items: make([]item, n), done: make(chan struct{})}
			recs = recs[n:]
			// The batcher gets the chunk first, so that it always waits
			// on chunks in poll order; it never blocks on work because
			// workers drain work independently.
			in.ordered <- c
			work <- c
		}
	}
}

// drain is the partition-revoke callback: it pushes a barrier through the
// pipeline and waits until everything polled before it is written and
// committed, so that the partitions move to their next owner committed.
func (in *ingester) drain(ctx context.Context) {
	in.drainMu.Lock()
	if in.closed {
		in.drainMu.Unlock()
		return
	}
	b := &chunk{barrier: make(chan struct{})}
	in.ordered <- b
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

// batchLoop gathers decoded records into batches in poll order.
func (in *ingester) batchLoop(flushes chan<- *batch) {
	defer close(flushes)
	b := newBatch(in.cfg.BatchRows)
	var timer *time.Timer
	var expired <-chan time.Time
	send := func() {
		if timer != nil {
			timer.Stop()
			timer, expired = nil, nil
		}
		if b.records > 0 {
			flushes <- b
			b = newBatch(in.cfg.BatchRows)
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
				flushes <- &batch{barrier: c.barrier}
				continue
			}
			<-c.done
			if b.records == 0 {
				timer = time.NewTimer(in.cfg.BatchWait)
				expired = timer.C
			}
			for i := range c.items {
				in.add(b, c, &c.items[i])
			}
			if c.block.Rows() > 0 {
				b.blocks = append(b.blocks, c.block)
				b.rows += c.block.Rows()
			}
			// Cut at chunk boundaries: a batch holds at most BatchRows
			// plus one chunk.
			if b.rows >= in.cfg.BatchRows {
				send()
			}
		case <-expired:
			timer, expired = nil, nil
			send()
		}
	}
}

// add accounts one decoded record of chunk c to b: its row stays in the
// chunk's block (dropped there if it turns out to be a dead letter).
func (in *ingester) add(b *batch, c *chunk, it *item) {
	r := it.rec
	b.records++
	b.next[topicPartition{r.Topic, r.Partition}] = r.Offset + 1
	if it.dead == nil {
		if seen, ok := in.dedup.check(it.eventID, it.fp); ok && seen != it.fp {
			id := strconv.FormatUint(it.eventID, 10)
			it.dead = &dead{rec: r, row: dlqRow(r, it.typ, id, ReasonDuplicateID, "/event_id", "event_id "+id+" was seen with other content")}
			c.block.Drop(it.blockRow)
		}
	}
	if it.dead != nil {
		b.dead = append(b.dead, *it.dead)
		return
	}
	b.links = append(b.links, it.link)
}
