package runner

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/netpol"
)

// egressExample is the egress policy shipped as an example.
const egressExample = "../../deploy/policies/egress.yaml"

// TestEgressExamplePolicy: the shipped example loads and decides as its
// comments say (deny by default, mirrors allowed on 443, paste sites
// denied, docs asked, special ranges blocked).
func TestEgressExamplePolicy(t *testing.T) {
	pol, err := netpol.LoadFile(egressExample)
	if err != nil {
		t.Fatal(err)
	}
	public := []netip.Addr{netip.MustParseAddr("93.184.215.14")} // evaluated only, never dialed
	type verdict struct{ Verdict, Reason, Rule string }
	cases := []struct {
		host  string
		port  uint16
		addrs []netip.Addr
		want  verdict
	}{
		{"pypi-mirror.example.org", 443, public, verdict{"allow", "allowlisted", "package-mirrors"}},
		{"pypi-mirror.example.org", 80, public, verdict{"deny", "default_deny", ""}},
		{"a.git.example.org", 443, public, verdict{"allow", "allowlisted", "source-hosting"}},
		{"paste.example.org", 443, public, verdict{"deny", "denied_by_rule", "paste-sites"}},
		{"api.docs.example.org", 443, public, verdict{"ask", "needs_approval", "docs"}},
		{"unlisted.example.net", 443, public, verdict{"deny", "default_deny", ""}},
		{"git.example.org", 443, []netip.Addr{netip.MustParseAddr("169.254.169.254")}, verdict{"deny", "metadata_address", ""}},
		{"git.example.org", 443, []netip.Addr{netip.MustParseAddr("10.0.0.5")}, verdict{"deny", "private_address", ""}},
	}
	for _, tc := range cases {
		d := pol.Evaluate(netpol.Request{Host: tc.host, Port: tc.port, Scheme: "https"}, tc.addrs)
		if diff := cmp.Diff(tc.want, verdict{string(d.Verdict), d.Reason, d.RuleID}); diff != "" {
			t.Errorf("%s:%d (-want +got):\n%s", tc.host, tc.port, diff)
		}
	}
}

func TestPrepareSocketRoot(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "a", "egress")
	if err := prepareSocketRoot(root, -1); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(root), root} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o711 {
			t.Errorf("%s: mode %v, %v; want 0711", d, fi.Mode().Perm(), err)
		}
	}
	if err := os.Chmod(root, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := prepareSocketRoot(root, -1); err == nil {
		t.Error("a world-writable socket root was accepted")
	}
	closed := filepath.Join(base, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := prepareSocketRoot(filepath.Join(closed, "egress"), 65534); err == nil {
		t.Error("a socket root under a 0700 directory was accepted for another user")
	}
}
