package main

import (
	"flag"
	"io"
	"testing"
)

// TestLoadConfigEgressPolicy: --egress-policy overrides EGRESS_POLICY,
// which is the default; without either egress stays off.
func TestLoadConfigEgressPolicy(t *testing.T) {
	cases := []struct {
		name, env string
		args      []string
		want      string
	}{
		{"off", "", nil, ""},
		{"env", "/etc/agentaudit/egress.yaml", nil, "/etc/agentaudit/egress.yaml"},
		{"flag", "", []string{"--egress-policy", "/x/egress.yaml"}, "/x/egress.yaml"},
		{"flag beats env", "/etc/agentaudit/egress.yaml", []string{"--egress-policy", "/x/egress.yaml"}, "/x/egress.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EGRESS_POLICY", tc.env)
			t.Setenv("EGRESS_SOCKET_ROOT", "/run/test-egress")
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg, _, err := loadConfig(fs)
			if err != nil {
				t.Fatal(err)
			}
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if cfg.EgressPolicy != tc.want || cfg.EgressSocketRoot != "/run/test-egress" {
				t.Errorf("EgressPolicy %q, EgressSocketRoot %q; want %q", cfg.EgressPolicy, cfg.EgressSocketRoot, tc.want)
			}
		})
	}
}
