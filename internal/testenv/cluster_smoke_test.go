//go:build cluster

package testenv_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestIntegrationClusterKafka checks the three-node Kafka of testenv/up
// --cluster: a topic created with the brokers' defaults has three replicas
// all in sync and min.insync.replicas=2, and an idempotent acks=all
// producer is acknowledged.
func TestIntegrationClusterKafka(t *testing.T) {
	c := testenv.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Kafka...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 3 {
		t.Fatalf("%d brokers registered, want 3", len(brokers))
	}
	topic := "testenv.cluster." + strconv.FormatInt(time.Now().UnixNano(), 36)
	// -1: the brokers' default.replication.factor (3).
	if _, err := adm.CreateTopic(ctx, 3, -1, nil, topic); err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adm.DeleteTopic(ctx, topic)
	})
	var details kadm.TopicDetails
	for deadline := time.Now().Add(30 * time.Second); ; {
		details, err = adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		ok := len(details[topic].Partitions) == 3
		for _, p := range details[topic].Partitions {
			ok = ok && len(p.Replicas) == 3 && len(p.ISR) == 3
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s partitions not fully replicated within 30s: %+v", topic, details[topic].Partitions)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rc.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	var minISR string
	for _, kv := range cfg.Configs {
		if kv.Key == "min.insync.replicas" {
			minISR = kv.MaybeValue()
		}
	}
	if minISR != "2" {
		t.Errorf("min.insync.replicas of %s = %q, want 2", topic, minISR)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.Kafka...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 30 {
		r := &kgo.Record{Key: []byte("session-" + strconv.Itoa(i%5)), Value: []byte(strconv.Itoa(i))}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d with acks=all: %v", i, err)
		}
	}
}
