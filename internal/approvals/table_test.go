package approvals

import (
	"strings"
	"testing"
	"time"
)

// TestMissingTimes: the CLI shows a missing time as "-", never as
// 0001-01-01 or 1970-01-01.
func TestMissingTimes(t *testing.T) {
	for _, tm := range []time.Time{{}, time.Unix(0, 0)} {
		var out strings.Builder
		if err := WriteHolds(&out, []HoldView{{SessionID: "s", EventID: "1", HeldAt: tm}}); err != nil {
			t.Fatal(err)
		}
		if err := WriteRequest(&out, RequestView{ID: "1", RequestedAt: tm, ExpiresAt: tm, Status: StatusApproved,
			History: []DecisionView{{EventID: "2", DecidedAt: tm}}}, t0); err != nil {
			t.Fatal(err)
		}
		if s := out.String(); strings.Contains(s, "1970") || strings.Contains(s, "0001-") {
			t.Errorf("missing time shown as a date:\n%s", s)
		}
	}
}
