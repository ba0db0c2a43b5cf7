package store

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
)

// typedRow is RowFromEvent's envelope part followed by flattenTyped: the
// reference the flattening must match. It reads the payload with
// DecodePayloadFast, the typed decoder every other reader of events uses,
// so the reference differs from flattenPayload in how it maps fields, not
// in a JSON reader of its own.
func typedRow(t testing.TB, env *events.Envelope, raw []byte) (EventRow, error) {
	t.Helper()
	id, err := events.ParseID(env.EventID)
	if err != nil {
		return EventRow{}, err
	}
	ref := EventRow{EventID: uint64(id), EventType: env.EventType, ApprovalID: env.ApprovalID}
	if env.Policy != nil {
		ref.PolicyID, ref.PolicySHA256 = env.Policy.ID, env.Policy.SHA256
	}
	p, err := env.DecodePayloadFast()
	if err != nil {
		return EventRow{}, err
	}
	if err := flattenTyped(&ref, p); err != nil {
		return EventRow{}, err
	}
	return ref, nil
}

// payloadPart keeps only the fields flattening sets.
func payloadPart(r EventRow) EventRow {
	return EventRow{
		EventID: r.EventID, EventType: r.EventType, ApprovalID: r.ApprovalID,
		ToolName: r.ToolName, Command: r.Command, Cwd: r.Cwd, Path: r.Path, URL: r.URL, ArgumentsSHA256: r.ArgumentsSHA256,
		Decision: r.Decision, ReasonCode: r.ReasonCode, RuleID: r.RuleID, ApprovalMode: r.ApprovalMode, Risk: r.Risk,
		Kind: r.Kind, Reason: r.Reason, Summary: r.Summary, Requester: r.Requester, ApprovalOutcome: r.ApprovalOutcome,
		ApprovalScope: r.ApprovalScope, Approver: r.Approver, ExpiresAt: r.ExpiresAt, DecidedAt: r.DecidedAt, KeyID: r.KeyID,
		EgressPhase: r.EgressPhase, Host: r.Host, Port: r.Port, ResolvedIP: r.ResolvedIP, Method: r.Method, SNI: r.SNI,
		StatusCode: r.StatusCode, BytesSent: r.BytesSent, BytesReceived: r.BytesReceived, ExitCode: r.ExitCode,
		DurationMS: r.DurationMS, TimedOut: r.TimedOut, KilledReason: r.KilledReason, StdoutLength: r.StdoutLength,
		StdoutSHA256: r.StdoutSHA256, StderrLength: r.StderrLength, StderrSHA256: r.StderrSHA256, Error: r.Error,
		Syscall: r.Syscall, Severity: r.Severity, RuleVersion: r.RuleVersion, GroupKey: r.GroupKey, AlertCount: r.AlertCount,
		Suppressed: r.Suppressed, AlertAction: r.AlertAction, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen,
		MatchedEventIDs: r.MatchedEventIDs, RefEventID: r.RefEventID, ByID: r.ByID, Workspace: r.Workspace, Image: r.Image,
		SandboxProfile: r.SandboxProfile, SandboxProfileSHA256: r.SandboxProfileSHA256, Operator: r.Operator, Mode: r.Mode,
		ClientName: r.ClientName, PID: r.PID, PPID: r.PPID, Exe: r.Exe, Background: r.Background, RootProcess: r.RootProcess,
		Signal: r.Signal, UserMS: r.UserMS, SystemMS: r.SystemMS, MaxRSSKB: r.MaxRSSKB, ProcessCount: r.ProcessCount,
		AgentSource: r.AgentSource, AgentEvent: r.AgentEvent, ConversationID: r.ConversationID, PromptID: r.PromptID,
		AgentCallID: r.AgentCallID, Model: r.Model, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens,
		CacheReadTokens: r.CacheReadTokens, CacheCreationTokens: r.CacheCreationTokens, ReasoningTokens: r.ReasoningTokens,
		ToolTokens: r.ToolTokens, CostMicroUSD: r.CostMicroUSD, TextMode: r.TextMode, TextLength: r.TextLength,
		TextSHA256: r.TextSHA256, Text: r.Text, AgentDecision: r.AgentDecision, DecisionSource: r.DecisionSource,
		Success: r.Success, ApprovalPolicy: r.ApprovalPolicy, SandboxPolicy: r.SandboxPolicy,
		TriageAction: r.TriageAction, Assignee: r.Assignee, ScopeKind: r.ScopeKind, ScopeValue: r.ScopeValue,
		// The policy a decision was made under comes from the envelope or,
		// for agent tool events, from payload.policy.
		PolicyID: r.PolicyID, PolicySHA256: r.PolicySHA256,
	}
}

