package sandbox_test

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/internal/sandbox"
)

// FuzzParseProfile feeds arbitrary YAML to ParseProfile: it must never
// panic, every error must wrap ErrInvalidProfile, and whatever it accepts
// must hold the invariants Start relies on.
func FuzzParseProfile(f *testing.F) {
	f.Add(sandbox.DefaultProfileYAML())
	f.Add([]byte(edit("protected_paths: []", "protected_paths: ['**/x', 'a/[b]']")))
	f.Add([]byte(edit("tmp_size: 256MiB", "tmp_size: 18446744073709551615")))
	f.Add([]byte("name: x\nrlimits: {nofile: 1}\n"))
	f.Add([]byte("{}"))
	f.Add([]byte("- a\n- b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := sandbox.ParseProfile(data)
		if err != nil {
			if !errors.Is(err, sandbox.ErrInvalidProfile) {
				t.Fatalf("error does not wrap ErrInvalidProfile: %v", err)
			}
			return
		}
		if len(p.SHA256()) != 64 {
			t.Fatalf("accepted profile without a sha256")
		}
		if !path.IsAbs(p.Workspace) || p.Workspace == "/" || path.Clean(p.Workspace) != p.Workspace {
			t.Fatalf("accepted workspace %q", p.Workspace)
		}
		for _, g := range p.Protected() {
			g = strings.TrimPrefix(strings.TrimSuffix(g, "/"), "/") // a leading "/" anchors at the workspace root
			if path.IsAbs(g) || strings.HasPrefix(g, "..") || path.Clean(g) != g {
				t.Fatalf("accepted protected path %q", g)
			}
		}
		if p.Rlimits.NProc == 0 || p.Rlimits.NoFile == 0 || p.Rlimits.AS == 0 || p.Env["PATH"] == "" {
			t.Fatalf("accepted profile without limits: %+v", p.Rlimits)
		}
		if p.ExecTimeout <= 0 || p.ExecTimeout > p.MaxExecTimeout || p.OutputLimit == 0 {
			t.Fatalf("accepted timeouts %v/%v, output %d", p.ExecTimeout, p.MaxExecTimeout, p.OutputLimit)
		}
	})
}
