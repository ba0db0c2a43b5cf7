package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
)

// ErrAuditUnavailable is returned by Emit when Kafka did not acknowledge the
// event in time. The caller must not perform the action the event records;
// its reason code is events.ReasonAuditUnavailable.
var ErrAuditUnavailable = errors.New("eventlog: audit_unavailable: Kafka did not acknowledge the event")

// ErrInvalidEvent is returned when an event fails validation; it is never sent.
var ErrInvalidEvent = errors.New("eventlog: invalid event")

// Topics names the Kafka topics events travel on.
type Topics struct {
	Events    string // every event not about approvals or holds, key session_id
	Approvals string // approval.*, session.held, session.released, alert.triaged, rule.*, key session_id
	DLQ       string // records that failed validation downstream
}

// DefaultTopics are the topic names of the design.
var DefaultTopics = Topics{Events: "audit.events", Approvals: "audit.approvals", DLQ: "audit.dlq"}

// TopicFor returns the topic and key an event is written with.
//
// Both topics are keyed by session: a chain is one session's events of one
// emitter, and some chains have events on both topics (a runner's
// approval.requested beside its tool calls). With the same key and the
// same partition count, partition N of both topics holds the same
// sessions, so a consumer group member that is assigned partition N of
// both (RangeBalancer) sees each of its chains whole. One approval's
// request and decisions share its session, so they stay in order too.
func (t Topics) TopicFor(e *events.Envelope) (topic string, key []byte) {
	switch e.EventType {
	case events.TypeApprovalRequested, events.TypeApprovalDecided, events.TypeSessionHeld, events.TypeSessionReleased,
		events.TypeAlertTriaged, events.TypeRuleSuppressed, events.TypeRuleUnsuppressed:
		return t.Approvals, []byte(e.SessionID)
	}
	return t.Events, []byte(e.SessionID)
}

// ValidName reports whether s follows Kafka's rule for names, which topic
// names and static group members' instance ids share: at most 249 of
// ASCII letters, digits, '.', '_' and '-'.
func ValidName(s string) bool {
	if len(s) > 249 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Producer writes audit events to Kafka, stamping each on its chain.
//
// Emit is the audit-before-act primitive: it returns nil only after every
// in-sync replica holds the event. EmitAfter records what already happened:
// when Kafka cannot take the event it goes to the local spool, which drains
// in order, before newer events of the same producer, once Kafka is back.
//
// An event that Emit could not deliver is spooled as well, because it is
// already on its chain: the record then shows the request and the denial
// that followed it, and the chain stays gapless.
type Producer struct {
	cl         *kgo.Client
	topics     Topics
	runnerID   string
	ackTimeout time.Duration
	log        *slog.Logger
	spool      *Spool

	chainsMu sync.Mutex
	chains   map[events.ChainKey]*chainSlot

	drainMu     sync.Mutex   // one drain at a time; held while sending spooled records
	pending     atomic.Int64 // spooled records not yet acknowledged
	lastFailure atomic.Int64 // unix nanos of the last failed send
	retryAfter  time.Duration

	stats ProducerStats

	stop chan struct{}
	done chan struct{}
}

type chainSlot struct {
	mu    sync.Mutex // held from stamping to acknowledgement: per-chain order
	chain *events.Chain
}

// ProducerStats counts what the producer did; every drop is counted.
type ProducerStats struct {
	Acked        atomic.Int64 // events acknowledged by Kafka directly
	Spooled      atomic.Int64 // events written to the spool
	Drained      atomic.Int64 // spooled events later acknowledged
	Unavailable  atomic.Int64 // Emit calls answered with ErrAuditUnavailable
	Invalid      atomic.Int64 // events refused by validation
	SpoolFailure atomic.Int64 // events that could be neither sent nor spooled
}

// ProducerOption configures a Producer.
type ProducerOption func(*producerConfig)

type producerConfig struct {
	topics        Topics
	ackTimeout    time.Duration
	retryAfter    time.Duration
	log           *slog.Logger
	spoolDir      string
	spoolMaxBytes int64
	kopts         []kgo.Opt
	ensureTopics  bool
	partitions    int32
	replication   int16
}

// WithTopics overrides the topic names.
func WithTopics(t Topics) ProducerOption { return func(c *producerConfig) { c.topics = t } }

// WithAckTimeout bounds how long Emit waits for Kafka (default 3 s).
func WithAckTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.ackTimeout = d }
}

