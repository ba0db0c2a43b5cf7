package testenv_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestKafkaSmoke checks that the broker testenv/up starts does what the
// pipeline relies on: kadm creates and deletes topics, an idempotent
// acks=all producer is acknowledged, and a consumer group reads every record
// back in per-key order and commits its offsets.
func TestKafkaSmoke(t *testing.T) {
	brokers := testenv.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic := "testenv.smoke." + suffix
	group := "testenv-smoke-" + suffix
	const partitions, perKey = 3, 20
	keys := []string{"session-a", "session-b", "session-c", "session-d"}

	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	// Cleanups run last-in first-out: close the admin client after the
	// cleanup below has deleted the group and topic with it.
	t.Cleanup(admCl.Close)
	adm := kadm.NewClient(admCl)

	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteGroup(ctx, group); err != nil {
			t.Errorf("delete group %s: %v", group, err)
		}
		if _, err := adm.DeleteTopic(ctx, topic); err != nil {
			t.Errorf("delete topic %s: %v", topic, err)
		}
	})

	// Produce: acks=all and idempotence are what audit-before-act needs.
	prod, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DefaultProduceTopic(topic),
		kgo.WithLogger(kgo.BasicLogger(testenv.Writer{T: t}, kgo.LogLevelWarn, nil)),
	)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer prod.Close()

	want := map[string][]string{} // key -> values in produce order
	var recs []*kgo.Record
	for i := 0; i < perKey; i++ {
		for _, k := range keys {
			v := fmt.Sprintf("%s/%03d", k, i)
			want[k] = append(want[k], v)
			recs = append(recs, &kgo.Record{Key: []byte(k), Value: []byte(v)})
		}
	}
	total := len(recs)
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", total, err)
	}
	pid, _, err := prod.ProducerID(ctx)
	if err != nil {
		t.Fatalf("producer id: %v", err)
	}
	if pid < 0 {
		t.Fatalf("producer id = %d; want an idempotent producer (id >= 0)", pid)
	}

	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	var stored int64
	ends.Each(func(o kadm.ListedOffset) { stored += o.Offset })
	if stored != int64(total) {
		t.Fatalf("broker holds %d records; want %d (one write per record, no duplicates)", stored, total)
	}

	// Consume with a real group and manual commits.
	cons, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.WithLogger(kgo.BasicLogger(testenv.Writer{T: t}, kgo.LogLevelWarn, nil)),
	)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer cons.Close()

	got := map[string][]string{}
	partOf := map[string]int32{}
	n := 0
	for n < total {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before the deadline: %v", n, total, err)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch %s[%d]: %v", topic, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			k := string(r.Key)
			if p, seen := partOf[k]; seen && p != r.Partition {
				t.Errorf("key %s in partitions %d and %d; want one partition per key", k, p, r.Partition)
			}
			partOf[k] = r.Partition
			got[k] = append(got[k], string(r.Value))
			n++
		})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("consumed records, per key in order (-want +got):\n%s", diff)
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}

	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	if err := committed.Error(); err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	wantCommitted := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { wantCommitted[o.Partition] = o.Offset })
	gotCommitted := map[int32]int64{}
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			gotCommitted[o.Partition] = o.At
		}
	})
	if diff := cmp.Diff(wantCommitted, gotCommitted); diff != "" {
		t.Errorf("committed offsets per partition (-end offsets +committed):\n%s", diff)
	}
	// Leave before the cleanup deletes the group: a group with members
	// cannot be deleted.
	cons.Close()
}
