package supervisor

import (
	"context"

	"github.com/agentaudit/agentaudit/internal/staticbin"
)

// Build builds cmd/sandbox-supervisor from the module at moduleDir into out
// as a static binary (see staticbin.Build).
func Build(ctx context.Context, moduleDir, out string) error {
	return staticbin.Build(ctx, moduleDir, "./cmd/sandbox-supervisor", out)
}
