package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

// uniqueTopics returns topic names private to one test, created on the real
// broker and deleted when the test ends.
func uniqueTopics(t testing.TB, brokers []string) Topics {
	t.Helper()
	suffix := fmt.Sprintf("%s.%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", ".")), time.Now().UnixNano())
	tp := Topics{Events: "test.events." + suffix, Approvals: "test.approvals." + suffix, DLQ: "test.dlq." + suffix}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, cl, tp, 3, 1); err != nil {
		t.Fatal(err)
	}
	// Wait until every partition has a leader, so the first produce does
	// not spend its ack budget on a topic that is still being created.
	adm := kadm.NewClient(cl)
	for {
		md, err := adm.ListTopics(ctx, tp.Events, tp.Approvals, tp.DLQ)
		ready := err == nil && len(md) == 3
		for _, td := range md {
			if td.Err != nil || len(td.Partitions) != 3 {
				ready = false
			}
			for _, pd := range td.Partitions {
				if pd.Leader < 0 || pd.Err != nil {
					ready = false
				}
			}
		}
		if ready {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("topics %v have no leaders after 30s", tp)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		kadm.NewClient(cl).DeleteTopics(ctx, tp.Events, tp.Approvals, tp.DLQ)
	})
	return tp
}

// sortBySeq orders events per chain by seq: events of one chain travel on
// two topics, so consumption interleaves them arbitrarily.
func sortBySeq(evs []*events.Envelope) {
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i].Key().String(), evs[j].Key().String()
		if a != b {
			return a < b
		}
		return evs[i].Seq < evs[j].Seq
	})
}

