package alertout

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/schemas"
)

// Alerts on the real events topic reach the outputs through a consumer
// group, other events and records that are not events are passed over,
// and the group's offsets move past what was delivered.
func TestIntegrationAlertsReachOutputs(t *testing.T) {
	brokers := testenv.Kafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := fmt.Sprintf("alertout-it-%d", time.Now().UnixNano())
	group := topic + "-group"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		adm.DeleteTopics(context.Background(), topic)
		adm.DeleteGroups(context.Background(), group)
	})
	alert, err := schemas.FS.ReadFile("examples/valid/alert.raised.json")
	if err != nil {
		t.Fatal(err)
	}
	other, err := schemas.FS.ReadFile("examples/valid/session.started.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{other, []byte(`{"not":"an event", "x":"alert.raised"}`), alert} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	r, url := serve(t, 503) // the first attempt fails
	d, err := NewDeliverer([]Output{{Format: FormatJSON, URL: url}, {Format: FormatAlertmanager, URL: url}},
		fastRetry(3), WithLogger(testenv.Logger(t, slog.LevelWarn)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := eventlog.NewConsumer(brokers, group, []string{topic}, eventlog.WithConsumerLogger(testenv.Logger(t, slog.LevelWarn)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx, d.Handler()) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if bodies, _, _ := r.got(); len(bodies) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outputs got %d bodies, want 2; stats %+v", r.calls.Load(), d.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.Close()

	bodies, paths, _ := r.got()
	var generic struct{ Alert Alert }
	for i, b := range bodies {
		if paths[i] == "/api/v2/alerts" {
			continue
		}
		if err := json.Unmarshal(b, &generic); err != nil {
			t.Fatal(err)
		}
	}
	env, err := events.Decode(alert)
	if err != nil {
		t.Fatal(err)
	}
	if generic.Alert.EventID != env.EventID || generic.Alert.RuleID == "" {
		t.Errorf("generic body %+v, want the example alert %s", generic.Alert, env.EventID)
	}
	st := d.Stats()
	if st["json"].Delivered+st["alertmanager"].Delivered != 2 || st["json"].Retries+st["alertmanager"].Retries != 1 {
		t.Errorf("stats %+v", st)
	}
	// Committed: the group has nothing left to read.
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := lags.Error(); err != nil {
		t.Fatal(err)
	}
	if n := lags[group].Lag.Total(); n != 0 {
		t.Errorf("group lag %d after delivery, want 0", n)
	}
}
