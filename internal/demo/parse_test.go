package demo

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseDenial: the status line and X-Deny-Reason of `curl -i` output,
// whatever the line endings and header case.
func TestParseDenial(t *testing.T) {
	cases := []struct {
		name, in       string
		status, reason string
	}{
		{"proxy 403", "HTTP/1.1 403 Forbidden\r\nX-Deny-Reason: loopback_address\r\nContent-Length: 3\r\n\r\nno\n",
			"HTTP/1.1 403 Forbidden", "loopback_address"},
		{"lower-case header", "HTTP/1.1 403 Forbidden\nx-deny-reason:  default_deny \n", "HTTP/1.1 403 Forbidden", "default_deny"},
		{"allowed", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello", "HTTP/1.1 200 OK", ""},
		{"empty", "", "", ""},
		{"reason in the body is not a header", "HTTP/1.1 200 OK\r\n\r\nX-Deny-Reason is a header\n", "HTTP/1.1 200 OK", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, r := parseDenial(tc.in)
			if diff := cmp.Diff([2]string{tc.status, tc.reason}, [2]string{s, r}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseDenial: the sandbox's output is untrusted; parsing it never
// panics and never returns a reason with surrounding space.
func FuzzParseDenial(f *testing.F) {
	f.Add("HTTP/1.1 403 Forbidden\r\nX-Deny-Reason: loopback_address\r\n\r\n")
	f.Add("X-Deny-Reason:\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		_, r := parseDenial(in)
		if len(r) > 0 && (r[0] == ' ' || r[len(r)-1] == ' ') {
			t.Errorf("reason %q not trimmed", r)
		}
	})
}

func TestLastInt(t *testing.T) {
	for in, want := range map[string]int{"49\n": 49, "count()\n\"12\"\n": 12, "": 0, "x\n": 0} {
		if got := lastInt(in); got != want {
			t.Errorf("lastInt(%q) = %d, want %d", in, got, want)
		}
	}
}
