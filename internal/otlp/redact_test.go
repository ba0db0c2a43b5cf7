package otlp

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// One case per pattern in secretPatterns, and the text each must leave.
func TestRedactPatterns(t *testing.T) {
	tests := []struct {
		kind string
		in   string
		want string
	}{
		{"private_key", "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\ndone",
			"key:\n[REDACTED:private_key]\ndone"},
		{"private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA (cut off)", "[REDACTED:private_key]"},
		{"anthropic_key", "export ANTHROPIC=sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345", "export ANTHROPIC=[REDACTED:anthropic_key]"},
		{"openai_key", "use sk-proj-abcdefghijklmnopqrstuvwxyz0123456789 now", "use [REDACTED:openai_key] now"},
		{"github_token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789 and github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
			"[REDACTED:github_token] and [REDACTED:github_token]"},
		{"gitlab_token", "glpat-abcdefghij0123456789", "[REDACTED:gitlab_token]"},
		{"slack_token", "xoxb-123456789012-abcdefghijkl", "[REDACTED:slack_token]"},
		{"aws_access_key", "id AKIAIOSFODNN7EXAMPLE here", "id [REDACTED:aws_access_key] here"},
		{"google_api_key", "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234", "[REDACTED:google_api_key]"},
		{"stripe_key", "sk_live_abcdefghijklmnop1234", "[REDACTED:stripe_key]"},
		{"jwt", "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
			"token [REDACTED:jwt]"},
		{"bearer", "curl -H 'Authorization: Bearer abcdefghijklmnop0123456789' x", "curl -H 'Authorization: Bearer [REDACTED:bearer]' x"},
		{"url_password", "git clone https://deploy:hunter2hunter2@git.example/acme.git", "git clone https://deploy:[REDACTED:url_password]@git.example/acme.git"},
		{"assignment", `DB_PASSWORD=correct-horse-battery "api_key": "abcd1234efgh" aws_secret_access_key = wJalrXUtnFEMI/K7MDENG`,
			`DB_PASSWORD=[REDACTED:assignment] "api_key": [REDACTED:assignment] aws_secret_access_key = [REDACTED:assignment]`},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		got, n := Redact(tc.in)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.kind, diff)
		}
		if n == 0 || !strings.Contains(got, "[REDACTED:"+tc.kind+"]") {
			t.Errorf("%s: %d redactions in %q", tc.kind, n, got)
		}
		seen[tc.kind] = true
	}
	for _, p := range secretPatterns {
		if !seen[p.kind] {
			t.Errorf("pattern %s has no test", p.kind)
		}
	}
}

func TestRedactLeavesPlainText(t *testing.T) {
	for _, s := range []string{
		"go test ./... -run TestRefund -count=1",
		"the token bucket refills every second",
		"password policy: at least 12 characters",
		"https://example.com/path?q=1",
		"sk-short",
		"",
	} {
		if got, n := Redact(s); got != s || n != 0 {
			t.Errorf("Redact(%q) = %q, %d; want it unchanged", s, got, n)
		}
	}
}

func TestRedactCountsOnce(t *testing.T) {
	got, n := Redact("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")
	if got != "OPENAI_API_KEY=[REDACTED:openai_key]" || n != 1 {
		t.Errorf("got %q, %d redactions", got, n)
	}
}
