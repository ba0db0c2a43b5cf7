package detect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// svcEnv is one test's private set of topics on the real broker.
type svcEnv struct {
	t       testing.TB
	brokers []string
	name    string
	topics  eventlog.Topics
	prod    *kgo.Client
}

func newSvcEnv(t testing.TB) *svcEnv { return newSvcEnvParts(t, 3) }

// newSvcEnvParts is newSvcEnv with parts partitions per topic.
func newSvcEnvParts(t testing.TB, parts int32) *svcEnv {
	t.Helper()
	brokers := testenv.Kafka(t)
	var b [4]byte
	rand.Read(b[:])
	name := fmt.Sprintf("test.detect.%s.%s", strings.ToLower(strings.NewReplacer("/", ".", "_", "-").Replace(t.Name())), hex.EncodeToString(b[:]))
	if len(name) > 200 {
		name = name[:200]
	}
	e := &svcEnv{t: t, brokers: brokers, name: name,
		topics: eventlog.Topics{Events: name + ".events", Approvals: name + ".approvals", DLQ: name + ".dlq"}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	// Every topic the test and its services created starts with name;
	// left behind, thousands of them slow every later broker restart.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adm := kadm.NewClient(cl)
		tds, err := adm.ListTopics(ctx)
		if err != nil {
			t.Logf("cleanup: list topics: %v", err)
			return
		}
		var mine []string
		for _, topic := range tds.Names() {
			if strings.HasPrefix(topic, name+".") {
				mine = append(mine, topic)
			}
		}
		if _, err := adm.DeleteTopics(ctx, mine...); err != nil {
			t.Logf("cleanup: delete topics: %v", err)
		}
	})
	e.prod = cl
	if err := eventlog.EnsureTopics(context.Background(), cl, e.topics, parts, 1); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *svcEnv) config(group, id string) Config {
	return Config{
		Brokers: e.brokers, Group: e.name + "." + group, RulesDir: "../../rules", RunnerID: id,
		Topics: e.topics, StateTopic: e.name + ".state", RepartitionTopic: e.name + ".repartition",
		RepartitionPartitions: 3, CreateTopics: true, Partitions: 3, MetricsAddr: "127.0.0.1:0",
		Logger: testenv.Logger(e.t, slog.LevelInfo),
	}
}

// running is a service in a goroutine.
type running struct {
	*Service
	cancel context.CancelFunc
	done   chan error
}

func startService(t testing.TB, cfg Config, opts ...ServiceOption) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := NewService(ctx, cfg, opts...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &running{Service: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the service down cleanly (checkpoint, leave the group).
func (r *running) stop(t testing.TB) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("service %s: %v", r.RunnerID(), err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("service %s did not stop", r.RunnerID())
	}
}

// crash stops the service as if the process died: nothing it does from
// now on becomes durable.
func (r *running) crash(t testing.TB) {
	r.halted.Store(true)
	r.stop(t)
}

func (r *running) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-r.Ready():
	case <-time.After(60 * time.Second):
		t.Fatalf("service %s was assigned no partitions", r.RunnerID())
	}
}

// waitMatches waits until the service's engines matched rule n times.
func waitMatches(t testing.TB, svcs []*running, rule string, n uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got uint64
		for _, s := range svcs {
			got += s.RuleStats()[rule].Matches
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rule %s matched %d times, want %d", rule, got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *svcEnv) produce(evs ...*events.Envelope) {
	e.t.Helper()
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		b, err := events.Marshal(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		topic, key := e.topics.TopicFor(ev)
		recs[i] = &kgo.Record{Topic: topic, Key: key, Value: b}
	}
	if err := e.prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// read returns the events of topic that keep returns true for, once want
// of them arrived and nothing more came for settle (so duplicates show).
func (e *svcEnv) read(topic string, keep func(*events.Envelope) bool, want int, settle time.Duration) []*events.Envelope {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []*events.Envelope
	deadline := time.Now().Add(90 * time.Second)
	quietUntil := time.Time{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			env, err := events.Decode(r.Value)
			if err != nil {
				e.t.Errorf("%s offset %d does not decode: %v", topic, r.Offset, err)
				return
			}
			if keep(env) {
				out = append(out, env)
				quietUntil = time.Now().Add(settle)
			}
		})
		if len(out) >= want && time.Now().After(quietUntil) {
			return out
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %d matching events, want %d", topic, len(out), want)
		}
	}
}

func ofType(ts ...string) func(*events.Envelope) bool {
	return func(e *events.Envelope) bool { return slices.Contains(ts, e.EventType) }
}

func alertOf(t testing.TB, env *events.Envelope) *events.AlertRaised {
	t.Helper()
	p, err := env.DecodePayload()
	if err != nil {
		t.Fatal(err)
	}
	return p.(*events.AlertRaised)
}

