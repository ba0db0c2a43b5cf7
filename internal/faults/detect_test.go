package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
)

// windowRule is the repository's window rule the case exercises: five
// egress denials in one session within five minutes raise one alert.
const windowRule = "egress.repeated_denials"

// TestFaultDetectRestartInWindow runs `detect run` with the repository's
// rules and restarts it while windows are open (sessions with three of
// their five denials seen) and while alerts of full windows are being
// decided and written. Once the windows complete under the new process,
// every session that reached five denials has exactly one alert over its
// five events, and the sessions that stayed under five have none.
func TestFaultDetectRestartInWindow(t *testing.T) {
	for _, sig := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(sig, func(t *testing.T) { detectRestart(t, sig) })
	}
}

func detectRestart(t *testing.T, sig string) {
	record := caseRow(t, "detect restarted inside open windows ("+sig+")")
	e := newTopicsEnv(t)
	state, repart := e.topics.Events+".state", e.topics.Events+".repartition"
	t.Cleanup(func() { deleteTopics(e.brokers, state, repart) })
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	group := "test-faults-detect-" + suffix()
	run := func(n int) (*proc, string) {
		addr := freeAddr(t)
		args := []string{"run", "-brokers", strings.Join(e.brokers, ","), "-group", group,
			"-rules", filepath.Join(root, "rules"), "-id", fmt.Sprintf("detect-fault-%d-%s", n, suffix()),
			"-events-topic", e.topics.Events, "-approvals-topic", e.topics.Approvals,
			"-state-topic", state, "-repartition-topic", repart, "-create-topics=true", "-start-at", "earliest",
			"-metrics", addr, "-checkpoint-every", "1s", "-clickhouse-addr", "", "-log-level", "warn"}
		return start(t, "detect", binary(t, "detect"), args, nil), addr
	}

	p, err := eventlog.NewProducer(context.Background(), e.brokers, "fault-egress-"+suffix(), eventlog.WithTopics(e.topics))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	ids, err := events.NewIDGen(400)
	if err != nil {
		t.Fatal(err)
	}
	// open: windows left open across the restart (3 denials, then 2);
	// full: all five before the restart, so their alerts are decided and
	// written around it; short: four denials, never an alert.
	const open, full, short = 8, 8, 4
	type session struct {
		id         string
		before     int
		total      int
		denials    []string
		wantsAlert bool
	}
	var sessions []*session
	add := func(kind string, n, before, total int) {
		for i := range n {
			sessions = append(sessions, &session{id: fmt.Sprintf("sess-%s-%s-%d", kind, strings.ToLower(sig), i), before: before, total: total, wantsAlert: total >= 5})
		}
	}
	add("open", open, 3, 5)
	add("full", full, 5, 5)
	add("short", short, 2, 4)
	produced := 0
	deny := func(s *session) {
		env, err := events.New(events.NetEgress{Phase: "decision", Host: "exfil.example", Port: 443, Decision: events.DecisionDeny, ReasonCode: events.ReasonDefaultDeny},
			events.WithIDs(ids), events.WithTenant("acme"), events.WithSession(s.id, ""), events.WithActor(events.ActorAgent, "fault-agent"), events.WithAgent("fault-agent", "1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Emit(context.Background(), env); err != nil {
			t.Fatalf("emit denial: %v", err)
		}
		s.denials = append(s.denials, env.EventID)
		produced++
	}

	first, addr := run(1)
	wantMatches := 0
	for _, s := range sessions {
		for range s.before {
			deny(s)
		}
		wantMatches += s.before
	}
	waitMetric(t, addr, `detect_rule_matches_total{rule="`+windowRule+`"}`, wantMatches, 90*time.Second)
	var how string
	switch sig {
	case "SIGTERM":
		how = "SIGTERM (clean checkpoint)"
		before := alertCount(httpBody("http://" + addr + "/metrics"))
		first.term(t, 60*time.Second)
		how += ", " + before + " alerts raised before"
	default:
		// A random moment while the full windows' alerts are decided,
		// checkpointed and written (checkpoints every second).
		d := time.Duration(rand.IntN(1500)) * time.Millisecond
		time.Sleep(d)
		before := alertCount(httpBody("http://" + addr + "/metrics"))
		first.kill(t)
		how = fmt.Sprintf("SIGKILL %dms after the matches were counted, %s alerts raised before", d.Milliseconds(), before)
	}

	second, _ := run(2)
	for _, s := range sessions {
		for range s.total - s.before {
			deny(s)
		}
	}
	wantAlerts := 0
	for _, s := range sessions {
		if s.wantsAlert {
			wantAlerts++
		}
	}
	alerts := readAlerts(t, e.brokers, e.topics.Events, wantAlerts, 5*time.Second, 120*time.Second)
	second.term(t, 60*time.Second)

	bySession := map[string][]*events.AlertRaised{}
	var unexpected int64
	for _, a := range alerts {
		if a.p.RuleID != windowRule {
			t.Errorf("unexpected alert %s in %s", a.p.RuleID, a.session)
			unexpected++
			continue
		}
		bySession[a.session] = append(bySession[a.session], a.p)
	}
	var lost, dup, stored int64
	for _, s := range sessions {
		got := bySession[s.id]
		delete(bySession, s.id)
		switch {
		case !s.wantsAlert && len(got) > 0:
			t.Errorf("%s: %d alerts after %d denials, want none", s.id, len(got), s.total)
			unexpected += int64(len(got))
		case s.wantsAlert && len(got) == 0:
			t.Errorf("%s: no alert after %d denials", s.id, s.total)
			lost++
		case s.wantsAlert:
			stored++
			dup += int64(len(got) - 1)
			if len(got) > 1 {
				t.Errorf("%s: %d alerts, want 1", s.id, len(got))
			}
			if !slices.Equal(got[0].MatchedEventIDs, s.denials) || got[0].Count != 5 {
				t.Errorf("%s: alert counts %d over %v, want 5 over %v", s.id, got[0].Count, got[0].MatchedEventIDs, s.denials)
			}
		}
	}
	for sid, got := range bySession {
		t.Errorf("alerts for unknown session %s: %d", sid, len(got))
		unexpected += int64(len(got))
	}
	if unexpected != 0 {
		t.Errorf("%d unexpected alerts", unexpected)
	}
	record(faultreport.Case{
		Produced: int64(wantAlerts), Stored: stored, Lost: lost, Duplicated: dup,
		Detail: fmt.Sprintf("produced/stored count alerts due/raised; %d denials in %d sessions (%d windows open at 3/5, %d full, %d at 4/5, never due); restart by %s; %d unexpected alerts",
			produced, len(sessions), open, full, short, how, unexpected),
	})
}

func deleteTopics(brokers []string, topics ...string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kadm.NewClient(cl).DeleteTopics(ctx, topics...)
}

// waitMetric waits until the series at addr reaches at least want.
func waitMetric(t testing.TB, addr, series string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var v float64
	for time.Now().Before(deadline) {
		v, _ = strconv.ParseFloat(metric(httpBody("http://"+addr+"/metrics"), series), 64)
		if v >= float64(want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s = %v after %s, want %d", series, v, timeout, want)
}

func alertCount(body string) string {
	if v := metric(body, `detect_rule_alerts_total{rule="`+windowRule+`"}`); v != "" {
		return v
	}
	return "?"
}

type alert struct {
	session string
	p       *events.AlertRaised
}

// readAlerts reads alert.raised events from topic until want arrived and
// nothing more came for settle (so duplicates show), or timeout.
func readAlerts(t testing.TB, brokers []string, topic string, want int, settle, timeout time.Duration) []alert {
	t.Helper()
	var out []alert
	for _, env := range readEnvelopes(t, brokers, topic, events.TypeAlertRaised, want, settle, timeout) {
		p, err := env.DecodePayload()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, alert{env.SessionID, p.(*events.AlertRaised)})
	}
	return out
}

// TestFaultDetectKillOneOfTwo runs two `detect run` processes as static
// members of one group on six-partition topics and SIGKILLs one of them
// mid-stream, while windows and sequences are open on every partition and
// alerts are being decided and written. Either the survivor takes the
// dead one's partitions once its session times out, or the dead one is
// restarted with its instance id and resumes at once. Either way every
// alert due (local window and sequence rules, and a rule re-keyed through
// the repartition topic) is on the events topic exactly once: the count
// is of raw records, not deduplicated by event id.
func TestFaultDetectKillOneOfTwo(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "survivor takes over"
		if restart {
			name = "restarted with its instance id"
		}
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) { detectKillOneOfTwo(t, name, restart) })
	}
}

