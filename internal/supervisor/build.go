package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build builds cmd/sandbox-supervisor from the module at moduleDir into out
// as a static binary, mode 0755. Tests call it at run time; a deployment
// builds it once (`make build` puts it in bin/). The Go build cache makes
// a repeat build cheap.
func Build(ctx context.Context, moduleDir, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", abs, "./cmd/sandbox-supervisor")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("supervisor: build sandbox-supervisor: %w: %s", err, b)
	}
	return os.Chmod(abs, 0o755)
}
