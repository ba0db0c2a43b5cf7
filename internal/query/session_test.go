package query

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTimeline(t *testing.T) {
	db, sc := scenarioDB(t)
	q := openReader(t, db)
	res, err := q.Timeline(context.Background(), "sess-alpha")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Rows {
		got = append(got, strings.Join([]string{Cell(r[0]), Cell(r[1]), Cell(r[2]), Cell(r[3]), Cell(r[4]), Cell(r[5])}, " | "))
	}
	a1 := sc.approvalA1
	want := []string{
		"2026-01-05 10:00:00 | runner-a | 1 | session.started |  | agent claude-code 1.0 in /srv/ws/sess-alpha, image localhost/agentaudit-sandbox:test profile default operator ops@acme.example",
		"2026-01-05 10:00:01 | runner-a | 2 | tool_call.requested | tc1 | shell: ls -la",
		"2026-01-05 10:00:01.100000 | runner-a | 3 | policy.decision | tc1 | ALLOW allowlisted rule fs/list risk high",
		"2026-01-05 10:00:01.500000 | runner-a | 4 | tool_call.completed | tc1 | exit 0 in 120ms",
		"2026-01-05 10:01:00 | runner-a | 5 | tool_call.requested | tc2 | shell: git push origin main",
		"2026-01-05 10:01:00.100000 | runner-a | 6 | policy.decision | tc2 | ASK needs_approval rule deploy/git-push risk high",
		"2026-01-05 10:01:00.200000 | runner-a | 7 | approval.requested | tc2 | approval " + a1 + " requested: git push origin main rule deploy/git-push risk high by claude-code@laptop",
		"2026-01-05 10:01:42.700000 | approvals-1 | 1 | approval.decided | tc2 | approval " + a1 + " APPROVED scope once by bob@acme.example",
		"2026-01-05 10:01:42.800000 | runner-a | 8 | policy.decision | tc2 | ALLOW approved rule deploy/git-push risk high approval " + a1,
		"2026-01-05 10:01:45 | runner-a | 9 | tool_call.completed | tc2 | exit 0 in 120ms",
		"2026-01-05 10:02:00 | runner-a | 10 | tool_call.requested | tc3 | shell: curl http://169.254.169.254/latest/meta-data",
		"2026-01-05 10:02:00.100000 | runner-a | 11 | policy.decision | tc3 | DENY denied_by_rule rule net/metadata risk high",
		"2026-01-05 10:02:00.200000 | runner-a | 12 | net.egress |  | egress DENY 169.254.169.254:80 metadata_address",
		"2026-01-05 10:02:05 | detect-1 | 1 | alert.raised |  | ALERT HIGH sandbox/metadata-probe: sandbox/metadata-probe fired (1 matches, action hold)",
		"2026-01-05 10:02:06 | detect-1 | 2 | session.held |  | HELD by sandbox/metadata-probe: held by rule sandbox/metadata-probe",
		"2026-01-05 10:03:00 | runner-a | 13 | net.egress |  | egress ALLOW proxy.golang.org:443 allowlisted",
		"2026-01-05 10:03:02 | runner-a | 14 | net.egress |  | egress closed proxy.golang.org:443 sent 10 received 20 bytes",
		"2026-01-05 10:05:00 | runner-a | 15 | session.ended |  | ENDED completed after 5m0s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	var b strings.Builder
	if err := RunSession(context.Background(), readerConfig(t, db), "sess-alpha", Output{Format: FormatJSON, W: &b}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"event":"approval.decided","tool_call":"tc2","what":"approval `+a1+` APPROVED scope once by bob@acme.example"`) {
		t.Errorf("json timeline lacks the approval:\n%s", b.String())
	}
}
