package alertout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// Deliverer posts alerts to its outputs.
type Deliverer struct {
	outputs    []Output
	client     *http.Client
	log        *slog.Logger
	attempts   int
	minBackoff time.Duration
	maxBackoff time.Duration

	mu    sync.Mutex
	stats map[string]*OutputStats
}

// OutputStats counts what one output did.
type OutputStats struct {
	Delivered    uint64 `json:"delivered"`
	Retries      uint64 `json:"retries"`
	DeadLettered uint64 `json:"dead_lettered"`
	Skipped      uint64 `json:"skipped"` // below the output's severity
}

// Option configures a Deliverer.
type Option func(*Deliverer)

// WithHTTPClient sets the client (default: 10 s time-out per request).
func WithHTTPClient(c *http.Client) Option { return func(d *Deliverer) { d.client = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(d *Deliverer) { d.log = l } }

// WithRetry sets how many attempts a delivery gets and the back-off
// between them (defaults: 6 attempts, 200 ms doubling to 10 s).
func WithRetry(attempts int, minBackoff, maxBackoff time.Duration) Option {
	return func(d *Deliverer) { d.attempts, d.minBackoff, d.maxBackoff = attempts, minBackoff, maxBackoff }
}

// NewDeliverer checks the outputs and returns a Deliverer for them.
func NewDeliverer(outputs []Output, opts ...Option) (*Deliverer, error) {
	if len(outputs) == 0 {
		return nil, fmt.Errorf("%w: no outputs", ErrOutput)
	}
	d := &Deliverer{client: &http.Client{Timeout: 10 * time.Second}, log: slog.New(slog.DiscardHandler),
		attempts: 6, minBackoff: 200 * time.Millisecond, maxBackoff: 10 * time.Second, stats: map[string]*OutputStats{}}
	for _, o := range opts {
		o(d)
	}
	d.attempts = max(d.attempts, 1)
	for _, o := range outputs {
		if err := o.check(); err != nil {
			return nil, err
		}
		if d.stats[o.Name] != nil {
			return nil, fmt.Errorf("%w: two outputs named %q", ErrOutput, o.Name)
		}
		d.stats[o.Name] = &OutputStats{}
		d.outputs = append(d.outputs, o)
	}
	return d, nil
}

// Stats returns a copy of the counts, by output name.
func (d *Deliverer) Stats() map[string]OutputStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]OutputStats, len(d.stats))
	for k, v := range d.stats {
		out[k] = *v
	}
	return out
}

func (d *Deliverer) count(name string, f func(*OutputStats)) {
	d.mu.Lock()
	f(d.stats[name])
	d.mu.Unlock()
}

// Deliver sends a to every output that wants it, in parallel. It returns
// an error only when ctx ended first (the alert is then delivered again
// by whoever consumes it next); a delivery that failed for good has been
// dead-lettered.
func (d *Deliverer) Deliver(ctx context.Context, a Alert) error {
	var wg sync.WaitGroup
	for i := range d.outputs {
		o := &d.outputs[i]
		if !o.wants(a.Severity) {
			d.count(o.Name, func(s *OutputStats) { s.Skipped++ })
			continue
		}
		wg.Go(func() { d.deliverOne(ctx, o, a) })
	}
	wg.Wait()
	return ctx.Err()
}

func (d *Deliverer) deliverOne(ctx context.Context, o *Output, a Alert) {
	body, err := Body(o.Format, a)
	if err != nil {
		d.deadLetter(o, a, err)
		return
	}
	backoff := d.minBackoff
	for attempt := 1; ; attempt++ {
		retry, err := d.post(ctx, o, body)
		if err == nil {
			d.count(o.Name, func(s *OutputStats) { s.Delivered++ })
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !retry || attempt >= d.attempts {
			d.deadLetter(o, a, fmt.Errorf("after %d attempt(s): %w", attempt, err))
			return
		}
		d.count(o.Name, func(s *OutputStats) { s.Retries++ })
		d.log.Warn("alert output failed; retrying", "output", o.Name, "event_id", a.EventID, "attempt", attempt, "err", err)
		// Full jitter, so outputs that failed together do not retry together.
		wait := time.Duration(rand.Int64N(int64(backoff)) + 1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, d.maxBackoff)
	}
}

func (d *Deliverer) deadLetter(o *Output, a Alert, err error) {
	d.count(o.Name, func(s *OutputStats) { s.DeadLettered++ })
	d.log.Error("alert not delivered; dead-lettered", "output", o.Name, "event_id", a.EventID, "rule", a.RuleID, "err", err)
}

// post sends one request; retry says whether a failure may pass.
func (d *Deliverer) post(ctx context.Context, o *Output, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "agentaudit-alertout")
	for k, v := range o.Header {
		req.Header.Set(k, v)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return true, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	default:
		return false, fmt.Errorf("refused: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
}

// Handler is an eventlog.Consumer handler delivering every alert.raised in
// a batch; other events are passed over. A record that is not a valid
// event cannot be an alert this service owes anyone (the ingester
// dead-letters it), so it is logged and passed over too.
func (d *Deliverer) Handler() eventlog.Handler {
	alertMark := []byte(`"alert.raised"`)
	return func(ctx context.Context, recs []*kgo.Record) error {
		for _, r := range recs {
			if !bytes.Contains(r.Value, alertMark) {
				continue
			}
			env, err := events.Decode(r.Value)
			if err != nil {
				d.log.Warn("record is not a valid event; passed over", "partition", r.Partition, "offset", r.Offset, "err", err)
				continue
			}
			if env.EventType != events.TypeAlertRaised {
				continue
			}
			a, err := FromEnvelope(env)
			if err != nil {
				d.log.Warn("alert could not be read; passed over", "event_id", env.EventID, "err", err)
				continue
			}
			if err := d.Deliver(ctx, a); err != nil {
				return err
			}
		}
		return nil
	}
}
