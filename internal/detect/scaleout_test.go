package detect

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
)

// scaleParts is the partition count of every topic of the scale-out tests.
const scaleParts = 6

// fleet is a workload whose alerts are known in advance: per session kind,
// n sessions that each raise one alert of a local rule (a window, a
// sequence with a hold, a single match asking for approval), plus
// approvers whose ten approvals each, spread over ten sessions, raise one
// alert of a rule re-keyed through the repartition topic.
type fleet struct {
	// rounds[i] holds the i-th event of every session: producing round
	// after round keeps each session in order while all sessions advance
	// together, so that a rebalance or a kill between rounds finds windows
	// and sequences open on every partition.
	rounds [][]*events.Envelope
	// want counts the alerts due, by alertID.
	want  map[string]int
	holds int // session.held due (one per sequence alert)
	asks  int // approval.requested due (one per tamper alert)
}

func newFleet(t testing.TB, tag string, n, approvers int) *fleet {
	s := newStream(t)
	// Event times start now: the services read their own alert.raised
	// events back from the events topic, stamped with the wall clock, and
	// those move a partition's event time on. Events of a fixed past date
	// would see their windows close under them.
	t0 := time.Now().UTC().Truncate(time.Second)
	f := &fleet{want: map[string]int{}}
	put := func(round int, env *events.Envelope) {
		for len(f.rounds) <= round {
			f.rounds = append(f.rounds, nil)
		}
		f.rounds[round] = append(f.rounds[round], env)
	}
	ids := func(evs ...*events.Envelope) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.EventID)
		}
		return out
	}
	for i := range n {
		at := func(d time.Duration) time.Time { return t0.Add(time.Duration(i)*time.Second + d) }
		sess := fmt.Sprintf("%s-deny-%d", tag, i)
		var denials []*events.Envelope
		for j := range 5 {
			env := s.ev(egress(fmt.Sprintf("h%d.example", j), events.DecisionDeny, events.ReasonDefaultDeny), at(time.Duration(j)*20*time.Second), sess)
			denials = append(denials, env)
			put(2*j, env)
		}
		f.want[alertID("egress.repeated_denials", sess, ids(denials...))]++

		sess = fmt.Sprintf("%s-exfil-%d", tag, i)
		read := s.ev(readFile("/home/dev/.ssh/id_rsa"), at(10*time.Second), sess)
		out := s.ev(egress("transfer.sh", events.DecisionDeny, events.ReasonDefaultDeny), at(40*time.Second), sess)
		put(3, read)
		put(7, out)
		f.want[alertID("credential.read_then_egress", sess, ids(read, out))]++
		f.holds++

		sess = fmt.Sprintf("%s-tamper-%d", tag, i)
		edit := s.ev(events.ToolCallRequested{ToolName: "edit_file", Arguments: events.ToolArguments{Path: "/workspace/.claude/settings.json"}, ArgumentsSHA256: sha256Hex("x")}, at(50*time.Second), sess)
		put(5, edit)
		f.want[alertID("defense_evasion.policy_tamper", sess, ids(edit))]++
		f.asks++
	}
	for k := range approvers {
		approver := fmt.Sprintf("%s-approver-%d", tag, k)
		var grants []*events.Envelope
		for j := range 10 {
			id := fmt.Sprint(7_200_000_000_000_000_000 + k*100 + j)
			env := s.ev(approved(approver), t0.Add(time.Duration(60+j*20+k)*time.Second), fmt.Sprintf("%s-ap-%d-%d", tag, k, j), events.WithApproval(id))
			grants = append(grants, env)
			put(j, env)
		}
		f.want[alertID("approvals.fatigue", approver, ids(grants...))]++
	}
	return f
}

// alertID names an alert by what must happen once: its rule, its group
// and the events it reports (in any order: a re-keyed rule sees events of
// several partitions in arrival order).
func alertID(rule, group string, ids []string) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return rule + "|" + group + "|" + strings.Join(ids, ",")
}

func (f *fleet) alerts() int {
	n := 0
	for _, c := range f.want {
		n += c
	}
	return n
}

// produce writes rounds [from, to), pausing between them.
func (f *fleet) produce(e *svcEnv, from, to int, pause time.Duration) {
	for _, r := range f.rounds[from:min(to, len(f.rounds))] {
		e.produce(r...)
		time.Sleep(pause)
	}
}

