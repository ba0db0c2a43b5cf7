package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Feed follows the audit.approvals topic for one runner process. It starts
// at the end of every partition as it is when the feed starts, so
// decisions, holds and releases written before this process existed are
// never replayed into its sessions (session and approval ids are new in
// every process anyway; starting at the end also keeps start-up fast).
// It reads without a consumer group: every runner needs every record.
type Feed struct {
	cl   *kgo.Client
	log  *slog.Logger
	done chan struct{}
}

// FollowApprovals starts a Feed on topic that hands each valid event to
// dispatch. It returns once the start offsets are fixed, so an approval
// requested after it returns cannot be missed.
func FollowApprovals(ctx context.Context, brokers []string, topic string, dispatch func(*events.Envelope), stats *Stats, log *slog.Logger) (*Feed, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// A short metadata age: while the topic is unknown, each retry of
	// listEnds must ask the broker again, not a 5s-old cache.
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("runner: approvals feed: %w", err)
	}
	ends, err := listEnds(ctx, kadm.NewClient(admCl), topic)
	admCl.Close()
	if err != nil {
		return nil, fmt.Errorf("runner: approvals feed: end offsets of %s: %w", topic, err)
	}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == topic {
			parts[o.Partition] = kgo.NewOffset().At(o.Offset)
		}
	})
	if len(parts) == 0 {
		return nil, fmt.Errorf("runner: approvals feed: topic %s has no partitions", topic)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		// A decision should reach its waiting call at once.
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.ClientID("agentaudit-runner-approvals"),
	)
	if err != nil {
		return nil, fmt.Errorf("runner: approvals feed: %w", err)
	}
	f := &Feed{cl: cl, log: log, done: make(chan struct{})}
	go f.run(context.WithoutCancel(ctx), dispatch, stats)
	return f, nil
}

// listEnds lists topic's end offsets, retrying for up to endsWait while
// the answer is a retriable error: a topic created a moment ago (runner
// serve creates its topics at start) may not be known to the broker that
// answers yet (UNKNOWN_TOPIC_OR_PARTITION).
func listEnds(ctx context.Context, adm *kadm.Client, topic string) (kadm.ListedOffsets, error) {
	deadline := time.Now().Add(endsWait)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil || !kerr.IsRetriable(err) || time.Now().Add(wait).After(deadline) {
			return ends, err
		}
		select {
		case <-ctx.Done():
			return ends, err
		case <-time.After(wait):
		}
	}
}

// endsWait bounds listEnds' retries.
const endsWait = 10 * time.Second

func (f *Feed) run(ctx context.Context, dispatch func(*events.Envelope), stats *Stats) {
	defer close(f.done)
	for {
		fetches := f.cl.PollFetches(ctx)
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, kgo.ErrClientClosed) {
				f.log.Warn("approvals feed fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			env, err := events.Decode(rec.Value)
			if err != nil {
				if stats != nil {
					stats.InvalidRecords.Add(1)
				}
				f.log.Warn("invalid record on the approvals topic", "partition", rec.Partition, "offset", rec.Offset, "err", err)
				return
			}
			dispatch(env)
		})
	}
}

// Close stops the feed.
func (f *Feed) Close() {
	f.cl.Close()
	<-f.done
}
