package main

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/envflag"
)

// TestLoadConfig: --egress-policy overrides EGRESS_POLICY, which is the
// default; without either egress stays off. Variables without a flag are
// read, and one that does not parse is an error naming it.
func TestLoadConfig(t *testing.T) {
	cases := []struct {
		name, env, timeout string
		args               []string
		want               string
		wantTimeout        time.Duration
		wantErr            string
	}{
		{name: "off"},
		{name: "env", env: "/etc/agentaudit/egress.yaml", want: "/etc/agentaudit/egress.yaml"},
		{name: "flag", args: []string{"--egress-policy", "/x/egress.yaml"}, want: "/x/egress.yaml"},
		{name: "flag beats env", env: "/etc/agentaudit/egress.yaml", args: []string{"--egress-policy", "/x/egress.yaml"}, want: "/x/egress.yaml"},
		{name: "duration", timeout: "90s", wantTimeout: 90 * time.Second},
		{name: "bad duration", timeout: "ten", wantErr: "APPROVAL_TIMEOUT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EGRESS_POLICY", tc.env)
			t.Setenv("APPROVAL_TIMEOUT", tc.timeout)
			t.Setenv("EGRESS_SOCKET_ROOT", "/run/test-egress")
			fs := envflag.New("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg, _ := loadConfig(fs)
			err := fs.Parse(tc.args)
			if tc.wantErr != "" {
				var e *envflag.Error
				if !errors.As(err, &e) || e.Name != tc.wantErr {
					t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.EgressPolicy != tc.want || cfg.EgressSocketRoot != "/run/test-egress" || cfg.ApprovalTimeout != tc.wantTimeout {
				t.Errorf("EgressPolicy %q, EgressSocketRoot %q, ApprovalTimeout %s; want %q, %s",
					cfg.EgressPolicy, cfg.EgressSocketRoot, cfg.ApprovalTimeout, tc.want, tc.wantTimeout)
			}
		})
	}
}
