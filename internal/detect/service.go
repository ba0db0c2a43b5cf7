package detect

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrConfig: a Config field is missing or malformed; the message names it.
var ErrConfig = errors.New("detect: bad config")

// Config is `detect run`'s configuration. Tags name the environment
// variable each flag defaults from.
type Config struct {
	Brokers []string `env:"KAFKA_BROKERS"`
	// Group is the consumer group; every instance of one detector shares it.
	Group string `env:"DETECT_GROUP"`
	// InstanceID, when set, makes the instance a static member of Group
	// (Kafka's group.instance.id), one id per running instance: restarted
	// with the same id after a crash, it gets its partitions back at once,
	// resuming from their checkpoints, instead of after SessionTimeout. A
	// static member that stops, cleanly or not, keeps its partitions
	// unread until it returns or its session times out.
	InstanceID string `env:"DETECT_INSTANCE_ID"`
	// SessionTimeout is how long the group waits for a silent member
	// before giving its partitions to the others (default 45s; the
	// brokers allow 6s at least).
	SessionTimeout time.Duration `env:"DETECT_SESSION_TIMEOUT"`
	RulesDir       string        `env:"DETECT_RULES"`
	// Overrides is an override file tuning the rules (WithOverrides).
	Overrides string `env:"DETECT_OVERRIDES"`
	// RunnerID names this process's event chains; default
	// detect-<host>-<start id>, so a restart never reuses a chain.
	RunnerID string `env:"DETECT_ID"`
	// NodeID is the snowflake node of the ids it issues (0..1023), unique
	// among emitters; 0 or -1 derives one in 1000..1019 from the runner id.
	// Instances sharing a group need one each, set by hand: two derived
	// ones coincide one time in twenty, and then two alerts decided in
	// the same millisecond get one event id.
	NodeID int64           `env:"DETECT_NODE_ID"`
	Topics eventlog.Topics `env:"-"`
	// StateTopic (compacted) holds checkpoints; RepartitionTopic carries
	// matches re-keyed by group.
	StateTopic            string `env:"DETECT_STATE_TOPIC"`
	RepartitionTopic      string `env:"DETECT_REPARTITION_TOPIC"`
	RepartitionPartitions int32  `env:"DETECT_REPARTITION_PARTITIONS"`
	// CreateTopics creates missing topics with Partitions (default 6) and
	// Replication. Replication 0 or -1 is the brokers' default
	// (default.replication.factor), so a three-broker cluster set up for
	// it gets 3 without being told.
	CreateTopics bool  `env:"DETECT_CREATE_TOPICS"`
	Partitions   int32 `env:"DETECT_TOPIC_PARTITIONS"`
	Replication  int16 `env:"DETECT_TOPIC_REPLICATION"`
	// StartAt is where a partition without a checkpoint or committed
	// offset starts: "earliest" (default: nothing is skipped) or "latest".
	StartAt string `env:"DETECT_START_AT"`
	// MetricsAddr serves /metrics and /healthz; it must be a loopback
	// address ("" disables).
	MetricsAddr string `env:"DETECT_METRICS_ADDR"`
	// CheckpointEvery bounds how much work a crash repeats; a batch that
	// raises alerts is checkpointed before they are written, whatever this.
	CheckpointEvery time.Duration `env:"DETECT_CHECKPOINT_EVERY"`
	// IdleAdvance: a partition without events for this long moves its event
	// time to the wall clock minus this, so dedup summaries still go out.
	IdleAdvance  time.Duration `env:"DETECT_IDLE_ADVANCE"`
	ApprovalTTL  time.Duration `env:"DETECT_APPROVAL_TTL"`
	SystemTenant string        `env:"DETECT_SYSTEM_TENANT"`
	// MaxPollRecords bounds one poll's batch (default 1000).
	MaxPollRecords int `env:"DETECT_MAX_POLL_RECORDS"`
	// ClickHouse for SQL rules, as the read-only user. Empty Addr disables
	// SQL rules.
	ClickHouse ClickHouseConfig `env:"-"`
	// SQLEvery is how often due SQL rules are looked for; SQLDelay how far
	// behind the wall clock their ranges end, for ingest to catch up.
	SQLEvery time.Duration `env:"DETECT_SQL_EVERY"`
	SQLDelay time.Duration `env:"DETECT_SQL_DELAY"`
	Logger   *slog.Logger  `env:"-"`
}

