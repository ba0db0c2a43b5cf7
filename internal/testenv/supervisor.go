package testenv

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/supervisor"
)

var (
	supOnce sync.Once
	supBin  string
	supErr  error
)

// SupervisorBinary builds cmd/sandbox-supervisor once per test process into
// a directory the Podman user can read, and returns its path.
func SupervisorBinary(t testing.TB) string {
	t.Helper()
	supOnce.Do(func() {
		root, err := Root()
		if err != nil {
			supErr = err
			return
		}
		dir, err := os.MkdirTemp("", "agentaudit-supervisor-")
		if err != nil {
			supErr = err
			return
		}
		if supErr = os.Chmod(dir, 0o755); supErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		supBin = filepath.Join(dir, "sandbox-supervisor")
		supErr = supervisor.Build(ctx, root, supBin)
	})
	if supErr != nil {
		t.Fatalf("sandbox supervisor: %v", supErr)
	}
	return supBin
}

// SocketRoot returns a fresh directory (mode 0711, under /tmp so the
// Podman user can traverse it) for per-session sockets, removed when the
// test ends.
func SocketRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agentaudit-sockets-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
