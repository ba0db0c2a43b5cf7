package otlp

import (
	"regexp"
	"strings"
)

// A secretPattern finds one kind of obvious secret. hint is a substring
// (lower case) every match contains, tested first so that text without it
// costs no regexp; keep, when set, is the number of the submatch that
// stays (the name in "password=..."), the rest becomes the marker.
type secretPattern struct {
	kind string
	hint []string
	re   *regexp.Regexp
	keep int
}

// secretPatterns are tried in order; a later pattern does not see what an
// earlier one replaced. Each has a test in redact_test.go.
var secretPatterns = []secretPattern{
	{kind: "private_key", hint: []string{"private key"},
		re: regexp.MustCompile(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|$)`)},
	{kind: "anthropic_key", hint: []string{"sk-ant-"}, re: regexp.MustCompile(`sk-ant-[A-Za-z0-9_-]{20,}`)},
	{kind: "openai_key", hint: []string{"sk-"}, re: regexp.MustCompile(`\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}`)},
	{kind: "github_token", hint: []string{"gh", "github_pat_"},
		re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})`)},
	{kind: "gitlab_token", hint: []string{"glpat-"}, re: regexp.MustCompile(`\bglpat-[A-Za-z0-9_-]{20,}`)},
	{kind: "slack_token", hint: []string{"xox"}, re: regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
	{kind: "aws_access_key", hint: []string{"akia", "asia"}, re: regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{kind: "google_api_key", hint: []string{"aiza"}, re: regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}`)},
	{kind: "stripe_key", hint: []string{"_live_", "_test_"}, re: regexp.MustCompile(`\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}`)},
	{kind: "jwt", hint: []string{"eyj"}, re: regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)},
	{kind: "bearer", hint: []string{"bearer"}, keep: 1, re: regexp.MustCompile(`(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}`)},
	{kind: "url_password", hint: []string{"://"}, keep: 1, re: regexp.MustCompile(`([a-z][a-z0-9+.-]*://[^\s:@/]+:)[^\s@/]+@`)},
	{kind: "assignment", hint: []string{"pass", "secret", "token", "key", "credential"}, keep: 1,
		re: regexp.MustCompile(`(?i)(\b[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)["']?\s*[=:]\s*)(?:"[^"\n]{4,}"|'[^'\n]{4,}'|[^\s"',;&|]{6,})`)},
}

// minSecret is the shortest text any pattern matches ("a://b:c@", a URL
// password): shorter text is not scanned.
const minSecret = 8

// Redact replaces obvious secrets in s (API keys, tokens, private keys,
// passwords in assignments and URLs) by "[REDACTED:kind]" and says how many
// it replaced. It is for text about to be stored; it is not a guarantee.
func Redact(s string) (string, int) {
	if len(s) < minSecret {
		return s, 0
	}
	lower := ""
	n := 0
	for i := range secretPatterns {
		p := &secretPatterns[i]
		if lower == "" {
			lower = strings.ToLower(s)
		}
		if !containsAny(lower, p.hint) {
			continue
		}
		marker := "[REDACTED:" + p.kind + "]"
		replaced := false
		s = p.re.ReplaceAllStringFunc(s, func(m string) string {
			kept := ""
			if p.keep > 0 {
				if sub := p.re.FindStringSubmatch(m); len(sub) > p.keep {
					kept = sub[p.keep]
				}
			}
			if strings.HasPrefix(m[len(kept):], "[REDACTED:") {
				return m // an earlier pattern's marker
			}
			n++
			replaced = true
			if p.kind == "url_password" {
				return kept + marker + "@"
			}
			return kept + marker
		})
		if replaced {
			lower = ""
		}
	}
	return s, n
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