// Validate fills defaults and names the first bad field.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("%w: Brokers is empty", ErrConfig)
	}
	if c.Group == "" {
		c.Group = "detect"
	}
	if c.RulesDir == "" {
		return fmt.Errorf("%w: RulesDir is empty", ErrConfig)
	}
	if c.InstanceID != "" && !eventlog.ValidName(c.InstanceID) {
		return fmt.Errorf("%w: InstanceID %q: want 1-249 of [A-Za-z0-9._-]", ErrConfig, c.InstanceID)
	}
	switch {
	case c.SessionTimeout == 0:
		c.SessionTimeout = 45 * time.Second
	case c.SessionTimeout < 0:
		return fmt.Errorf("%w: SessionTimeout is negative", ErrConfig)
	}
	if c.Topics == (eventlog.Topics{}) {
		c.Topics = eventlog.DefaultTopics
	}
	if c.Topics.Events == "" || c.Topics.Approvals == "" {
		return fmt.Errorf("%w: Topics needs Events and Approvals", ErrConfig)
	}
	if c.StateTopic == "" {
		c.StateTopic = "audit.detect.state"
	}
	if c.RepartitionTopic == "" {
		c.RepartitionTopic = "audit.detect.repartition"
	}
	if c.RepartitionPartitions <= 0 {
		c.RepartitionPartitions = 6
	}
	if c.Partitions <= 0 {
		c.Partitions = 6
	}
	switch {
	case c.Replication == 0:
		c.Replication = -1 // kadm: the brokers' default
	case c.Replication < -1:
		return fmt.Errorf("%w: Replication %d is not positive or -1 (the brokers' default)", ErrConfig, c.Replication)
	}
	switch c.StartAt {
	case "":
		c.StartAt = "earliest"
	case "earliest", "latest":
	default:
		return fmt.Errorf("%w: StartAt %q is not earliest or latest", ErrConfig, c.StartAt)
	}
	if c.MetricsAddr != "" {
		host, _, err := net.SplitHostPort(c.MetricsAddr)
		if err != nil {
			return fmt.Errorf("%w: MetricsAddr %q: %v", ErrConfig, c.MetricsAddr, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%w: MetricsAddr %q is not a loopback address", ErrConfig, c.MetricsAddr)
		}
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 5 * time.Second
	}
	if c.IdleAdvance <= 0 {
		c.IdleAdvance = 5 * time.Minute
	}
	if c.ApprovalTTL <= 0 {
		c.ApprovalTTL = 15 * time.Minute
	}
	if c.SystemTenant == "" {
		c.SystemTenant = "system"
	}
	if c.MaxPollRecords <= 0 {
		// Small enough that the first alert of a backlog waits for the
		// evaluation of little else (tens of ms at most), large enough
		// that the per-poll work stays a small share.
		c.MaxPollRecords = 1000
	}
	if c.SQLEvery <= 0 {
		c.SQLEvery = 10 * time.Second
	}
	if c.SQLDelay < 0 {
		return fmt.Errorf("%w: SQLDelay is negative", ErrConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RunnerID == "" {
		host, _ := os.Hostname()
		host = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
				return r
			}
			return '-'
		}, host)
		if host == "" {
			host = "host"
		}
		c.RunnerID = "detect-" + host + "-" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	if c.NodeID <= 0 {
		// Nodes 1000..1023 are the services'; 1020.. are replay's and
		// bench's. Instances that must never share one set it.
		h := fnv.New32a()
		h.Write([]byte(c.RunnerID))
		c.NodeID = 1000 + int64(h.Sum32()%20)
	}
	if c.NodeID > 1023 {
		return fmt.Errorf("%w: NodeID %d is not 0..1023", ErrConfig, c.NodeID)
	}
	return nil
}

// ServiceOption configures NewService beyond Config.
type ServiceOption func(*Service)

// WithEmitter sets what writes alerts (default: an eventlog.Producer).
func WithEmitter(e Emitter) ServiceOption { return func(s *Service) { s.emit = e } }

// WithQuerier sets what runs SQL rules (default: ClickHouse from Config).
func WithQuerier(q Querier) ServiceOption { return func(s *Service) { s.querier = q } }

