package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []alert
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
			if env.EventType != events.TypeAlertRaised {
				return
			}
			p, err := env.DecodePayload()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, alert{env.SessionID, p.(*events.AlertRaised)})
			quietUntil = time.Now().Add(settle)
		})
		if len(out) >= want && time.Now().After(quietUntil) {
			return out
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d alerts after %s, want %d", topic, len(out), timeout, want)
			return out
		}
	}
}
