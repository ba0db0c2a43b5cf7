package sandbox_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/agentaudit/agentaudit/internal/sandbox"
)

func TestDefaultProfile(t *testing.T) {
	p := sandbox.DefaultProfile()
	want := &sandbox.Profile{
		Name:           "default",
		Workspace:      "/workspace",
		ProtectedPaths: []string{},
		TmpSize:        256 << 20,
		Rlimits:        sandbox.Rlimits{NoFile: 1024, NProc: 256, AS: 2 << 30, CPU: sandbox.Duration(10 * time.Minute), FSize: 1 << 30},
		Env: map[string]string{
			"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp",
			"LANG": "C.UTF-8", "TERM": "dumb", "TMPDIR": "/tmp", "GIT_CONFIG_NOSYSTEM": "1",
		},
		ExecEnv:        []string{"GIT_AUTHOR_EMAIL", "GIT_AUTHOR_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_NAME", "TERM"},
		ExecTimeout:    sandbox.Duration(time.Minute),
		MaxExecTimeout: sandbox.Duration(30 * time.Minute),
		OutputLimit:    64 << 10,
	}
	if diff := cmp.Diff(want, p, cmpopts.IgnoreUnexported(sandbox.Profile{})); diff != "" {
		t.Errorf("default profile (-want +got):\n%s", diff)
	}
	h := sha256.Sum256(sandbox.DefaultProfileYAML())
	if got := p.SHA256(); got != hex.EncodeToString(h[:]) {
		t.Errorf("SHA256 = %s; want the sha256 of the YAML", got)
	}
	if diff := cmp.Diff([]string{".git/hooks/", ".git/config", ".env*"}, p.Protected()); diff != "" {
		t.Errorf("protected (-want +got):\n%s", diff)
	}
}

// edit returns the default profile's YAML with one line replaced.
func edit(old, new string) string {
	y := string(sandbox.DefaultProfileYAML())
	if !strings.Contains(y, old) {
		panic("default profile has no " + old)
	}
	return strings.Replace(y, old, new, 1)
}

func TestParseProfileValidation(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; "" means valid
	}{
		{"default", edit("name: default", "name: default"), ""},
		{"units", edit("tmp_size: 256MiB", "tmp_size: 1g"), ""},
		{"plain bytes", edit("tmp_size: 256MiB", "tmp_size: 1048576"), ""},
		{"extra protected globs", edit("protected_paths: []", "protected_paths: [secrets/*, deploy/, '*.pem']"), ""},
		{"unknown field", edit("name: default", "name: default\nprivileged: true"), "field privileged not found"},
		{"misspelled rlimit", edit("nofile: 1024", "nofiles: 1024"), "field nofiles not found"},
		{"second document", edit("name: default", "name: default") + "---\nname: x\n", "more than one YAML document"},
		{"empty", "", "empty document"},
		{"bad name", edit("name: default", "name: 'a b'"), "name"},
		{"relative workspace", edit("workspace: /workspace", "workspace: workspace"), "workspace"},
		{"root workspace", edit("workspace: /workspace", "workspace: /"), "workspace"},
		{"workspace under /etc", edit("workspace: /workspace", "workspace: /etc/ws"), "may not be under /etc"},
		{"unclean workspace", edit("workspace: /workspace", "workspace: /a/../workspace"), "workspace"},
		{"protected at the root", edit("protected_paths: []", "protected_paths: [/.env*, /secrets/]"), ""},
		{"protected absolute", edit("protected_paths: []", "protected_paths: [//etc/passwd]"), "protected_paths"},
		{"protected ** in a segment", edit("protected_paths: []", "protected_paths: ['a**']"), "whole path segment"},
		{"protected escapes", edit("protected_paths: []", "protected_paths: [../x]"), "protected_paths"},
		{"protected bad glob", edit("protected_paths: []", "protected_paths: ['[x']"), "syntax error in pattern"},
		{"protected comma", edit("protected_paths: []", "protected_paths: ['a,ro']"), "protected_paths"},
		{"tmp too small", edit("tmp_size: 256MiB", "tmp_size: 1KiB"), "tmp_size"},
		{"bad unit", edit("tmp_size: 256MiB", "tmp_size: 1TB"), "unknown unit"},
		{"negative size", edit("tmp_size: 256MiB", "tmp_size: -1"), `size "-1"`},
		{"nproc zero", edit("nproc: 256", "nproc: 0"), "rlimits.nproc"},
		{"nproc above hard limit", edit("nproc: 256", "nproc: 100000"), "rlimits.nproc"},
		{"nofile missing", edit("  nofile: 1024\n", ""), "rlimits.nofile"},
		{"as too small", edit("as: 2GiB", "as: 1MiB"), "rlimits.as"},
		{"cpu fractional", edit("cpu: 10m", "cpu: 1500ms"), "rlimits.cpu"},
		{"cpu bad", edit("cpu: 10m", "cpu: forever"), "invalid duration"},
		{"fsize tiny", edit("fsize: 1GiB", "fsize: 10"), "rlimits.fsize"},
		{"no PATH", edit("  PATH: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n", ""), "PATH"},
		{"bad env name", edit("LANG: C.UTF-8", "LANG: C.UTF-8\n  BAD-NAME: x"), "not a variable name"},
		{"bad exec_env", edit("exec_env: [TERM,", "exec_env: [A=B,"), "exec_env"},
		{"duplicate exec_env", edit("exec_env: [TERM,", "exec_env: [TERM, TERM,"), "listed twice"},
		{"timeout above max", edit("exec_timeout: 60s", "exec_timeout: 1h"), "exceeds max_exec_timeout"},
		{"zero timeout", edit("exec_timeout: 60s", "exec_timeout: 0s"), "must be positive"},
		{"output tiny", edit("output_limit: 64KiB", "output_limit: 10"), "output_limit"},
		{"wrong type", edit("tmp_size: 256MiB", "tmp_size: [1]"), "want a scalar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := sandbox.ParseProfile([]byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseProfile: %v", err)
				}
				if p.SHA256() == "" {
					t.Errorf("no sha256")
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseProfile succeeded; want an error containing %q", tt.wantErr)
			}
			if !errors.Is(err, sandbox.ErrInvalidProfile) {
				t.Errorf("err %v does not wrap ErrInvalidProfile", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v; want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want sandbox.Size
		ok   bool
	}{
		{"0", 0, true}, {"512", 512, true}, {"64KiB", 64 << 10, true}, {"64k", 64 << 10, true},
		{"2GiB", 2 << 30, true}, {"3MB", 3 << 20, true}, {"1TB", 0, false}, {"", 0, false},
		{"MiB", 0, false}, {"1.5GiB", 0, false}, {"99999999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := sandbox.ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