// WithKafkaOptions adds franz-go options to the service's clients.
func WithKafkaOptions(opts ...kgo.Opt) ServiceOption {
	return func(s *Service) { s.kopts = append(s.kopts, opts...) }
}

// Service is `detect run`: a consumer-group member that evaluates the rule
// set over the partitions it is assigned and writes what fires.
type Service struct {
	cfg     Config
	rs      *RuleSet
	localID []string
	routeID []string
	// router evaluates the non-local rules' matches to re-key them.
	router *Engine
	log    *slog.Logger
	kopts  []kgo.Opt

	cl       *kgo.Client
	state    *stateStore
	emit     Emitter
	producer *eventlog.Producer // when the service made its emitter
	builder  *alertBuilder
	holdID   string
	querier  Querier
	sql      *SQLRunner
	metrics  *metrics
	// suppressions, when set, holds back alerts an analyst suppressed.
	suppressions Suppressions

	mu      sync.Mutex // guards tasks and retired
	tasks   map[tp]*task
	retired map[string]RuleStats // counters of tasks that moved away

	lastPoll atomic.Int64 // unix nanos
	// halted: from now on nothing becomes durable (no checkpoint, no
	// event written), as if the process had died; tests use it to crash.
	halted   atomic.Bool
	fatal    chan error
	ready    chan struct{}
	readyOne sync.Once

	// trace, when set (by `detect bench`), records per-stage latency;
	// polledAt is when the batch being handled was returned by its poll.
	trace    *StageTrace
	polledAt time.Time
	// wg counts deliveries and checkpoints running off the loop.
	wg sync.WaitGroup
}

// NewService loads the rules and connects; Run starts consuming.
func NewService(ctx context.Context, cfg Config, opts ...ServiceOption) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rs, err := Load(cfg.RulesDir, WithOverrides(cfg.Overrides))
	if err != nil {
		return nil, fmt.Errorf("detect: rules in %s: %w", cfg.RulesDir, err)
	}
	s := &Service{
		cfg: cfg, rs: rs, log: cfg.Logger, tasks: map[tp]*task{}, retired: map[string]RuleStats{},
		holdID: cfg.RunnerID + "-hold", fatal: make(chan error, 1), ready: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	for _, r := range rs.Rules {
		if !r.Enabled {
			continue
		}
		if r.Local() {
			s.localID = append(s.localID, r.ID)
		} else {
			s.routeID = append(s.routeID, r.ID)
		}
	}
	if len(s.routeID) > 0 {
		s.router = NewEngine(rs, WithRules(s.routeID...), withoutChains())
	}
	ids, err := events.NewIDGen(cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("%w: NodeID: %w", ErrConfig, err)
	}
	s.builder = &alertBuilder{ids: ids, approvalTTL: cfg.ApprovalTTL, systemTenant: cfg.SystemTenant, now: time.Now}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	if cfg.CreateTopics {
		if err := s.createTopics(ctx); err != nil {
			return nil, err
		}
	}
	if s.emit == nil {
		p, err := eventlog.NewProducer(ctx, cfg.Brokers, cfg.RunnerID, eventlog.WithTopics(cfg.Topics),
			eventlog.WithProducerLogger(cfg.Logger), eventlog.WithProducerKafkaOptions(s.kopts...))
		if err != nil {
			return nil, fmt.Errorf("detect: producer: %w", err)
		}
		s.producer, s.emit = p, p
	}
	if s.state, err = newStateStore(cfg.Brokers, cfg.StateTopic, cfg.Group, s.kopts...); err != nil {
		return nil, err
	}
	if len(rs.SQLRules) > 0 && s.querier == nil && cfg.ClickHouse.Addr != "" {
		ch := cfg.ClickHouse
		if ch.Logger == nil {
			ch.Logger = cfg.Logger
		}
		if s.querier, err = NewClickHouseQuerier(ctx, ch); err != nil {
			return nil, err
		}
	}
	if s.querier != nil {
		s.sql = NewSQLRunner(rs, s.querier, nil)
	}
	start := kgo.NewOffset().AtStart()
	if cfg.StartAt == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	group := []kgo.Opt{kgo.ConsumerGroup(cfg.Group), kgo.SessionTimeout(cfg.SessionTimeout)}
	if cfg.InstanceID != "" {
		group = append(group, kgo.InstanceID(cfg.InstanceID))
	}
	s.cl, err = kgo.NewClient(append(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumeTopics(cfg.Topics.Events, cfg.Topics.Approvals, cfg.RepartitionTopic),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		// Callbacks run between batches, never during one: a partition
		// moves only after its work is checkpointed.
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.AdjustFetchOffsetsFn(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.ProducerLinger(0),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, group...), s.kopts...)...)
	if err != nil {
		return nil, fmt.Errorf("detect: consumer: %w", err)
	}
	s.metrics = newMetrics(s)
	ok = true
	return s, nil
}