// alertKey is what must agree between runs: which rule fired for which
// group over which events.
type alertKey struct {
	Rule    string
	Group   string
	Count   uint64
	Session string
	IDs     string
}

func alertKeys(t testing.TB, envs []*events.Envelope) []alertKey {
	var out []alertKey
	for _, env := range envs {
		a := alertOf(t, env)
		out = append(out, alertKey{a.RuleID, a.GroupKey, a.Count, env.SessionID, strings.Join(a.MatchedEventIDs, ",")})
	}
	slices.SortFunc(out, func(a, b alertKey) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out
}

// scenario is a mix that fires session-keyed rules (a window, a sequence
// with a hold, a request for approval) and rules keyed by approver and by
// approval, whose events spread over partitions.
func scenario(t testing.TB) []*events.Envelope {
	s := newStream(t)
	t0 := DefaultTestStart
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var evs []*events.Envelope
	for i := range 5 {
		evs = append(evs, s.ev(egress(fmt.Sprintf("h%d.example", i), events.DecisionDeny, events.ReasonDefaultDeny), at(time.Duration(i)*20*time.Second), "sess-deny"))
	}
	evs = append(evs,
		s.ev(readFile("/home/dev/.ssh/id_rsa"), at(10*time.Second), "sess-exfil"),
		s.ev(egress("transfer.sh", events.DecisionDeny, events.ReasonDefaultDeny), at(40*time.Second), "sess-exfil"),
		s.ev(events.ToolCallRequested{ToolName: "edit_file", Arguments: events.ToolArguments{Path: "/workspace/.claude/settings.json"}, ArgumentsSHA256: sha256Hex("x")}, at(50*time.Second), "sess-tamper"),
	)
	// Ten approvals by alice in ten sessions: each approval id goes to its
	// own partition of the approvals topic; only re-keying by approver
	// brings them together.
	for i := range 10 {
		id := fmt.Sprint(7_100_000_000_000_000_100 + i)
		evs = append(evs, s.ev(approved("alice"), at(time.Duration(60+i*20)*time.Second), fmt.Sprintf("sess-ap%d", i), events.WithApproval(id)))
	}
	// A request answered after one second.
	req := events.ApprovalRequested{Kind: events.ApprovalKindToolCall, Summary: "run deploy", Reason: "policy asks", ReasonCode: events.ReasonNeedsApproval,
		Risk: events.RiskHigh, Requester: events.Actor{Type: events.ActorAgent, ID: "claude-code"}, Scopes: []events.ApprovalScope{events.ScopeOnce},
		ExpiresAt: events.At(at(20 * time.Minute))}
	evs = append(evs,
		s.ev(req, at(5*time.Minute), "sess-fast", events.WithApproval("7100000000000000200")),
		s.ev(approved("bob"), at(5*time.Minute+time.Second), "sess-fast", events.WithApproval("7100000000000000200")),
	)
	return evs
}

func TestServiceEndToEnd(t *testing.T) {
	e := newSvcEnv(t)
	svc := startService(t, e.config("g", "detect-e2e"))
	svc.waitReady(t)
	e.produce(scenario(t)...)

	alerts := e.read(e.topics.Events, ofType(events.TypeAlertRaised), 5, 3*time.Second)
	byRule := map[string]*events.Envelope{}
	for _, env := range alerts {
		a := alertOf(t, env)
		if byRule[a.RuleID] != nil {
			t.Errorf("rule %s fired twice", a.RuleID)
		}
		byRule[a.RuleID] = env
		if env.RunnerID != "detect-e2e" || env.Actor.Type != events.ActorRule || env.Actor.ID != a.RuleID {
			t.Errorf("alert %s: runner %q actor %+v", a.RuleID, env.RunnerID, env.Actor)
		}
	}
	got := slices.Sorted(func(yield func(string) bool) {
		for k := range byRule {
			if !yield(k) {
				return
			}
		}
	})
	want := []string{"approvals.fatigue", "approvals.rubber_stamp", "credential.read_then_egress", "defense_evasion.policy_tamper", "egress.repeated_denials"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("rules that fired (-want +got):\n%s", d)
	}
	if a := alertOf(t, byRule["approvals.fatigue"]); a.GroupKey != "alice" || a.Count != 10 {
		t.Errorf("fatigue alert: group %q count %d, want alice 10", a.GroupKey, a.Count)
	}
	if a := alertOf(t, byRule["egress.repeated_denials"]); a.Count != 5 || len(a.MatchedEventIDs) != 5 || byRule["egress.repeated_denials"].SessionID != "sess-deny" {
		t.Errorf("denials alert: %+v", a)
	}

	// The hold and the approval request follow on the approvals topic and
	// name the alert that caused them.
	acts := e.read(e.topics.Approvals, func(env *events.Envelope) bool {
		return env.EventType == events.TypeSessionHeld || (env.EventType == events.TypeApprovalRequested && env.Actor.Type == events.ActorRule)
	}, 2, 2*time.Second)
	if len(acts) != 2 {
		t.Fatalf("got %d hold/approval events, want 2", len(acts))
	}
	for _, env := range acts {
		p, _ := env.DecodePayload()
		switch p := p.(type) {
		case *events.SessionHeld:
			if env.SessionID != "sess-exfil" || p.AlertEventID != byRule["credential.read_then_egress"].EventID || p.RuleID != "credential.read_then_egress" {
				t.Errorf("session.held %+v in %s", p, env.SessionID)
			}
		case *events.ApprovalRequested:
			if env.SessionID != "sess-tamper" || p.RequestEventID != byRule["defense_evasion.policy_tamper"].EventID || p.Kind != events.ApprovalKindSessionHold || env.ApprovalID == "" {
				t.Errorf("approval.requested %+v in %s (approval %q)", p, env.SessionID, env.ApprovalID)
			}
		}
		if env.RunnerID != "detect-e2e-hold" {
			t.Errorf("%s written by %q", env.EventType, env.RunnerID)
		}
	}

	// Metrics per rule and health.
	body := httpGet(t, "http://"+svc.MetricsAddr()+"/metrics")
	for _, line := range []string{
		`detect_rule_alerts_total{rule="egress.repeated_denials"} 1`,
		`detect_rule_matches_total{rule="egress.repeated_denials"} 6`, // five in sess-deny, one in sess-exfil
		`detect_rule_alerts_total{rule="approvals.fatigue"} 1`,
		`detect_emitted_total{event_type="session.held",rule="credential.read_then_egress"} 1`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	for _, name := range []string{"detect_rule_evaluations_total", "detect_rule_suppressed_total", "detect_rule_errors_total", "detect_rule_evaluation_seconds_total"} {
		if !strings.Contains(body, name+`{rule="integrity.chain_anomaly"}`) {
			t.Errorf("metrics lack %s for every rule", name)
		}
	}
	if h := httpGet(t, "http://"+svc.MetricsAddr()+"/healthz"); h != "ok\n" {
		t.Errorf("healthz = %q", h)
	}
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// TestServiceRestartMidWindow stops the service while a window is open
// (three of five denials seen) in three ways: a clean stop, a crash before
// anything was checkpointed, and a crash after the alert was decided. In
// every case exactly one alert comes out.
func TestServiceRestartMidWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		// crashAt: "" stops cleanly after three denials; "before" crashes
		// after three denials with no checkpoint written; "written"
		// crashes right after the alert was written, before anything
		// recorded that; "unwritten" crashes after the alert was decided
		// and checkpointed but before it was written.
		crashAt string
	}{
		{name: "clean stop"},
		{name: "crash before checkpoint", crashAt: "before"},
		{name: "crash after the alert was written", crashAt: "written"},
		{name: "crash before the alert was written", crashAt: "unwritten"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSvcEnv(t)
			evs := scenario(t)[:5] // five denials in sess-deny
			cfg := e.config("g", "detect-1")
			cfg.CheckpointEvery = time.Hour // only alerts and shutdown checkpoint
			var opts []ServiceOption
			var first *running
			var crashEmitter *crashingEmitter
			if tc.crashAt == "written" || tc.crashAt == "unwritten" {
				p, err := eventlog.NewProducer(context.Background(), e.brokers, cfg.RunnerID, eventlog.WithTopics(e.topics))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close(context.Background()) })
				crashEmitter = &crashingEmitter{next: p, write: tc.crashAt == "written", crashed: make(chan struct{})}
				opts = append(opts, WithEmitter(crashEmitter))
			}
			first = startService(t, cfg, opts...)
			if crashEmitter != nil {
				crashEmitter.svc = first
			}
			first.waitReady(t)
			switch tc.crashAt {
			case "", "before":
				e.produce(evs[:3]...)
				waitMatches(t, []*running{first}, "egress.repeated_denials", 3)
				if tc.crashAt == "" {
					first.stop(t)
				} else {
					first.crash(t)
				}
				second := startService(t, e.config("g", "detect-2"))
				second.waitReady(t)
				e.produce(evs[3:]...)
			default:
				e.produce(evs...)
				select {
				case <-crashEmitter.crashed:
				case <-time.After(60 * time.Second):
					t.Fatal("the alert never reached the emitter")
				}
				first.stop(t)
				second := startService(t, e.config("g", "detect-2"))
				second.waitReady(t)
				// The checkpoint had the alert in its outbox: the second
				// instance looks for it on the topic before writing it.
				// It also replays the five denials (no full checkpoint was
				// written) and does not raise their alert again.
				outcome := map[string]string{"written": "already_written", "unwritten": "written_now"}[tc.crashAt]
				for _, want := range []string{`detect_outbox_recovered_total{outcome="` + outcome + `"} 1`, `detect_outbox_recovered_total{outcome="replayed"} 1`} {
					deadline := time.Now().Add(30 * time.Second)
					for !strings.Contains(httpGet(t, "http://"+second.MetricsAddr()+"/metrics"), want+"\n") {
						if time.Now().After(deadline) {
							t.Fatalf("metrics lack %s", want)
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
			alerts := e.read(e.topics.Events, ofType(events.TypeAlertRaised), 1, 5*time.Second)
			if len(alerts) != 1 {
				t.Fatalf("got %d alerts, want exactly 1: %v", len(alerts), alertKeys(t, alerts))
			}
			a := alertOf(t, alerts[0])
			var ids []string
			for _, ev := range evs {
				ids = append(ids, ev.EventID)
			}
			if a.RuleID != "egress.repeated_denials" || !slices.Equal(a.MatchedEventIDs, ids) {
				t.Errorf("alert %s over %v, want egress.repeated_denials over %v", a.RuleID, a.MatchedEventIDs, ids)
			}
		})
	}
}

// crashingEmitter crashes the service at the first alert, after writing it
// (write) or before.
type crashingEmitter struct {
	next    Emitter
	write   bool
	svc     *running
	once    sync.Once
	crashed chan struct{}
}

func (c *crashingEmitter) Emit(ctx context.Context, e *events.Envelope) error {
	var err error = errHalted
	c.once.Do(func() {
		if c.write {
			err = c.next.Emit(ctx, e)
		}
		c.svc.halted.Store(true)
		close(c.crashed)
	})
	if err == nil {
		return errHalted // written, but the process "died" before it knew
	}
	return err
}

// TestServiceTwoInstances runs the scenario through two instances sharing
// the partitions and through a single instance (another group on the same
// topics): the alerts must be the same.
func TestServiceTwoInstances(t *testing.T) {
	e := newSvcEnv(t)
	a1 := startService(t, e.config("pair", "detect-a1"))
	a2 := startService(t, e.config("pair", "detect-a2"))
	a1.waitReady(t)
	a2.waitReady(t)
	waitBalanced(t, a1, a2)
	solo := startService(t, e.config("solo", "detect-solo"))
	solo.waitReady(t)

	evs := scenario(t)
	e.produce(evs...)
	all := e.read(e.topics.Events, ofType(events.TypeAlertRaised), 10, 5*time.Second)
	var pair, single []*events.Envelope
	for _, env := range all {
		switch env.RunnerID {
		case "detect-a1", "detect-a2":
			pair = append(pair, env)
		case "detect-solo":
			single = append(single, env)
		default:
			t.Errorf("alert from %q", env.RunnerID)
		}
	}
	if d := cmp.Diff(alertKeys(t, single), alertKeys(t, pair)); d != "" {
		t.Errorf("two instances disagree with one (-one +two):\n%s", d)
	}
	if len(single) != 5 {
		t.Errorf("single instance raised %d alerts, want 5", len(single))
	}
	for _, s := range []*running{a1, a2} {
		var evals uint64
		for _, st := range s.RuleStats() {
			evals += st.Evaluations
		}
		if evals == 0 {
			t.Errorf("%s evaluated nothing: the pair did not share the work", s.RunnerID())
		}
	}
}

// waitBalanced waits until both services hold partitions.
func waitBalanced(t testing.TB, a, b *running) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		na := len(a.tasks)
		a.mu.Unlock()
		b.mu.Lock()
		nb := len(b.tasks)
		b.mu.Unlock()
		if na > 0 && nb > 0 && na+nb == 9 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the two services never shared the 9 partitions")
}

// Missing topics get the brokers' default replication factor unless one
// is set; a factor Kafka cannot mean is refused by name.
func TestConfigTopicReplication(t *testing.T) {
	cases := []struct {
		in, want int16
		ok       bool
	}{
		{0, -1, true},
		{-1, -1, true},
		{3, 3, true},
		{-2, 0, false},
	}
	for _, tc := range cases {
		c := Config{Brokers: []string{"127.0.0.1:9092"}, RulesDir: "rules", Replication: tc.in}
		err := c.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("Replication %d: Validate = %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			if !strings.Contains(err.Error(), "Replication") {
				t.Errorf("Replication %d: error %q does not name the field", tc.in, err)
			}
			continue
		}
		if c.Replication != tc.want {
			t.Errorf("Replication %d: validated to %d, want %d", tc.in, c.Replication, tc.want)
		}
	}
}
