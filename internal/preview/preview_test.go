package preview

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/events"
)

func TestUnifiedDiff(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"new file", "", "one\ntwo\n", "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+one\n+two\n"},
		{"change in the middle", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n",
			"--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "X\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\nY\n",
			"--- a\n+++ b\n@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+Y\n"},
		{"no newline at end", "a\n", "a\nb", "--- a\n+++ b\n@@ -1 +1,2 @@\n a\n+b\n\\ No newline at end of file\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, UnifiedDiff("a", "b", tc.old, tc.new)); diff != "" {
				t.Errorf("-want +got\n%s", diff)
			}
		})
	}
}

func TestFileWrite(t *testing.T) {
	secret := "AKIAIOSFODNN7EXAMPLE"
	tests := []struct {
		name   string
		cur    string
		exists bool
		next   string
		check  func(t *testing.T, p *events.WritePreview)
	}{
		{"new file", "", false, "hello\n", func(t *testing.T, p *events.WritePreview) {
			if !p.NewFile || p.Content != "hello\n" || !strings.HasPrefix(p.Diff, "--- /dev/null\n+++ b/workspace/x.txt\n") {
				t.Errorf("%+v", p)
			}
		}},
		{"secret redacted in content and diff", "key = old\n", true, "aws = " + secret + "\n", func(t *testing.T, p *events.WritePreview) {
			if strings.Contains(p.Content, secret) || strings.Contains(p.Diff, secret) || p.Redacted == 0 {
				t.Errorf("secret shown: %+v", p)
			}
			if !strings.Contains(p.Diff, "[REDACTED:aws_access_key]") {
				t.Errorf("diff %q", p.Diff)
			}
		}},
		{"binary", "", true, "\x7fELF\x00\x01", func(t *testing.T, p *events.WritePreview) {
			if !p.Binary || p.Content != "" || p.Diff != "" || p.ContentLength != 6 || len(p.ContentSHA256) != 64 {
				t.Errorf("%+v", p)
			}
		}},
		{"bounded", "", false, strings.Repeat("line of text\n", 20000), func(t *testing.T, p *events.WritePreview) {
			if !p.Truncated || len(p.Content) > events.MaxPreviewContent || len(p.Diff) > events.MaxPreviewDiff {
				t.Errorf("truncated %v, content %d, diff %d", p.Truncated, len(p.Content), len(p.Diff))
			}
			if p.ContentLength != 13*20000 {
				t.Errorf("content_length %d", p.ContentLength)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := FileWrite("/workspace/x.txt", []byte(tc.cur), tc.exists, []byte(tc.next))
			tc.check(t, p)
			// The preview is valid in an event.
			env, err := events.New(events.ApprovalRequested{Kind: events.ApprovalKindToolCall, Summary: "write", Reason: "asks",
				ReasonCode: events.ReasonNeedsApproval, Risk: events.RiskHigh, Requester: events.Actor{Type: events.ActorAgent, ID: "a"},
				Scopes: []events.ApprovalScope{events.ScopeOnce}, ExpiresAt: events.At(t0), Preview: p},
				events.WithEventID("1900478734012583936"), events.WithSession("s", "r"), events.WithTenant("acme"), events.WithActor(events.ActorSystem, "r"))
			if err != nil {
				t.Fatal(err)
			}
			if err := events.NewChain(env.Key()).Stamp(env); err != nil {
				t.Fatalf("preview does not validate: %v", err)
			}
		})
	}
}

// FuzzUnifiedDiff checks that the edit script behind every diff rebuilds
// both sides, whatever the input.
func FuzzUnifiedDiff(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\nd")
	f.Add("", "x")
	f.Fuzz(func(t *testing.T, old, new string) {
		a, b := splitLines(old), splitLines(new)
		var ra, rb []line
		for _, o := range diffLines(a, b) {
			switch o.kind {
			case ' ':
				ra, rb = append(ra, a[o.a]), append(rb, b[o.b])
			case '-':
				ra = append(ra, a[o.a])
			case '+':
				rb = append(rb, b[o.b])
			}
		}
		if !cmp.Equal(a, ra, cmp.AllowUnexported(line{})) || !cmp.Equal(b, rb, cmp.AllowUnexported(line{})) {
			t.Fatalf("edit script does not rebuild the inputs")
		}
		_ = UnifiedDiff("a", "b", old, new)
	})
}

// TestCurrentFile: the file a write would replace is read inside the
// workspace only; a symlink out of it reads as no file.
func TestCurrentFile(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	os.MkdirAll(filepath.Join(ws, "app"), 0o755)
	os.WriteFile(filepath.Join(ws, "app", "a.txt"), []byte("in the workspace\n"), 0o644)
	os.Symlink(outside, filepath.Join(ws, "link"))
	os.Symlink("/", filepath.Join(ws, "rootlink"))
	tests := []struct {
		rel    string
		want   string
		exists bool
	}{
		{"app/a.txt", "in the workspace\n", true},
		{"app/missing.txt", "", false},
		{"link", "", false},
		{"rootlink/etc/passwd", "", false},
		{"../" + filepath.Base(filepath.Dir(outside)) + "/secret", "", false},
		{"app", "", false},
	}
	for _, tc := range tests {
		got, ok := CurrentFile(ws, tc.rel)
		if string(got) != tc.want || ok != tc.exists {
			t.Errorf("CurrentFile(%q) = %q, %v; want %q, %v", tc.rel, got, ok, tc.want, tc.exists)
		}
	}
}

// t0 is the expiry of the requests the previews are put in.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