// WithProducerLogger sets the logger.
func WithProducerLogger(l *slog.Logger) ProducerOption { return func(c *producerConfig) { c.log = l } }

// WithSpool sets the spool directory and its size bound (default 256 MiB).
// Without a spool, EmitAfter fails like Emit when Kafka is unavailable.
func WithSpool(dir string, maxBytes int64) ProducerOption {
	return func(c *producerConfig) { c.spoolDir, c.spoolMaxBytes = dir, maxBytes }
}

// WithProducerKafkaOptions passes extra franz-go options to the client.
func WithProducerKafkaOptions(opts ...kgo.Opt) ProducerOption {
	return func(c *producerConfig) { c.kopts = append(c.kopts, opts...) }
}

// WithEnsureTopics creates the topics if they are missing.
func WithEnsureTopics(partitions int32, replication int16) ProducerOption {
	return func(c *producerConfig) { c.ensureTopics, c.partitions, c.replication = true, partitions, replication }
}

// NewProducer connects to brokers. runnerID names this emitter; it is the
// second half of every chain key the producer writes.
func NewProducer(ctx context.Context, brokers []string, runnerID string, opts ...ProducerOption) (*Producer, error) {
	if len(brokers) == 0 {
		return nil, errors.New("eventlog: producer needs at least one broker")
	}
	if runnerID == "" {
		return nil, errors.New("eventlog: producer needs a runner id")
	}
	cfg := producerConfig{
		topics:        DefaultTopics,
		ackTimeout:    3 * time.Second,
		retryAfter:    500 * time.Millisecond,
		log:           slog.New(slog.DiscardHandler),
		spoolMaxBytes: 256 << 20,
	}
	for _, o := range opts {
		o(&cfg)
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		// Emit's bound matters more than the producer's own duplicate
		// avoidance: a record cancelled while in flight may still land,
		// and consumers collapse it by event_id.
		kgo.AllowIdempotentProduceCancellation(),
		// Records not yet written to a broker fail at the deadline instead
		// of waiting for the broker forever; the idempotent producer only
		// fails them where that cannot reorder or duplicate.
		// (franz-go's floor for both is one second; Emit's own bound is the
		// ack time-out, enforced by its context.)
		kgo.RecordDeliveryTimeout(max(cfg.ackTimeout, time.Second)),
		kgo.ProduceRequestTimeout(max(cfg.ackTimeout, time.Second)),
		kgo.ClientID("agentaudit-" + runnerID),
	}, cfg.kopts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("eventlog: producer client: %w", err)
	}
	p := &Producer{
		cl: cl, topics: cfg.topics, runnerID: runnerID, ackTimeout: cfg.ackTimeout,
		retryAfter: cfg.retryAfter, log: cfg.log,
		chains: map[events.ChainKey]*chainSlot{},
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	if cfg.ensureTopics {
		if err := EnsureTopics(ctx, cl, cfg.topics, cfg.partitions, cfg.replication); err != nil {
			cl.Close()
			return nil, err
		}
	}
	if cfg.spoolDir != "" {
		s, err := OpenSpool(cfg.spoolDir, cfg.spoolMaxBytes)
		if err != nil {
			cl.Close()
			return nil, err
		}
		p.spool = s
		p.pending.Store(int64(s.Len()))
		if n := s.Len(); n > 0 {
			p.log.Info("resuming spool", "records", n, "dir", cfg.spoolDir)
		}
	}
	go p.drainLoop()
	return p, nil
}