// Run runs a service with cfg until ctx ends.
func Run(ctx context.Context, cfg Config, opts ...ServiceOption) error {
	s, err := NewService(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Ready is closed once the service holds its first partitions.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// MetricsAddr returns the address /metrics listens on, once Run started.
func (s *Service) MetricsAddr() string { return s.metrics.addr() }

// RunnerID returns the runner_id of the alert.raised events it writes.
func (s *Service) RunnerID() string { return s.cfg.RunnerID }

func (s *Service) createTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.cfg.Brokers...)}, s.kopts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := eventlog.EnsureTopics(ctx, cl, s.cfg.Topics, s.cfg.Partitions, s.cfg.Replication); err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	maxBytes := strconv.Itoa(maxStateBytes + 1<<20)
	compact, del := "compact", "delete"
	create := []struct {
		name  string
		parts int32
		conf  map[string]*string
	}{
		{s.cfg.StateTopic, 1, map[string]*string{"cleanup.policy": &compact, "max.message.bytes": &maxBytes}},
		{s.cfg.RepartitionTopic, s.cfg.RepartitionPartitions, map[string]*string{"cleanup.policy": &del}},
	}
	for _, t := range create {
		resp, err := adm.CreateTopics(ctx, t.parts, s.cfg.Replication, t.conf, t.name)
		if err != nil {
			return fmt.Errorf("detect: create topic %s: %w", t.name, err)
		}
		for _, r := range resp {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("detect: create topic %s: %w", r.Topic, r.Err)
			}
		}
	}
	return nil
}

// Run consumes until ctx ends, then checkpoints every partition it holds
// and leaves the group. It returns nil when ctx was cancelled.
func (s *Service) Run(ctx context.Context) error {
	defer s.close()
	stop, err := s.metrics.serve(s.cfg.MetricsAddr)
	if err != nil {
		return err
	}
	defer stop()
	err = s.loop(ctx)
	if s.halted.Load() {
		return nil
	}
	// Whatever happened, save what was done: the next owner of these
	// partitions starts from here instead of repeating it.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s.mu.Lock()
	tasks := s.sortedTasks()
	s.mu.Unlock()
	for _, t := range tasks {
		if serr := s.drainAndSave(sctx, t, true); serr != nil && err == nil {
			err = serr
		}
	}
	s.commit(sctx, tasks, true)
	s.cl.AllowRebalance()
	s.cl.Close() // leaves the group; the revoke callback finds nothing left to save
	s.cl = nil
	return err
}

func (s *Service) close() {
	// Deliveries and checkpoints in flight finish (or fail) before their
	// clients close.
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		s.log.Warn("deliveries still running at close")
	}
	if s.cl != nil {
		s.cl.AllowRebalance() // Close waits for a rebalance a poll blocks
		s.cl.Close()
	}
	if s.state != nil {
		s.state.close()
	}
	if s.producer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.producer.Close(ctx)
		cancel()
	}
	if c, ok := s.querier.(interface{ Close() error }); ok {
		c.Close()
	}
}

func (s *Service) loop(ctx context.Context) error {
	sqlTick := time.NewTicker(s.cfg.SQLEvery)
	defer sqlTick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		pollStart := time.Now()
		fs := s.cl.PollRecords(pctx, s.cfg.MaxPollRecords)
		cancel()
		s.polledAt = time.Now()
		s.lastPoll.Store(s.polledAt.UnixNano())
		s.trace.loopStage("poll wait", s.polledAt.Sub(pollStart))
		s.trace.count("records per poll", fs.NumRecords())
		if fs.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		select {
		case err := <-s.fatal:
			return err
		default:
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		if err := s.handle(ctx, fs); err != nil {
			if ctx.Err() != nil {
				return nil // shutting down: Run saves what is left
			}
			return err
		}
		s.trace.loopStage("handle (poll return → next poll)", time.Since(s.polledAt))
		select {
		case <-sqlTick.C:
			if err := s.runSQL(ctx); err != nil {
				s.log.Warn("SQL rules", "err", err)
			}
		default:
		}
		s.cl.AllowRebalance()
	}
}

