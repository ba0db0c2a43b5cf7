package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler processes one polled batch. It returns nil only when every record
// has taken effect; the batch's offsets are committed after that and never
// before. An error makes the consumer retry the same batch with back-off.
type Handler func(ctx context.Context, recs []*kgo.Record) error

// Consumer is a consumer-group member that hands batches to a Handler and
// commits offsets only after the handler succeeded (at-least-once delivery;
// handlers make redelivery harmless, for example by deduplicating on
// event_id).
type Consumer struct {
	cl         *kgo.Client
	log        *slog.Logger
	maxRecords int
	minBackoff time.Duration
	maxBackoff time.Duration
	onRetry    func(err error, attempt int)
}

// ConsumerOption configures a Consumer.
type ConsumerOption func(*consumerConfig)

type consumerConfig struct {
	log        *slog.Logger
	maxRecords int
	minBackoff time.Duration
	maxBackoff time.Duration
	kopts      []kgo.Opt
	onRetry    func(err error, attempt int)
}

// WithConsumerLogger sets the logger.
func WithConsumerLogger(l *slog.Logger) ConsumerOption {
	return func(c *consumerConfig) { c.log = l }
}

// WithMaxPollRecords bounds the records handed to one Handler call.
func WithMaxPollRecords(n int) ConsumerOption {
	return func(c *consumerConfig) { c.maxRecords = n }
}

// WithRetryBackoff sets the handler retry back-off bounds.
func WithRetryBackoff(min, max time.Duration) ConsumerOption {
	return func(c *consumerConfig) { c.minBackoff, c.maxBackoff = min, max }
}

// WithOnRetry is called each time a handler failure is retried, so a service
// can count and report it.
func WithOnRetry(f func(err error, attempt int)) ConsumerOption {
	return func(c *consumerConfig) { c.onRetry = f }
}

// WithKafkaOptions passes extra franz-go options to the client.
func WithKafkaOptions(opts ...kgo.Opt) ConsumerOption {
	return func(c *consumerConfig) { c.kopts = append(c.kopts, opts...) }
}

// NewConsumer joins group on brokers, consuming topics from the earliest
// offset when the group has none committed.
func NewConsumer(brokers []string, group string, topics []string, opts ...ConsumerOption) (*Consumer, error) {
	if len(brokers) == 0 {
		return nil, errors.New("eventlog: consumer needs at least one broker")
	}
	if group == "" {
		return nil, errors.New("eventlog: consumer needs a group id")
	}
	if len(topics) == 0 {
		return nil, errors.New("eventlog: consumer needs at least one topic")
	}
	cfg := consumerConfig{
		log:        slog.New(slog.DiscardHandler),
		maxRecords: 10_000,
		minBackoff: 100 * time.Millisecond,
		maxBackoff: 10 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the batch in hand is committed, so a
		// partition never moves with uncommitted work on it.
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, cfg.kopts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("eventlog: consumer client: %w", err)
	}
	return &Consumer{
		cl: cl, log: cfg.log, maxRecords: cfg.maxRecords,
		minBackoff: cfg.minBackoff, maxBackoff: cfg.maxBackoff, onRetry: cfg.onRetry,
	}, nil
}

// Client exposes the underlying client, for lag metrics.
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Run polls and handles batches until ctx is done. A batch whose handler
// never succeeds before ctx ends is left uncommitted, so the next member of
// the group receives it again. Run returns nil when ctx was cancelled.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	for {
		fetches := c.cl.PollRecords(ctx, c.maxRecords)
		if fetches.IsClientClosed() {
			return nil
		}
		if ctx.Err() != nil {
			c.cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			c.cl.AllowRebalance()
			continue
		}
		if err := c.handle(ctx, h, recs); err != nil {
			c.cl.AllowRebalance()
			return nil // ctx ended during retries: nothing committed
		}
		if err := c.commit(ctx, recs); err != nil {
			// The batch took effect but its offsets did not move: it will
			// be delivered again, which handlers make harmless.
			c.log.Error("batch handled but not committed; it will be redelivered", "records", len(recs), "err", err)
		}
		c.cl.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (c *Consumer) handle(ctx context.Context, h Handler, recs []*kgo.Record) error {
	backoff := c.minBackoff
	for attempt := 1; ; attempt++ {
		err := h(ctx, recs)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("handler failed; retrying the same batch", "records", len(recs), "attempt", attempt, "backoff", backoff, "err", err)
		if c.onRetry != nil {
			c.onRetry(err, attempt)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.maxBackoff)
	}
}

// commit retries until the group accepts the offsets or ctx ends. Committing
// uses a context of its own so that a shutdown in progress still records
// work that has already taken effect.
func (c *Consumer) commit(ctx context.Context, recs []*kgo.Record) error {
	backoff := c.minBackoff
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := c.cl.CommitRecords(cctx, recs...)
		cancel()
		if err == nil {
			return nil
		}
		c.log.Warn("offset commit failed; retrying", "attempt", attempt, "err", err)
		if attempt >= 10 || (attempt >= 3 && ctx.Err() != nil) {
			return fmt.Errorf("eventlog: commit offsets: %w", err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, c.maxBackoff)
	}
}

// Close leaves the group and closes the client.
func (c *Consumer) Close() {
	c.cl.Close()
}