func detectKillOneOfTwo(t *testing.T, name string, restart bool) {
	record := caseRow(t, "one of two detectors SIGKILLed, "+name)
	began := time.Now()
	awaitServices(t)
	brokers := testenv.Kafka(t)
	const parts = 6
	base := "test.faults.detect2." + strings.ReplaceAll(name, " ", "-") + "." + suffix()
	topics := eventlog.Topics{Events: base + ".events", Approvals: base + ".approvals", DLQ: base + ".dlq"}
	state, repart := base+".state", base+".repartition"
	t.Cleanup(func() { deleteTopics(brokers, topics.Events, topics.Approvals, topics.DLQ, state, repart) })
	{
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err = eventlog.EnsureTopics(ctx, cl, topics, parts, 1)
		cancel()
		cl.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	// Events are stamped with the wall clock: the rule on the hour of day
	// would fire or not by when the case runs.
	overrides := filepath.Join(t.TempDir(), "overrides.yaml")
	if err := os.WriteFile(overrides, []byte("overrides:\n  - rule: activity.unusual_hours\n    enabled: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The survivor takes over after the brokers' minimum session timeout;
	// a restart with the instance id must not need the default 45s.
	session := "6s"
	if restart {
		session = "45s"
	}
	group := "test-faults-detect2-" + suffix()
	run := func(member int, id string) (*proc, string) {
		addr := freeAddr(t)
		args := []string{"run", "-brokers", strings.Join(brokers, ","), "-group", group,
			// Its own snowflake node per instance: two ids derived from
			// runner ids share a node one time in twenty, and then give
			// two alerts one event id.
			"-instance-id", fmt.Sprintf("detect-%d", member), "-node-id", strconv.Itoa(1000 + member), "-session-timeout", session,
			"-rules", filepath.Join(root, "rules"), "-overrides", overrides, "-id", id,
			"-events-topic", topics.Events, "-approvals-topic", topics.Approvals,
			"-state-topic", state, "-repartition-topic", repart, "-create-topics=true",
			"-topic-partitions", strconv.Itoa(parts), "-repartition-partitions", strconv.Itoa(parts), "-start-at", "earliest",
			"-metrics", addr, "-checkpoint-every", "1s", "-clickhouse-addr", "", "-log-level", "warn"}
		return start(t, id, binary(t, "detect"), args, nil), addr
	}
	// held waits until the instances at addrs hold all 3×parts partitions
	// (events, approvals, repartition) between them.
	held := func(timeout time.Duration, addrs ...string) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < timeout {
			n := 0
			for _, a := range addrs {
				v, _ := strconv.Atoi(metric(httpBody("http://"+a+"/metrics"), "detect_partitions"))
				n += v
			}
			if n == 3*parts {
				return time.Since(start)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("the partitions were not all held after %s", timeout)
		return 0
	}

	p, err := eventlog.NewProducer(context.Background(), brokers, "fault-fleet-"+suffix(), eventlog.WithTopics(topics))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	f := newDetectFleet(t, 24, 4)

	d0, addr0 := run(0, "detect-kill2-0-"+suffix())
	d1, addr1 := run(1, "detect-kill2-1-"+suffix())
	held(60*time.Second, addr0, addr1)
	emit := func(from, to int) {
		for _, r := range f.rounds[from:to] {
			for _, env := range r {
				if err := p.Emit(context.Background(), env); err != nil {
					t.Fatalf("emit: %v", err)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	emit(0, 8)
	// A random moment while round 7's sequence alerts and holds are
	// decided, logged and written; the windows (four denials of five) and
	// the approvers' windows (eight of ten) stay open across the kill.
	d := time.Duration(rand.IntN(1500)) * time.Millisecond
	time.Sleep(d)
	victim, survivorAddr := d0, addr1
	if rand.IntN(2) == 1 {
		victim, survivorAddr = d1, addr0
	}
	before := metric(httpBody("http://"+map[*proc]string{d0: addr0, d1: addr1}[victim]+"/metrics"), `detect_rule_alerts_total{rule="credential.read_then_egress"}`)
	victim.kill(t)
	how := fmt.Sprintf("%s SIGKILLed %dms after round 7 was produced (%s sequence alerts decided by it)", victim.name, d.Milliseconds(), before)
	heirAddr := survivorAddr
	if restart {
		member := 0
		if victim == d1 {
			member = 1
		}
		_, heirAddr = run(member, fmt.Sprintf("detect-kill2-%d-restarted-%s", member, suffix()))
		took := held(60*time.Second, survivorAddr, heirAddr)
		how += fmt.Sprintf("; restarted with its instance id, all partitions held again %s later (session timeout %s)", took.Round(100*time.Millisecond), session)
		if took > 20*time.Second {
			t.Errorf("the restarted static member took %s to get its partitions back", took)
		}
	}
	emit(8, len(f.rounds))
	if !restart {
		took := held(60*time.Second, survivorAddr)
		how += fmt.Sprintf("; the survivor held every partition %s after the last round (session timeout %s)", took.Round(100*time.Millisecond), session)
	}

	raised := readEnvelopes(t, brokers, topics.Events, events.TypeAlertRaised, f.alerts(), 5*time.Second, 60*time.Second)
	got := map[string]int{}
	ids := map[string]int{}
	for _, env := range raised {
		pl, err := env.DecodePayload()
		if err != nil {
			t.Fatal(err)
		}
		a := pl.(*events.AlertRaised)
		got[fleetAlertID(a.RuleID, a.GroupKey, a.MatchedEventIDs)]++
		ids[env.EventID]++
	}
	var lost, dup, stored, unexpected int64
	for k, n := range f.want {
		switch g := got[k]; {
		case g == 0:
			lost += int64(n)
			t.Errorf("alert not raised: %s", k)
		default:
			stored++
			if g > n {
				dup += int64(g - n)
				t.Errorf("alert raised %d times: %s", g, k)
			}
		}
	}
	for k, g := range got {
		if f.want[k] == 0 {
			unexpected += int64(g)
			t.Errorf("unexpected alert (%d): %s", g, k)
		}
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("alert event %s written %d times", id, n)
		}
	}
	heldEvents := readEnvelopes(t, brokers, topics.Approvals, events.TypeSessionHeld, f.holds, 2*time.Second, 30*time.Second)
	if len(heldEvents) != f.holds {
		t.Errorf("%d session.held, want %d", len(heldEvents), f.holds)
	}
	how += fmt.Sprintf("; after it: %s", recovered(httpBody("http://"+heirAddr+"/metrics")))
	t.Log(how)
	record(faultreport.Case{
		Produced: int64(f.alerts()), Stored: stored, Lost: lost, Duplicated: dup,
		Detail: fmt.Sprintf("produced/stored count alerts due/raised once; %d events in %d rounds, %d-partition topics, 2 static members; %s; %d session.held (want %d); %d unexpected alerts; %s",
			f.events, len(f.rounds), parts, how, len(heldEvents), f.holds, unexpected, time.Since(began).Round(time.Second)),
	})
}

// recovered sums up what a detector's metrics say it took over from the
// dead one: outbox events found written or written now, alerts its replay
// raised again and held back, re-forwarded matches dropped.
func recovered(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "detect_outbox_recovered_total{") || strings.HasPrefix(l, "detect_forward_duplicates_total ") {
			out = append(out, strings.TrimPrefix(strings.TrimPrefix(l, "detect_outbox_recovered_total"), "detect_"))
		}
	}
	if len(out) == 0 {
		return "nothing recovered"
	}
	return strings.Join(out, ", ")
}

// detectFleet is a workload whose alerts are known in advance: n sessions
// each of five egress denials (a window), of a credential read then an
// egress (a sequence that holds the session), and approvers granting ten
// approvals each over ten sessions (a rule re-keyed by approver).
type detectFleet struct {
	// rounds[i] holds the i-th event of every session, so all sessions
	// advance together and a kill between rounds finds state open on
	// every partition.
	rounds [][]*events.Envelope
	want   map[string]int // alerts due, by fleetAlertID
	holds  int
	events int
}

func newDetectFleet(t testing.TB, n, approvers int) *detectFleet {
	ids, err := events.NewIDGen(401)
	if err != nil {
		t.Fatal(err)
	}
	tag := suffix()
	f := &detectFleet{want: map[string]int{}}
	t0 := time.Now().UTC()
	mk := func(round int, p events.Payload, at time.Time, session string, opts ...events.Option) string {
		env, err := events.New(p, append([]events.Option{events.WithIDs(ids), events.WithTime(at), events.WithTenant("acme"),
			events.WithSession(session, ""), events.WithActor(events.ActorAgent, "fault-agent"), events.WithAgent("fault-agent", "1")}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		for len(f.rounds) <= round {
			f.rounds = append(f.rounds, nil)
		}
		f.rounds[round] = append(f.rounds[round], env)
		f.events++
		return env.EventID
	}
	deny := func(host string) events.NetEgress {
		return events.NetEgress{Phase: "decision", Host: host, Port: 443, Decision: events.DecisionDeny, ReasonCode: events.ReasonDefaultDeny}
	}
	for i := range n {
		at := func(d time.Duration) time.Time { return t0.Add(time.Duration(i)*time.Second + d) }
		sess := fmt.Sprintf("sess-deny-%s-%d", tag, i)
		var denials []string
		for j := range 5 {
			denials = append(denials, mk(2*j, deny(fmt.Sprintf("h%d.example", j)), at(time.Duration(j)*20*time.Second), sess))
		}
		f.want[fleetAlertID("egress.repeated_denials", sess, denials)]++
		sess = fmt.Sprintf("sess-exfil-%s-%d", tag, i)
		read := mk(3, events.ToolCallRequested{ToolName: "read_file", Arguments: events.ToolArguments{Path: "/home/dev/.ssh/id_rsa"}, ArgumentsSHA256: strings.Repeat("ab", 32)}, at(10*time.Second), sess)
		out := mk(7, deny("transfer.sh"), at(40*time.Second), sess)
		f.want[fleetAlertID("credential.read_then_egress", sess, []string{read, out})]++
		f.holds++
	}
	for k := range approvers {
		approver := fmt.Sprintf("approver-%s-%d", tag, k)
		var grants []string
		for j := range 10 {
			grant := events.ApprovalDecided{Decision: events.ApprovalApproved, ReasonCode: events.ReasonApproved, Scope: events.ScopeOnce,
				Approver: events.Actor{Type: events.ActorHuman, ID: approver}, KeyID: "k1",
				Signature: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="}
			grants = append(grants, mk(j, grant, t0.Add(time.Duration(60+j*20+k)*time.Second), fmt.Sprintf("sess-ap-%s-%d-%d", tag, k, j),
				events.WithApproval(fmt.Sprint(7_300_000_000_000_000_000+k*100+j)), events.WithActor(events.ActorHuman, approver)))
		}
		f.want[fleetAlertID("approvals.fatigue", approver, grants)]++
	}
	return f
}

func (f *detectFleet) alerts() int {
	n := 0
	for _, c := range f.want {
		n += c
	}
	return n
}

// fleetAlertID names an alert by its rule, group and events (in any
// order: a re-keyed rule sees several partitions' events in arrival order).
func fleetAlertID(rule, group string, ids []string) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return rule + "|" + group + "|" + strings.Join(ids, ",")
}

// readEnvelopes reads the events of eventType on topic until want arrived
// and nothing more came for settle (so duplicates show), or timeout.
func readEnvelopes(t testing.TB, brokers []string, topic, eventType string, want int, settle, timeout time.Duration) []*events.Envelope {
	t.Helper()
	return readCounting(t, brokers, topic, eventType, nil, want, settle, timeout)
}

// readCounting reads the events of eventType on topic until want of them
// count (counts nil: every one) and no event of eventType came for settle,
// or timeout. It returns every event of eventType it read.
func readCounting(t testing.TB, brokers []string, topic, eventType string, counts func(*events.Envelope) bool,
	want int, settle, timeout time.Duration) []*events.Envelope {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*events.Envelope
	n := 0
	deadline := time.Now().Add(timeout)
	quietUntil := time.Now().Add(settle)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			env, err := events.Decode(r.Value)
			if err != nil {
				t.Errorf("%s offset %d does not decode: %v", topic, r.Offset, err)
				return
			}
			if env.EventType != eventType {
				return
			}
			out = append(out, env)
			if counts == nil || counts(env) {
				n++
			}
			quietUntil = time.Now().Add(settle)
		})
		if n >= want && time.Now().After(quietUntil) {
			return out
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d %s after %s, want %d", topic, n, eventType, timeout, want)
			return out
		}
	}
}