// check reads what the services wrote and fails unless every alert due
// was raised exactly once, with its hold or approval request once, and
// nothing else. The count is of raw records on the topics, not
// deduplicated by event id: nothing may be written twice.
func (f *fleet) check(t *testing.T, e *svcEnv) {
	t.Helper()
	raised := e.read(e.topics.Events, ofType(events.TypeAlertRaised), f.alerts(), 5*time.Second)
	got := map[string]int{}
	eventIDs := map[string]int{}
	for _, env := range raised {
		a := alertOf(t, env)
		got[alertID(a.RuleID, a.GroupKey, a.MatchedEventIDs)]++
		eventIDs[env.EventID]++
	}
	if d := cmp.Diff(f.want, got); d != "" {
		t.Errorf("alerts raised, by rule|group|events (-due +raised):\n%s", d)
	}
	for id, n := range eventIDs {
		if n > 1 {
			t.Errorf("alert event %s written %d times", id, n)
		}
	}
	acts := e.read(e.topics.Approvals, func(env *events.Envelope) bool {
		return env.Actor.Type == events.ActorRule && (env.EventType == events.TypeSessionHeld || env.EventType == events.TypeApprovalRequested)
	}, f.holds+f.asks, 2*time.Second)
	var holds, asks int
	for _, env := range acts {
		if env.EventType == events.TypeSessionHeld {
			holds++
		} else {
			asks++
		}
	}
	if holds != f.holds || asks != f.asks {
		t.Errorf("%d session.held and %d approval.requested, want %d and %d", holds, asks, f.holds, f.asks)
	}
	t.Logf("%d alerts raised once each (%d rules' groups), %d holds, %d approval requests", len(raised), len(f.want), holds, asks)
}

// scaleConfig configures instance node of a group; node is also its
// snowflake node, one per instance (see Config.NodeID).
func (e *svcEnv) scaleConfig(group, id string, node int64) Config {
	c := e.config(group, id)
	c.NodeID = 1000 + node
	c.Partitions, c.RepartitionPartitions = scaleParts, scaleParts
	c.CheckpointEvery = time.Second
	c.Overrides = "testdata/overrides/scaleout.yaml"
	return c
}

// waitHolding waits until svcs hold all n partitions between them, each
// some.
func waitHolding(t testing.TB, n int, svcs ...*running) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var counts []int
	for time.Now().Before(deadline) {
		counts = counts[:0]
		sum := 0
		for _, s := range svcs {
			s.mu.Lock()
			counts = append(counts, len(s.tasks))
			sum += len(s.tasks)
			s.mu.Unlock()
		}
		if sum == n && !slices.Contains(counts, 0) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("partitions held %v, want %d shared by all", counts, n)
}

// allParts: events, approvals and repartition topics.
const allParts = 3 * scaleParts

// TestServiceScaleOutJoin runs one detector on six-partition topics and
// starts a second in the same group while the sessions are half done:
// the rebalance moves open windows and sequences, and every alert is
// still raised exactly once.
func TestServiceScaleOutJoin(t *testing.T) {
	e := newSvcEnvParts(t, scaleParts)
	f := newFleet(t, "join", 24, 4)
	a1 := startService(t, e.scaleConfig("g", "detect-join-1", 1))
	a1.waitReady(t)
	f.produce(e, 0, 4, 100*time.Millisecond)
	a2 := startService(t, e.scaleConfig("g", "detect-join-2", 2))
	// Round 4 goes out while the group rebalances, the rest once the
	// second instance holds its share (with windows and sequences open).
	f.produce(e, 4, 5, 0)
	waitHolding(t, allParts, a1, a2)
	f.produce(e, 5, len(f.rounds), 100*time.Millisecond)
	f.check(t, e)
	for _, s := range []*running{a1, a2} {
		var evals uint64
		for _, st := range s.RuleStats() {
			evals += st.Evaluations
		}
		if evals == 0 {
			t.Errorf("%s evaluated nothing", s.RunnerID())
		}
	}
}