// handle processes one poll: evaluate, forward re-keyed matches, write
// alerts behind a checkpoint, checkpoint what is due, commit.
func (s *Service) handle(ctx context.Context, fs kgo.Fetches) error {
	// Partitions are independent: evaluate them in parallel, then save
	// and write them in parallel (that part mostly waits for Kafka).
	type work struct {
		t    *task
		recs []*kgo.Record
		fwd  []*kgo.Record
		save bool // a checkpoint is due: take it after the batch
		st   *taskState
		err  error
	}
	var ws []*work
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			ws = append(ws, &work{t: s.task(p.Topic, p.Partition), recs: p.Records})
		}
	})
	for _, w := range ws {
		s.reapSave(w.t)
		w.save = s.saveDue(w.t, s.polledAt)
	}
	eval := func(i int) {
		w := ws[i]
		w.fwd = s.process(w.t, w.recs, nil)
		if w.save {
			w.st, w.err = s.snapshotForSave(w.t)
		}
	}
	if fs.NumRecords() < inlineRecords {
		for i := range ws {
			eval(i)
		}
	} else {
		parallel(len(ws), eval)
	}
	s.trace.loopStage("evaluate", time.Since(s.polledAt))
	var fwd []*kgo.Record
	for _, w := range ws {
		fwd = append(fwd, w.fwd...)
	}
	if len(fwd) > 0 {
		// A checkpoint taken above covers these: it is written only once
		// they are in.
		fstart := time.Now()
		if err := s.forward(ctx, fwd); err != nil {
			return err
		}
		s.trace.loopStage("forward (repartition produce)", time.Since(fstart))
		s.trace.count("forwarded per poll", len(fwd))
	}
	var errs []error
	for _, w := range ws {
		switch {
		case w.err != nil:
			errs = append(errs, w.err)
		case w.st != nil:
			s.startSave(ctx, w.t, w.st)
		}
	}
	// What the batch decided is written off the loop (deliveries), and so
	// are checkpoints: the next poll does not wait for Kafka's acks.
	dstart := time.Now()
	now := dstart
	s.mu.Lock()
	tasks := s.sortedTasks()
	s.mu.Unlock()
	for _, t := range tasks {
		if err := s.reap(t); err != nil {
			errs = append(errs, err)
		}
		idle := t.kind == kindEvents && now.Sub(t.lastEvent) > s.cfg.IdleAdvance && now.Sub(t.lastAdvance) > s.cfg.IdleAdvance/10
		if idle {
			t.lastAdvance = now
			for _, a := range t.local.Advance(now.Add(-s.cfg.IdleAdvance)) {
				s.enqueue(t, a)
			}
		}
		s.dispatch(ctx, t)
		if s.saveDue(t, now) {
			// A partition without records this turn (or made dirty by
			// SQL rules).
			st, err := s.snapshotForSave(t)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.startSave(ctx, t, st)
		}
	}
	s.trace.loopStage("reap + dispatch + checkpoint start", time.Since(dstart))
	s.commit(ctx, tasks, false)
	return errors.Join(errs...)
}

// parallel runs f(0..n-1), f(0) on the caller's goroutine, and waits.
func parallel(n int, f func(int)) {
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	if n > 0 {
		f(0)
	}
	wg.Wait()
}

// inlineRecords: a batch this small is evaluated on the loop's goroutine;
// waking one per partition would cost more than it saves, most of all on
// a busy machine where every wake-up waits for a CPU.
const inlineRecords = 256

