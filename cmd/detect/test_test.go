package main

import (
	"testing"

	"github.com/agentaudit/agentaudit/internal/detect"
)

// `detect test -h` prints usage instead of loading a directory named -h,
// and --overrides (or DETECT_OVERRIDES) reaches the loader.
func TestDirCmd(t *testing.T) {
	t.Setenv("DETECT_OVERRIDES", "")
	tests := []struct {
		name string
		args []string
		dir  string
		code int
	}{
		{"help", []string{"-h"}, "", detect.ExitUsage},
		{"no dir", nil, "", detect.ExitUsage},
		{"two dirs", []string{"a", "b"}, "", detect.ExitUsage},
		{"dir", []string{"rules"}, "rules", -1},
		{"overrides", []string{"--overrides", "o.yaml", "rules"}, "rules", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, opts, code := dirCmd("test", tt.args)
			if dir != tt.dir || code != tt.code {
				t.Errorf("got %q %d, want %q %d", dir, code, tt.dir, tt.code)
			}
			if code < 0 && len(opts) != 1 {
				t.Errorf("got %d load options", len(opts))
			}
		})
	}
}
