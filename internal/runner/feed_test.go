package runner

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestListEndsWaitsForANewTopic: the approvals feed starts right after
// runner serve created its topics, when the broker may not know them
// yet; listEnds waits for the topic instead of failing the start-up.
func TestListEndsWaitsForANewTopic(t *testing.T) {
	brokers := testenv.Kafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := "test.approvals.ends." + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() { adm.DeleteTopics(context.Background(), topic) })

	created := make(chan error, 1)
	time.AfterFunc(500*time.Millisecond, func() {
		_, err := adm.CreateTopic(ctx, 3, 1, nil, topic)
		created <- err
	})
	ends, err := listEnds(ctx, adm, topic)
	if err != nil {
		t.Fatalf("listEnds of a topic created 500ms later: %v", err)
	}
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	if n := len(ends[topic]); n != 3 {
		t.Errorf("end offsets of %d partitions, want 3", n)
	}
}