// drainAndSave waits for t's work in flight, then checkpoints t (with its
// outbox, before writing it), writes what is left of the outbox and leaves
// t's events durable. It runs with the poll loop stopped: on shutdown and
// when t's partition is revoked.
func (s *Service) drainAndSave(ctx context.Context, t *task, full bool) error {
	if err := s.settle(t); err != nil && !errors.Is(err, errHalted) {
		s.log.Warn("a delivery failed; its events are written again", "topic", t.tp.topic, "partition", t.tp.partition, "err", err)
	}
	if len(t.outbox) == 0 && t.next <= t.saved && !t.dirty {
		return nil
	}
	var err error
	if full || len(t.outbox) == 0 {
		err = s.save(ctx, t)
	} else {
		lr := &logRecord{UpTo: t.next, At: t.outboxAt, Events: t.outbox, Alerts: t.decided, SQLTo: t.sqlTo}
		key := s.state.logPrefix(t.tp.topic, t.tp.partition) + t.outbox[0].EventID
		if err = s.saveLog(ctx, key, lr); err == nil {
			t.logKeys = append(t.logKeys, loggedKey{key, lr.UpTo})
		}
	}
	if err != nil {
		return err
	}
	if len(t.outbox) == 0 {
		return nil
	}
	if err := s.writeOutbox(ctx, t); err != nil {
		return err
	}
	t.outbox, t.decided, t.outboxAt = nil, nil, time.Time{}
	return nil
}