func TestKafkaEveryEventType(t *testing.T) {
	brokers := testenv.Kafka(t)
	tp := uniqueTopics(t, brokers)
	ctx := context.Background()
	// The round trip of every type is under test, not the ack latency: a
	// broker just started, with the other packages' tests beside it, once
	// took longer than the 3 s default to acknowledge the first event (as
	// readback_test's producers, 10 s).
	p, err := NewProducer(ctx, brokers, "runner-it", WithTopics(tp), WithAckTimeout(10*time.Second),
		WithProducerLogger(testenv.Logger(t, slog.LevelDebug)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	sent := map[string]string{}
	for _, sid := range []string{"sess-a", "sess-b"} {
		for i, typ := range events.EventTypes {
			env := sampleEvent(t, typ, sid, i)
			if err := p.Emit(ctx, env); err != nil {
				t.Fatalf("Emit(%s): %v", typ, err)
			}
			sent[env.EventID] = typ
		}
	}
	got := consumeAll(t, brokers, len(sent), tp.Events, tp.Approvals)
	seen := map[string]bool{}
	for _, e := range got {
		if sent[e.EventID] != e.EventType {
			t.Errorf("event %s: got type %q, sent %q", e.EventID, e.EventType, sent[e.EventID])
		}
		if seen[e.EventID] {
			t.Errorf("event %s delivered twice", e.EventID)
		}
		seen[e.EventID] = true
		if _, err := e.DecodePayload(); err != nil {
			t.Errorf("payload of %s: %v", e.EventID, err)
		}
	}
	sortBySeq(got)
	if err := events.VerifyChain(got); err != nil {
		t.Fatalf("chain: %v", err)
	}
}

// TestFaultKafkaStopAndSpool stops the real broker mid-stream. Emit must fail
// fast with audit_unavailable, EmitAfter must spool, a second producer
// process must resume the spool of the first, and once the broker is back
// every event is in the topic exactly once and in order per session.
//
// Fault tests stop shared services, so `make test` runs them in a serial
// phase of their own (go test -run Fault -p 1).
func TestFaultKafkaStopAndSpool(t *testing.T) {
	brokers := testenv.Kafka(t)
	tp := uniqueTopics(t, brokers)
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *Producer {
		p, err := NewProducer(ctx, brokers, "runner-fault", WithTopics(tp), WithAckTimeout(2*time.Second),
			WithSpool(dir, 64<<20), WithProducerLogger(testenv.Logger(t, slog.LevelDebug)))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	var want []string // event ids that must arrive, in emit order
	emitOK := func(p *Producer, typ, sid string, i int) {
		env := sampleEvent(t, typ, sid, i)
		if err := p.Emit(ctx, env); err != nil {
			t.Fatalf("Emit with the broker up: %v", err)
		}
		want = append(want, env.EventID)
	}
	for i := 0; i < 20; i++ {
		emitOK(p, events.TypeToolCallRequested, fmt.Sprintf("s%d", i%2), i)
	}

	testenv.Stop(t, "kafka")
	restarted := false
	defer func() {
		if !restarted {
			testenv.Start(t, "kafka")
		}
	}()

	start := time.Now()
	denied := sampleEvent(t, events.TypeToolCallRequested, "s0", 100)
	if err := p.Emit(ctx, denied); !errors.Is(err, ErrAuditUnavailable) {
		t.Fatalf("Emit with the broker down = %v, want ErrAuditUnavailable", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("Emit took %v to fail with a 2s ack bound", d)
	}
	want = append(want, denied.EventID) // on its chain, so spooled too
	for i := 0; i < 30; i++ {
		env := sampleEvent(t, events.TypeToolCallCompleted, fmt.Sprintf("s%d", i%2), i)
		if err := p.EmitAfter(ctx, env); err != nil {
			t.Fatalf("EmitAfter with the broker down: %v", err)
		}
		want = append(want, env.EventID)
	}
	if p.Pending() != 31 {
		t.Fatalf("pending = %d, want 31", p.Pending())
	}
	// The process ends with the broker down: the spool stays on disk.
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	p.Close(cctx)
	cancel()

	testenv.Start(t, "kafka")
	restarted = true

	// A new process resumes the spool and drains it before its own events.
	// Its chains start afresh: a new runner process is a new emitter.
	p2, err := NewProducer(ctx, brokers, "runner-fault-2", WithTopics(tp), WithAckTimeout(5*time.Second),
		WithSpool(dir, 64<<20), WithProducerLogger(testenv.Logger(t, slog.LevelDebug)))
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close(ctx)
	deadline := time.Now().Add(60 * time.Second)
	for p2.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := p2.Pending(); n != 0 {
		t.Fatalf("spool still holds %d events a minute after the broker returned", n)
	}
	for i := 0; i < 5; i++ {
		emitOK(p2, events.TypeToolCallRequested, "s0", 200+i)
	}

	got := consumeAll(t, brokers, len(want), tp.Events, tp.Approvals)
	ids := make([]string, len(got))
	count := map[string]int{}
	for i, e := range got {
		ids[i] = e.EventID
		count[e.EventID]++
	}
	for _, id := range want {
		if count[id] != 1 {
			t.Errorf("event %s is in the topic %d times, want once", id, count[id])
		}
	}
	if len(got) != len(want) {
		t.Errorf("topic holds %d events, sent %d", len(got), len(want))
	}
	// Per chain, the topic order is the emit order.
	byChain := map[events.ChainKey][]*events.Envelope{}
	for _, e := range got {
		byChain[e.Key()] = append(byChain[e.Key()], e)
	}
	for k, evs := range byChain {
		if err := events.VerifyChain(evs); err != nil {
			t.Errorf("chain %s in topic order: %v", k, err)
		}
	}
	t.Logf("sent %d, in topic %d, chains %d", len(want), len(got), len(byChain))

	// Produced: what Kafka acknowledged, directly or from the spool (the
	// first producer closed with its spool still full).
	s1, s2 := p.Stats(), p2.Stats()
	acked := s1.Acked.Load() + s1.Drained.Load() + s2.Acked.Load() + s2.Drained.Load()
	if acked != int64(len(want)) {
		t.Errorf("Kafka acknowledged %d events, sent %d", acked, len(want))
	}
	var lost, dup int64
	for _, id := range want {
		if count[id] == 0 {
			lost++
		}
	}
	for _, n := range count {
		dup += int64(n - 1)
	}
	faultreport.Record(t, faultreport.Case{
		Name: "producer with the broker stopped: deny, spool, resume", Package: "internal/eventlog",
		Produced: acked, Stored: int64(len(count)), Lost: lost, Duplicated: dup,
		Detail: fmt.Sprintf("clean broker stop; Emit denied audit_unavailable, %d events spooled by a process that exited, replayed in order by the next; %d chains verified in topic order",
			s1.Spooled.Load(), len(byChain)),
	})
}