// TestServiceKillOneOfTwo runs two detectors as static members of one
// group and crashes one mid-stream: nothing it does from then on becomes
// durable and it does not leave the group, as with SIGKILL. Either the
// survivor takes its partitions once the session times out, or it comes
// back with its instance id and resumes at once; either way every alert
// is raised exactly once.
func TestServiceKillOneOfTwo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		victim  int  // 0: the first member (the group's leader), 1: the second
		restart bool // the victim restarts with its instance id
	}{
		{"first killed, survivor takes over", 0, false},
		{"second killed, survivor takes over", 1, false},
		{"killed and restarted with its instance id", 0, true},
	} {
		t.Run(strings.NewReplacer(",", "", " ", "_").Replace(tc.name), func(t *testing.T) {
			start := time.Now()
			e := newSvcEnvParts(t, scaleParts)
			f := newFleet(t, "kill", 24, 4)
			// The brokers' minimum, for the survivor to take over soon;
			// a restart must not need it, so it gets a long one.
			session := 6 * time.Second
			if tc.restart {
				session = 40 * time.Second
			}
			cfg := func(i int) Config {
				c := e.scaleConfig("g", fmt.Sprintf("detect-kill-%d", i), int64(i))
				c.InstanceID = fmt.Sprintf("detect-%d", i)
				c.SessionTimeout = session
				return c
			}
			svcs := []*running{startService(t, cfg(0)), startService(t, cfg(1))}
			waitHolding(t, allParts, svcs...)
			f.produce(e, 0, 5, 100*time.Millisecond)
			// A random moment while round 5's alerts are decided, logged,
			// checkpointed and written.
			e.produce(f.rounds[5]...)
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond)
			victim, survivor := svcs[tc.victim], svcs[1-tc.victim]
			victim.crash(t)
			killed := time.Now()
			var back *running
			if tc.restart {
				c := cfg(tc.victim)
				c.RunnerID += "-restarted"
				back = startService(t, c)
				back.waitReady(t)
				took := time.Since(killed)
				t.Logf("the restarted static member got its partitions %s after the kill", took.Round(100*time.Millisecond))
				if took >= session {
					t.Errorf("the restarted static member waited %s, the session timeout (%s) or more", took, session)
				}
			}
			f.produce(e, 6, len(f.rounds), 100*time.Millisecond)
			if tc.restart {
				waitHolding(t, allParts, survivor, back)
			} else {
				waitHolding(t, allParts, survivor)
			}
			t.Logf("partitions held again %s after the kill", time.Since(killed).Round(100*time.Millisecond))
			f.check(t, e)
			heir := survivor
			if back != nil {
				heir = back
			}
			t.Logf("after the kill, %s: %s", heir.RunnerID(), recoveryFigures(t, heir))
			t.Logf("case took %s", time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// recoveryFigures returns what a service's metrics say it recovered from
// a predecessor: outbox events found written or written now, alerts a
// replay raised again and held back, and re-forwarded matches dropped.
func recoveryFigures(t testing.TB, s *running) string {
	var out []string
	for _, l := range strings.Split(httpGet(t, "http://"+s.MetricsAddr()+"/metrics"), "\n") {
		if strings.HasPrefix(l, "detect_outbox_recovered_total{") || strings.HasPrefix(l, "detect_forward_duplicates_total ") {
			out = append(out, strings.TrimPrefix(strings.TrimPrefix(l, "detect_outbox_recovered_total"), "detect_"))
		}
	}
	return strings.Join(out, ", ")
}

// An instance id must be a Kafka name; a session timeout cannot be
// negative, and defaults to Kafka's 45s.
func TestConfigStaticMembership(t *testing.T) {
	cases := []struct {
		id      string
		session time.Duration
		want    time.Duration
		bad     string // the field the error names, "" when valid
	}{
		{"", 0, 45 * time.Second, ""},
		{"detect-0", 6 * time.Second, 6 * time.Second, ""},
		{"detect 0", 0, 0, "InstanceID"},
		{strings.Repeat("d", 250), 0, 0, "InstanceID"},
		{"detect-0", -time.Second, 0, "SessionTimeout"},
	}
	for _, tc := range cases {
		c := Config{Brokers: []string{"127.0.0.1:9092"}, RulesDir: "rules", InstanceID: tc.id, SessionTimeout: tc.session}
		err := c.Validate()
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("InstanceID %q SessionTimeout %s: Validate = %v, want an error naming %s", tc.id, tc.session, err, tc.bad)
			}
			continue
		}
		if err != nil || c.SessionTimeout != tc.want {
			t.Errorf("InstanceID %q SessionTimeout %s: Validate = %v, session %s, want nil, %s", tc.id, tc.session, err, c.SessionTimeout, tc.want)
		}
	}
}
