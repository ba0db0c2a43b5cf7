package approvals

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/agentaudit/agentaudit/internal/events"
)

// TestKafkaOutageLeavesNoGap: while the broker refuses every write, a
// decision is answered 503 and an overdue request expires; both are kept
// on the service's chain in its spool and written once the broker takes
// writes again. The service's chain on the topic is gapless, and the
// expiry is written once, not once per tick of the outage.
func TestKafkaOutageLeavesNoGap(t *testing.T) {
	h := newHarness(t, harnessConfig{spool: t.TempDir(), ack: time.Second})
	answered := h.raised("sess-outage")
	expiring := h.raised("sess-outage", func(p *events.ApprovalRequested) {
		p.ExpiresAt = events.At(time.Now().Add(1500 * time.Millisecond))
	})

	var down atomic.Bool
	h.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		h.cluster.KeepControl()
		if down.Load() {
			return nil, errors.New("broker unavailable (test outage)"), true
		}
		return nil, nil, false
	})
	down.Store(true)
	status, body := h.call(http.MethodPost, "/api/v1/requests/"+answered+"/decision", "alice", map[string]any{"decision": "approve"}, nil)
	if status != http.StatusServiceUnavailable || errCode(body) != codeUnavailable {
		t.Fatalf("decision during the outage: %d %s, want 503 audit_unavailable", status, body)
	}
	// The expiry comes due during the outage and the loop ticks every
	// 20 ms: many chances to write it twice.
	waitFor(t, 10*time.Second, "expiry spooled", func() bool {
		r, _ := h.svc.State().Get(expiring)
		return r.Status == StatusExpired && h.svcProd.Pending() >= 2
	})
	time.Sleep(500 * time.Millisecond)
	down.Store(false)

	waitFor(t, 20*time.Second, "spool drained and folded", func() bool {
		a, _ := h.svc.State().Get(answered)
		e, _ := h.svc.State().Get(expiring)
		return h.svcProd.Pending() == 0 && a.Status == StatusApproved && e.Final != nil
	})

	// Read the service's chain back from the topic.
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(h.topics.Approvals),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var mine []*events.Envelope
	expiries := 0
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			env, err := events.Decode(r.Value)
			if err != nil {
				t.Errorf("undecodable record: %v", err)
				return
			}
			if env.RunnerID == h.svcProd.RunnerID() {
				mine = append(mine, env)
				if env.ApprovalID == expiring && env.EventType == events.TypeApprovalDecided {
					expiries++
				}
			}
		})
		if len(mine) >= 2 && h.svcProd.Pending() == 0 {
			// Everything the service wrote is acknowledged, so it is all
			// on the topic: one more poll picks up any stragglers.
			fs := cl.PollRecords(ctx, 1000)
			if fs.NumRecords() == 0 || ctx.Err() != nil {
				break
			}
		}
	}
	if expiries != 1 {
		t.Errorf("%d expiry decisions for %s, want 1", expiries, expiring)
	}
	// One session, one chain: seq 1..n and each prev_hash the hash before.
	prev := events.GenesisHash
	for i, e := range mine {
		if e.Seq != uint64(i+1) || e.PrevHash != prev {
			t.Fatalf("chain gap at event %d: seq %d prev_hash %q, want seq %d prev_hash %q", i, e.Seq, e.PrevHash, i+1, prev)
		}
		prev = e.Hash
	}
	if len(mine) != 2 {
		t.Errorf("the service wrote %d events, want 2 (the decision and the expiry)", len(mine))
	}
}
