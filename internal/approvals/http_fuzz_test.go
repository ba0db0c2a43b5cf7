package approvals

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/internal/events"
)

// FuzzParseDecisionInput: whatever a client sends, the parser either
// refuses it or returns a decision the service can act on.
func FuzzParseDecisionInput(f *testing.F) {
	for _, s := range []string{
		`{"decision":"approve","scope":"once","comment":"ok"}`,
		`{"decision":"deny"}`,
		`{"decision":"approve","scope":"session"}`,
		`{"decision":"approve"} {"decision":"deny"}`,
		`{"decision":"approve","approver":"root"}`,
		`{"decision":"deny","comment":"\u0000\ud800"}`,
		`[]`, `null`, ``, `{"decision":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := ParseDecisionInput(body)
		if err != nil {
			return
		}
		if in.Decision != "approve" && in.Decision != "deny" {
			t.Fatalf("accepted decision %q", in.Decision)
		}
		if in.Scope != "" && in.Scope != events.ScopeOnce && in.Scope != events.ScopeSession {
			t.Fatalf("accepted scope %q", in.Scope)
		}
		if !utf8.ValidString(in.Comment) || utf8.RuneCountInString(in.Comment) > maxComment {
			t.Fatalf("accepted comment of %d bytes", len(in.Comment))
		}
		// What was accepted survives a round trip unchanged.
		b, _ := json.Marshal(in)
		again, err := ParseDecisionInput(b)
		if err != nil || again != in {
			t.Fatalf("round trip: %v %+v != %+v", err, again, in)
		}
	})
}

func FuzzParseReleaseInput(f *testing.F) {
	for _, s := range []string{
		`{"reason":"benign","held_event_id":"2126631830248910848"}`,
		`{"reason":"x"}`, `{"held_event_id":"0"}`, `{"held_event_id":"-1"}`, `{}`, `{"by":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := ParseReleaseInput(body)
		if err != nil {
			return
		}
		if in.HeldEventID != "" {
			if _, err := events.ParseID(in.HeldEventID); err != nil {
				t.Fatalf("accepted held_event_id %q", in.HeldEventID)
			}
		}
		if !utf8.ValidString(in.Reason) || utf8.RuneCountInString(in.Reason) > maxComment {
			t.Fatalf("accepted reason of %d bytes", len(in.Reason))
		}
	})
}
