package detect

import (
	"bytes"
	"strings"
	"testing"
)

// TestTestCommandOneFile runs `detect test FILE`: the file's own tests run,
// with the lists and macros of its directory (common.yaml) resolved, and
// no other file's tests; a file without tests or a path that is neither a
// file nor a directory fails with a message that names it.
func TestTestCommandOneFile(t *testing.T) {
	var all, out, errOut bytes.Buffer
	if code := TestCommand("../../rules", &all, &errOut); code != ExitOK {
		t.Fatalf("detect test rules: exit %d\n%s", code, errOut.String())
	}
	code := TestCommand("../../rules/egress.yaml", &out, &errOut)
	if code != ExitOK {
		t.Fatalf("detect test rules/egress.yaml: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var rows int
	for _, l := range lines[1 : len(lines)-1] {
		if !strings.HasPrefix(l, "egress.") {
			t.Errorf("a test of another file ran: %q", l)
		}
		rows++
	}
	if rows == 0 || strings.Count(all.String(), "\n") <= rows+2 {
		t.Errorf("egress.yaml ran %d tests; the whole directory printed:\n%s", rows, all.String())
	}

	errOut.Reset()
	if code := TestCommand("../../rules/common.yaml", &out, &errOut); code != ExitFail || !strings.Contains(errOut.String(), "has no rule tests") {
		t.Errorf("a file without tests: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := TestCommand("../../rules/missing.yaml", &out, &errOut); code != ExitFail || !strings.Contains(errOut.String(), "missing.yaml") {
		t.Errorf("a missing path: exit %d, stderr %q", code, errOut.String())
	}
}
