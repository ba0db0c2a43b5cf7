// Package staticbin builds this module's commands as static binaries to mount into sandboxes.
package staticbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build builds the command pkg (./cmd/NAME) of the module at moduleDir
// into out: static (CGO_ENABLED=0), for linux, stripped, mode 0755, so it
// runs inside any sandbox image. Tests call it at run time; a deployment
// builds once (`make build` puts every command in bin/). The Go build
// cache makes a repeat build cheap.
func Build(ctx context.Context, moduleDir, pkg, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", abs, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("staticbin: build %s: %w: %s", pkg, err, b)
	}
	if err := os.Chmod(abs, 0o755); err != nil {
		return fmt.Errorf("staticbin: build %s: %w", pkg, err)
	}
	return nil
}
