package main

import (
	"strings"
	"testing"
	"time"
)

// TestReplayRange reads --from and --to in every form query accepts, and
// refuses what it cannot read or an empty range.
func TestReplayRange(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		from, to     string
		wantFrom     time.Time
		wantTo       time.Time
		wantErrMatch string
	}{
		{from: "-24h", to: "now", wantFrom: now.Add(-24 * time.Hour), wantTo: now},
		{from: "7d", to: "-1h", wantFrom: now.Add(-7 * 24 * time.Hour), wantTo: now.Add(-time.Hour)},
		{from: "2026-12-01", to: "2026-12-02T00:00:00Z", wantFrom: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), wantTo: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
		{from: "2026-12-06T10:00:00+01:00", to: "now", wantFrom: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC), wantTo: now},
		{from: "", to: "now", wantErrMatch: "--from is required"},
		{from: "yesterday", to: "now", wantErrMatch: "--from"},
		{from: "-1h", to: "soon", wantErrMatch: "--to"},
		{from: "now", to: "-1h", wantErrMatch: "is not after"},
	} {
		f, to, err := replayRange(tc.from, tc.to, now)
		if tc.wantErrMatch != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrMatch) {
				t.Errorf("replayRange(%q, %q) error = %v, want one containing %q", tc.from, tc.to, err, tc.wantErrMatch)
			}
			continue
		}
		if err != nil || !f.Equal(tc.wantFrom) || !to.Equal(tc.wantTo) {
			t.Errorf("replayRange(%q, %q) = %s, %s, %v; want %s, %s", tc.from, tc.to, f, to, err, tc.wantFrom, tc.wantTo)
		}
	}
}
