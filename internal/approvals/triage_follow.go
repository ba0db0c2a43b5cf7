package approvals

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
)

// FollowTriage folds the triage events of the approvals topic into st,
// from the start of the topic and then as they come, until ctx ends. It
// reads every partition without a consumer group, so each detector
// instance knows every suppression whichever partitions its group gives
// it. Undecodable records and refused events are logged and skipped (st
// counts the refused). ready, when not nil, is closed once the fold has
// read the topic up to where it ended at start.
func FollowTriage(ctx context.Context, brokers []string, topic string, st *TriageState, log *slog.Logger, ready chan<- struct{}, opts ...kgo.Opt) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.ClientID("agentaudit-triage-follow"),
	}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	target, err := endOffsets(ctx, cl, topic)
	if err != nil {
		return err
	}
	pos := map[int32]int64{}
	signal := func() {
		if ready == nil {
			return
		}
		for p, end := range target {
			if pos[p] < end {
				return
			}
		}
		close(ready)
		ready = nil
	}
	signal()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			log.Warn("approvals topic fetch error", "topic", t, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			if !hasType(r.Value, triageTypes) {
				return
			}
			env, err := events.Decode(r.Value)
			if err != nil {
				log.Warn("undecodable record on the approvals topic", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			if ch := st.Apply(env); ch.Kind == ChangeRejected {
				log.Warn("triage event refused", "event_id", env.EventID, "event_type", env.EventType, "rejection", ch.Rejection)
			}
		})
		signal()
	}
}

// triageTypes lets FollowTriage skip the other events of the topic
// before decoding them (events are canonical JSON).
var triageTypes = [][]byte{
	[]byte(`"event_type":"` + events.TypeAlertTriaged + `"`),
	[]byte(`"event_type":"` + events.TypeRuleSuppressed + `"`),
	[]byte(`"event_type":"` + events.TypeRuleUnsuppressed + `"`),
}
