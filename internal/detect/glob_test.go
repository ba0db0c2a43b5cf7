package detect

import (
	"strings"
	"testing"
	"time"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		name, pattern string
		want          bool
	}{
		{"/home/u/.ssh/id_rsa", "**/.ssh/id_*", true},
		{".ssh/id_rsa", "**/.ssh/id_*", true},
		{"~/.ssh/id_ed25519", "**/.ssh/id_*", true},
		{"/home/u/.ssh/known_hosts", "**/.ssh/id_*", false},
		{"/w/key.pem", "*.pem", true},
		{"/w/key.pem.txt", "*.pem", false},
		{"/w/.git/hooks/pre-commit", "**/.git/hooks/**", true},
		{"/w/src/hooks/x.ts", "**/.git/hooks/**", false},
		{"/etc/agentaudit/policy.yaml", "/etc/agentaudit/**", true},
		{"/etc/agentaudit", "/etc/agentaudit/**", false},
		{"/a/b/c", "/a/*/c", true},
		{"/a/b/x/c", "/a/*/c", false},
		{"/a/b/x/c", "/a/**/c", true},
		{"/a/bc", "/a/b?", true},
		{"/a/b/", "/a/b?", false},
		{"x", "", false},
		{"/w/src/b1.go", "src/[abc]?.go", false},
		{"src/b1.go", "src/[abc]?.go", true},
		{"/w/[x]", `\[x\]`, true},
		{"/w/x", "/w/[x", false}, // does not compile: matches nothing
		{"/tmp/a/b.sh", "/tmp/**.sh", false},
	}
	for _, tc := range tests {
		if got := globMatch(tc.name, tc.pattern); got != tc.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tc.name, tc.pattern, got, tc.want)
		}
	}
	// Hostile patterns stay polynomial.
	start := time.Now()
	name := strings.Repeat("a", 3000)
	if globMatch(name, "/"+strings.Repeat("**a", 30)+"b") || globMatch(name, strings.Repeat("*a", 40)+"b") {
		t.Error("matched")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hostile glob took %v", d)
	}
}

func TestOutsideHours(t *testing.T) {
	tests := []struct {
		spec string
		at   string
		want bool // outside
	}{
		{"Europe/Berlin 07:00-20:00 Mon-Fri", "2026-03-02T10:00:00Z", false},
		{"Europe/Berlin 07:00-20:00 Mon-Fri", "2026-03-02T05:30:00Z", true}, // 06:30 Berlin
		{"Europe/Berlin 07:00-20:00 Mon-Fri", "2026-03-07T12:00:00Z", true}, // Saturday
		{"UTC 22:00-06:00", "2026-03-02T23:00:00Z", false},                  // night shift
		{"UTC 22:00-06:00", "2026-03-02T12:00:00Z", true},
		{"UTC 22:00-06:00 Mon", "2026-03-03T02:00:00Z", false},   // Monday's shift, after midnight
		{"UTC 22:00-06:00 Mon", "2026-03-04T02:00:00Z", true},    // Tuesday's shift
		{"Not/AZone 07:00-20:00", "2026-03-02T03:00:00Z", false}, // invalid spec: never fires
		{"UTC 7-20", "2026-03-02T03:00:00Z", false},
	}
	for _, tc := range tests {
		ts, _ := time.Parse(time.RFC3339, tc.at)
		h, ok := parseHours(tc.spec)
		got := ok && !h.contains(ts)
		if got != tc.want {
			t.Errorf("outside_hours(%s, %q) = %v, want %v", tc.at, tc.spec, got, tc.want)
		}
	}
}
