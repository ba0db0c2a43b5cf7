package approvals

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// TestRecentSessionsBounded: a session keeps its last maxActions actions
// and maxSessionCalls tool calls, and the oldest sessions are forgotten.
func TestRecentSessionsBounded(t *testing.T) {
	r := newRecent(time.Hour, 10, 40) // 2 sessions
	ids, _ := events.NewIDGen(5)
	log := slog.New(slog.DiscardHandler)
	add := func(session string, i int) {
		call := fmt.Sprintf("call-%d", i)
		env, err := events.New(events.ToolCallRequested{ToolName: "shell",
			Arguments: events.ToolArguments{Argv: []string{"echo", strconv.Itoa(i)}}, ArgumentsSHA256: strings.Repeat("a", 64)},
			events.WithIDs(ids), events.WithSession(session, "r"), events.WithTenant("acme"), events.WithToolCall(call),
			events.WithActor(events.ActorAgent, "a"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := marshalStamped(env)
		if err != nil {
			t.Fatal(err)
		}
		r.add(b, log)
	}
	for i := range 50 {
		add("s1", i)
	}
	v := r.sessionView("s1")
	if len(v.LastActions) != maxActions || v.LastActions[maxActions-1].Text != "shell echo 49" {
		t.Errorf("last actions %+v", v.LastActions)
	}
	if r.call("s1", "call-49") == nil || r.call("s1", fmt.Sprintf("call-%d", 49-maxSessionCalls)) != nil {
		t.Errorf("tool calls not bounded to the last %d", maxSessionCalls)
	}
	add("s2", 0)
	add("s3", 0)
	if len(r.sessionView("s1").LastActions) != 0 || len(r.sessionView("s3").LastActions) != 1 {
		t.Errorf("the oldest session was not forgotten")
	}
}

func marshalStamped(env *events.Envelope) ([]byte, error) {
	if err := events.NewChain(env.Key()).Stamp(env); err != nil {
		return nil, err
	}
	return events.Marshal(env)
}