// saveLog writes a log record, retrying until Kafka takes it or ctx ends.
func (s *Service) saveLog(ctx context.Context, key string, lr *logRecord) error {
	if s.halted.Load() {
		return errHalted
	}
	backoff := 100 * time.Millisecond
	for {
		err := s.state.saveLog(ctx, key, lr)
		if s.halted.Load() {
			return errHalted
		}
		if err == nil {
			s.metrics.logRecords.Inc()
			return nil
		}
		s.metrics.checkpointErrors.Inc()
		s.log.Warn("log record failed; retrying", "key", key, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

var errHalted = errors.New("detect: service halted")

func (s *Service) save(ctx context.Context, t *task) error {
	st, err := t.snapshot()
	if err != nil {
		return err
	}
	n, err := s.writeState(ctx, t.tp, st)
	if err != nil {
		return err
	}
	t.dirty = false
	s.applySaved(t, st, n)
	return nil
}

// writeState writes a checkpoint, retrying until Kafka takes it or ctx
// ends. It touches no task: checkpoints are written off the loop too.
func (s *Service) writeState(ctx context.Context, k tp, st *taskState) (int, error) {
	backoff := 100 * time.Millisecond
	for {
		if s.halted.Load() {
			return 0, errHalted
		}
		n, err := s.state.save(ctx, k.topic, k.partition, st)
		if err == nil && s.halted.Load() {
			return 0, errHalted
		}
		if err == nil {
			return n, nil
		}
		s.metrics.checkpointErrors.Inc()
		s.log.Warn("checkpoint failed; retrying", "topic", k.topic, "partition", k.partition, "err", err)
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// applySaved records on t that st is durable.
func (s *Service) applySaved(t *task, st *taskState, n int) {
	t.saved, t.savedAt = st.Next, time.Now()
	// The log records before this checkpoint are covered by it.
	var covered []string
	kept := t.logKeys[:0]
	for _, k := range t.logKeys {
		if k.upTo <= st.Next {
			covered = append(covered, k.key)
		} else {
			kept = append(kept, k)
		}
	}
	t.logKeys = kept
	s.state.forget(covered)
	s.metrics.checkpoints.Inc()
	s.metrics.checkpointBytes.Observe(float64(n))
}

// commit records checkpointed offsets in the group, for lag monitoring and
// for partitions that never checkpoint state (the approvals topic).
func (s *Service) commit(ctx context.Context, ts []*task, wait bool) {
	offs := map[string]map[int32]kgo.EpochOffset{}
	for _, t := range ts {
		if t.saved <= t.committed {
			continue
		}
		if offs[t.tp.topic] == nil {
			offs[t.tp.topic] = map[int32]kgo.EpochOffset{}
		}
		offs[t.tp.topic][t.tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: t.saved}
		// Optimistic: a failed commit is retried with the next checkpoint,
		// and the checkpoint, not the commit, is what a restart reads.
		t.committed = t.saved
	}
	if len(offs) == 0 {
		return
	}
	done := func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("offset commit failed (checkpoints hold the positions)", "err", err)
		}
	}
	if wait {
		s.cl.CommitOffsetsSync(ctx, offs, done)
		return
	}
	// Between batches the commit need not hold up the next one.
	s.cl.CommitOffsets(ctx, offs, done)
}

// forward writes re-keyed matches, retrying until Kafka takes them: the
// batch's checkpoint must not pass them. Receivers drop duplicates.
func (s *Service) forward(ctx context.Context, recs []*kgo.Record) error {
	backoff := 100 * time.Millisecond
	for {
		err := s.cl.ProduceSync(ctx, recs...).FirstErr()
		if err == nil {
			s.metrics.forwarded.Add(float64(len(recs)))
			return nil
		}
		s.metrics.forwardErrors.Inc()
		s.log.Warn("forward to repartition topic failed; retrying", "records", len(recs), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		for _, r := range recs {
			r.Partition, r.Offset = 0, 0
		}
	}
}

// writeOutbox emits t's outbox: chains (sessions) in parallel, each in
// order. Events a crashed predecessor may have written are looked up
// first.
func (s *Service) writeOutbox(ctx context.Context, t *task) error {
	write, err := s.skipSent(ctx, t.outboxAt, t.outbox)
	if err != nil {
		return err
	}
	ectx := context.WithoutCancel(ctx) // finish what the checkpoint promised
	bySession := map[string][]*pendingEvent{}
	var order []string
	for _, p := range write {
		if _, ok := bySession[p.SessionID]; !ok {
			order = append(order, p.SessionID)
		}
		bySession[p.SessionID] = append(bySession[p.SessionID], p)
	}
	errs := make([]error, len(order))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, sess := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, p := range bySession[sess] {
				if err := s.emitOne(ectx, p); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Service) emitOne(ctx context.Context, p *pendingEvent) error {
	runner := "" // the producer's own id
	if p.onApprovalsTopic() {
		// Each chain stays on one topic, so readers of either topic see it
		// without gaps.
		runner = s.holdID
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if s.halted.Load() {
			return errHalted
		}
		err := s.emit.Emit(ctx, p.envelope(runner))
		if err == nil {
			s.traceOutbox([]*pendingEvent{p}, func(x *alertStages, now time.Time) { x.acked = now })
			s.metrics.emitted.WithLabelValues(p.RuleID, p.EventType).Inc()
			return nil
		}
		if s.halted.Load() {
			return errHalted
		}
		if permanent(err) {
			// Never silently: counted, logged with the alert.
			s.metrics.dropped.WithLabelValues(p.RuleID, p.EventType).Inc()
			s.log.Error("alert event refused; dropped", "rule", p.RuleID, "event_type", p.EventType, "event_id", p.EventID, "err", err)
			return nil
		}
		s.metrics.emitErrors.Inc()
		s.log.Warn("emit failed; retrying", "rule", p.RuleID, "event_type", p.EventType, "attempt", attempt, "err", err)
		if attempt >= 60 {
			return fmt.Errorf("detect: emit %s for %s: %w", p.EventType, p.RuleID, err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

// enqueue turns an alert into outbox events, unless it is one a log
// record shows was raised before a restart.
func (s *Service) enqueue(t *task, a Alert) {
	id := alertIdentity(a)
	if t.suppress[id] > 0 {
		t.suppress[id]--
		s.metrics.recovered.WithLabelValues("replayed").Inc()
		return
	}
	if _, ok := s.suppressedBy(a); ok {
		return
	}
	ps, err := s.builder.build(a)
	if err != nil {
		s.metrics.dropped.WithLabelValues(a.RuleID, events.TypeAlertRaised).Inc()
		s.log.Error("alert cannot be built; dropped", "rule", a.RuleID, "err", err)
		return
	}
	if len(t.outbox) == 0 {
		t.outboxAt = time.Now()
	}
	t.outbox = append(t.outbox, ps...)
	t.decided = append(t.decided, id)
}

// alertIdentity names an alert the same way each time a replay raises it:
// the engine is a function of the events, so a replay raises the same
// alerts over the same events.
func alertIdentity(a Alert) string {
	last := ""
	if len(a.EventIDs) > 0 {
		last = a.EventIDs[len(a.EventIDs)-1]
	}
	return fmt.Sprintf("%s|%s|%d|%d|%t|%s|%d", a.RuleID, a.GroupKey, a.Count, a.Suppressed, a.Summary, last, a.LastSeen.UnixMicro())
}

func (s *Service) ready1() { s.readyOne.Do(func() { close(s.ready) }) }