// EnsureTopics creates the topics that do not exist yet.
func EnsureTopics(ctx context.Context, cl *kgo.Client, t Topics, partitions int32, replication int16) error {
	adm := kadm.NewClient(cl)
	names := []string{t.Events, t.Approvals, t.DLQ}
	resp, err := adm.CreateTopics(ctx, partitions, replication, nil, names...)
	if err != nil {
		return fmt.Errorf("eventlog: create topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("eventlog: create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// RunnerID returns the emitter id stamped on events.
func (p *Producer) RunnerID() string { return p.runnerID }

// Stats returns the producer's counters.
func (p *Producer) Stats() *ProducerStats { return &p.stats }

// Pending returns the number of spooled events not yet delivered.
func (p *Producer) Pending() int { return int(p.pending.Load()) }

func (p *Producer) slot(k events.ChainKey) *chainSlot {
	p.chainsMu.Lock()
	defer p.chainsMu.Unlock()
	s := p.chains[k]
	if s == nil {
		s = &chainSlot{chain: events.NewChain(k)}
		p.chains[k] = s
	}
	return s
}

// Forget drops the chain state of a finished session.
func (p *Producer) Forget(sessionID string) {
	p.ForgetChain(events.ChainKey{SessionID: sessionID, RunnerID: p.runnerID})
}

// ForgetChain drops the state of chain k, for example a chain continued
// with Resume once the lost session's end is recorded.
func (p *Producer) ForgetChain(k events.ChainKey) {
	p.chainsMu.Lock()
	defer p.chainsMu.Unlock()
	delete(p.chains, k)
}

// Resume continues chain k from its tip: the next event stamped on k gets
// seq+1 and prev_hash hash. A runner uses it to record the end of a session
// whose runner process died, on that runner's chain, so the chain stays
// gapless: seq and hash are those of k's last event as ReadSession
// returned it. k's RunnerID need not be the producer's own (events for k
// carry k's runner_id). Call Resume before any Emit or EmitAfter on k: it
// replaces whatever the producer had stamped on k, and a chain resumed
// anywhere but at its real tip verifies as broken. seq 0 starts k afresh.
func (p *Producer) Resume(k events.ChainKey, seq uint64, hash string) {
	s := p.slot(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chain = events.ResumeChain(k, seq, hash)
}

// Emit validates e, stamps it on its chain and returns once Kafka has
// acknowledged it. On ErrAuditUnavailable the action must not be taken.
func (p *Producer) Emit(ctx context.Context, e *events.Envelope) error {
	return p.emit(ctx, e, false)
}

// EmitAfter records an action that has already happened. When Kafka cannot
// take the event within the ack time-out it is spooled durably; an error
// means it could be neither sent nor spooled.
func (p *Producer) EmitAfter(ctx context.Context, e *events.Envelope) error {
	return p.emit(ctx, e, true)
}

func (p *Producer) emit(ctx context.Context, e *events.Envelope, after bool) error {
	if e.RunnerID == "" {
		e.RunnerID = p.runnerID
	}
	slot := p.slot(e.Key())
	slot.mu.Lock()
	defer slot.mu.Unlock()
	rec, err := p.stamp(slot, e)
	if err != nil {
		return err
	}

	sendErr := p.sendInOrder(ctx, rec)
	if sendErr == nil {
		p.stats.Acked.Add(1)
		return nil
	}
	// The event is on its chain: keep it, so the chain stays gapless and
	// the record shows what was attempted.
	spoolErr := p.toSpool(rec)
	switch {
	case after && spoolErr == nil:
		return nil
	case after:
		p.stats.SpoolFailure.Add(1)
		return fmt.Errorf("eventlog: event %s neither sent (%v) nor spooled: %w", e.EventID, sendErr, spoolErr)
	default:
		p.stats.Unavailable.Add(1)
		if spoolErr != nil {
			p.stats.SpoolFailure.Add(1)
			p.log.Error("denied event could not be spooled; its chain has a gap", "event_id", e.EventID, "err", spoolErr)
		}
		return fmt.Errorf("%w: %v", ErrAuditUnavailable, sendErr)
	}
}

// stamp puts e on its chain (slot's lock held) and encodes its record.
func (p *Producer) stamp(slot *chainSlot, e *events.Envelope) (SpoolRecord, error) {
	if err := slot.chain.Stamp(e); err != nil {
		p.stats.Invalid.Add(1)
		return SpoolRecord{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	wire, err := events.Marshal(e)
	if err != nil {
		p.stats.Invalid.Add(1)
		return SpoolRecord{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	topic, key := p.topics.TopicFor(e)
	return SpoolRecord{Topic: topic, Key: key, Value: wire}, nil
}

// EmitAfterBatch is EmitAfter for several events of one chain, in order:
// each is stamped, then all are sent together and acknowledged in one round
// trip; what Kafka does not take is spooled, in order. Recording a burst of
// actions (every exec of a shell loop, say) this way costs the broker a
// few requests instead of one per event. Events of different chains are
// emitted one at a time. An event that is invalid is not stamped and its
// error is returned with the others'; the rest are still recorded.
func (p *Producer) EmitAfterBatch(ctx context.Context, es []*events.Envelope) error {
	if len(es) == 0 {
		return nil
	}
	for _, e := range es {
		if e.RunnerID == "" {
			e.RunnerID = p.runnerID
		}
	}
	k := es[0].Key()
	for _, e := range es[1:] {
		if e.Key() != k {
			var errs []error
			for _, e := range es {
				errs = append(errs, p.EmitAfter(ctx, e))
			}
			return errors.Join(errs...)
		}
	}
	slot := p.slot(k)
	slot.mu.Lock()
	defer slot.mu.Unlock()
	var errs []error
	recs := make([]SpoolRecord, 0, len(es))
	for _, e := range es {
		rec, err := p.stamp(slot, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, rec)
	}
	n, err := 0, error(nil)
	switch {
	case len(recs) == 0:
	case p.pending.Load() > 0 && time.Since(time.Unix(0, p.lastFailure.Load())) < p.retryAfter:
		err = errors.New("kafka unavailable (spool not yet drained)")
	default:
		if p.pending.Load() > 0 {
			err = p.drain(ctx)
		}
		if err == nil {
			// One partition (one chain, one key): a record not
			// acknowledged means none after it was.
			n, err = p.sendPrefix(ctx, recs)
		}
	}
	p.stats.Acked.Add(int64(n))
	if err != nil {
		for _, r := range recs[n:] {
			if serr := p.toSpool(r); serr != nil {
				p.stats.SpoolFailure.Add(1)
				errs = append(errs, fmt.Errorf("eventlog: %d events neither sent (%v) nor spooled: %w", len(recs)-n, err, serr))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// sendInOrder delivers rec after everything already spooled.
func (p *Producer) sendInOrder(ctx context.Context, rec SpoolRecord) error {
	if p.pending.Load() > 0 {
		// Kafka failed a moment ago and nothing has drained since: answer
		// at once instead of waiting out another time-out per call.
		if time.Since(time.Unix(0, p.lastFailure.Load())) < p.retryAfter {
			return errors.New("kafka unavailable (spool not yet drained)")
		}
		if err := p.drain(ctx); err != nil {
			return err
		}
	}
	return p.send(ctx, []SpoolRecord{rec})
}

func (p *Producer) toSpool(rec SpoolRecord) error {
	if p.spool == nil {
		return errors.New("no spool configured")
	}
	if err := p.spool.Append(rec); err != nil {
		return err
	}
	p.pending.Add(1)
	p.stats.Spooled.Add(1)
	return nil
}

// send produces recs and waits for all acknowledgements, bounded by the ack
// time-out. It returns how many leading records were acknowledged.
func (p *Producer) send(ctx context.Context, recs []SpoolRecord) error {
	_, err := p.sendPrefix(ctx, recs)
	return err
}

func (p *Producer) sendPrefix(ctx context.Context, recs []SpoolRecord) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.ackTimeout)
	defer cancel()
	// Each call owns its result slots; a promise that fires after the hard
	// bound below writes into them harmlessly.
	type result struct {
		mu   sync.Mutex
		errs []error
		done []bool
	}
	res := &result{errs: make([]error, len(recs)), done: make([]bool, len(recs))}
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, r := range recs {
		i := i
		p.cl.Produce(ctx, &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}, func(_ *kgo.Record, err error) {
			res.mu.Lock()
			res.errs[i], res.done[i] = err, true
			res.mu.Unlock()
			wg.Done()
		})
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	// The context fails unsent records at the deadline; the hard bound
	// covers a client that cannot fail them at once.
	hard := time.NewTimer(p.ackTimeout + time.Second)
	defer hard.Stop()
	select {
	case <-all:
	case <-hard.C:
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	for i := range recs {
		err := res.errs[i]
		if !res.done[i] {
			err = context.DeadlineExceeded
		}
		if err != nil {
			p.lastFailure.Store(time.Now().UnixNano())
			return i, err
		}
	}
	return len(recs), nil
}

// drain sends spooled records, oldest first, until the spool is empty or a
// send fails.
func (p *Producer) drain(ctx context.Context) error {
	if p.spool == nil {
		return nil
	}
	p.drainMu.Lock()
	defer p.drainMu.Unlock()
	for {
		batch, err := p.spool.Peek(500)
		if err != nil {
			return fmt.Errorf("eventlog: read spool: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		n, sendErr := p.sendPrefix(ctx, batch)
		if n > 0 {
			if err := p.spool.Ack(n); err != nil {
				return fmt.Errorf("eventlog: ack spool: %w", err)
			}
			p.pending.Add(int64(-n))
			p.stats.Drained.Add(int64(n))
		}
		if sendErr != nil {
			return sendErr
		}
	}
}

// drainLoop retries the spool in the background so that it empties once
// Kafka is back even when no new event arrives.
func (p *Producer) drainLoop() {
	defer close(p.done)
	backoff := p.retryAfter
	t := time.NewTimer(backoff)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		if p.pending.Load() == 0 {
			backoff = p.retryAfter
			t.Reset(backoff)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-p.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := p.drainAll(ctx)
		cancel()
		if err != nil {
			p.log.Warn("spool drain failed; will retry", "pending", p.pending.Load(), "backoff", backoff, "err", err)
			backoff = min(backoff*2, 10*time.Second)
		} else {
			p.log.Info("spool drained")
			backoff = p.retryAfter
		}
		t.Reset(backoff)
	}
}

// drainAll drains while holding every chain lock, so no chain's newer event
// can overtake its spooled ones.
func (p *Producer) drainAll(ctx context.Context) error {
	p.chainsMu.Lock()
	slots := make([]*chainSlot, 0, len(p.chains))
	for _, s := range p.chains {
		slots = append(slots, s)
	}
	p.chainsMu.Unlock()
	// Chains are locked in no fixed order by emit, but emit holds only one,
	// and drainAll only takes them with TryLock: a busy chain is draining
	// through its own emit call already.
	var held []*chainSlot
	for _, s := range slots {
		if s.mu.TryLock() {
			held = append(held, s)
		}
	}
	defer func() {
		for _, s := range held {
			s.mu.Unlock()
		}
	}()
	return p.drain(ctx)
}

// Flush drains the spool, bounded by ctx.
func (p *Producer) Flush(ctx context.Context) error {
	return p.drain(ctx)
}

// Close stops the background drain, tries a last drain bounded by ctx, and
// closes the client. Spooled records that could not be sent stay on disk and
// are sent by the next producer that opens the same spool.
func (p *Producer) Close(ctx context.Context) error {
	close(p.stop)
	<-p.done
	var err error
	if p.pending.Load() > 0 {
		err = p.drain(ctx)
	}
	p.cl.Close()
	if p.spool != nil {
		if cerr := p.spool.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