func TestFlattenPayloadMatchesTyped(t *testing.T) {
	envs, raws := examples(t)
	for i, env := range envs {
		t.Run(env.EventType+"/"+env.EventID, func(t *testing.T) {
			want, err := typedRow(t, env, raws[i])
			if err != nil {
				t.Fatal(err)
			}
			got, err := RowFromEvent(env, raws[i], Source{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(payloadPart(want), payloadPart(got)); diff != "" {
				t.Errorf("flattening vs typed (-typed +flattened):\n%s", diff)
			}
		})
	}
}

func TestFlattenPayloadEscapes(t *testing.T) {
	var r EventRow
	p := `{"tool_name":"sh\"ell","arguments":{"argv":["echo","a\u00e9\\b"],"cwd":"/w\/x"},"arguments_sha256":"x","arguments_truncated":false}`
	if err := flattenPayload(&r, events.TypeToolCallRequested, []byte(p)); err != nil {
		t.Fatal(err)
	}
	got := []string{r.ToolName, r.Command, r.Cwd}
	want := []string{`sh"ell`, `echo 'aé\b'`, "/w/x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzFlattenPayload: for every event Decode accepts, the flattening
// agrees with DecodePayloadFast + flattenTyped.
func FuzzFlattenPayload(f *testing.F) {
	_, raws := examples(f)
	for _, r := range raws {
		f.Add(r)
		f.Add([]byte(strings.ReplaceAll(string(r), `"/workspace"`, `"/work\u0073pace \"q\""`)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := events.Decode(data)
		if err != nil {
			return
		}
		want, werr := typedRow(t, env, data)
		got, gerr := RowFromEvent(env, data, Source{})
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("typed err %v, fast err %v", werr, gerr)
		}
		if werr != nil {
			return
		}
		if diff := cmp.Diff(payloadPart(want), payloadPart(got)); diff != "" {
			t.Errorf("(-typed +fast):\n%s", diff)
		}
	})
}

// TestBlockMatchesValues: the columnar block writes what the row path
// (values) would, column by column, with and without dropped rows.
func TestBlockMatchesValues(t *testing.T) {
	rows := exampleRows(t)
	rows[0].IngestedAt = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if len(eventColDefs) != len(eventColumns) {
		t.Fatalf("%d column definitions for %d columns", len(eventColDefs), len(eventColumns))
	}
	b := NewEventBlock(1)
	for i := range rows {
		b.Append(&rows[i])
	}
	check := func(keep []int) {
		t.Helper()
		for c := range eventColDefs {
			var views []string
			col := reflect.ValueOf(b.column(c, now, &views))
			if col.Len() != len(keep) {
				t.Fatalf("column %s has %d rows, want %d", eventColumns[c], col.Len(), len(keep))
			}
			for k, i := range keep {
				want := rows[i].values(now)[c]
				got := col.Index(k).Interface()
				if tm, ok := want.(time.Time); ok {
					want = tm.Unix()
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("column %s row %d (-values +block):\n%s", eventColumns[c], i, diff)
				}
			}
		}
	}
	var all []int
	for i := range rows {
		all = append(all, i)
	}
	check(all)
	b.Drop(1)
	b.Drop(3)
	check(append([]int{0, 2}, all[4:]...))
	if b.Rows() != len(rows)-2 {
		t.Errorf("Rows = %d, want %d", b.Rows(), len(rows)-2)
	}
}

// BenchmarkFlattenPayload: the payload part of RowFromEvent over every
// example event, the share of ingest time the payload scanner decides.
func BenchmarkFlattenPayload(b *testing.B) {
	envs, _ := examples(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		env := envs[i%len(envs)]
		var r EventRow
		if err := flattenPayload(&r, env.EventType, env.Payload); err != nil {
			b.Fatal(err)
		}
	}
}
