package testenv_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/podmantest"
)

// TestPodmanSmoke checks that the rootless service testenv/up starts can run
// the sandbox image without a network and report an exec's output and exit
// code through the same bindings the sandbox package uses.
func TestPodmanSmoke(t *testing.T) {
	uri := testenv.Podman(t)
	image := testenv.Get(t, "SANDBOX_IMAGE")

	// Not t.Context(): it is cancelled before the cleanup that removes the
	// container runs.
	conn, err := bindings.NewConnection(context.Background(), uri)
	if err != nil {
		t.Fatalf("connect to %s: %v", uri, err)
	}

	s := specgen.NewSpecGenerator(image, false)
	s.Name = fmt.Sprintf("agentaudit-smoke-%d", time.Now().UnixNano())
	s.Command = []string{"sleep", "infinity"}
	s.NetNS = specgen.Namespace{NSMode: specgen.NoNetwork}
	// podman_down removes containers carrying this label if a run dies.
	s.Labels = map[string]string{"agentaudit.session": "testenv-smoke"}
	// Rlimits go explicitly, with lowercase names, under the service's hard limit.
	s.Rlimits = []specs.POSIXRlimit{
		{Type: "nofile", Soft: 256, Hard: 256},
		{Type: "nproc", Soft: 512, Hard: 512},
	}

	start := time.Now()
	created, err := containers.CreateWithSpec(conn, s, nil)
	if err != nil {
		t.Fatalf("create container from %s: %v", image, err)
	}
	t.Cleanup(func() {
		if _, err := containers.Remove(conn, created.ID, new(containers.RemoveOptions).WithForce(true).WithTimeout(0)); err != nil {
			t.Errorf("remove container %s: %v", created.ID, err)
		}
	})
	if err := containers.Start(conn, created.ID, nil); err != nil {
		t.Fatalf("start container: %v", err)
	}
	t.Logf("container create+start: %v", time.Since(start).Round(time.Millisecond))

	t.Run("exec output and exit code", func(t *testing.T) {
		start := time.Now()
		got := podmantest.Exec(t, conn, created.ID, "sh", "-c", "echo hello; echo err >&2; exit 3")
		t.Logf("exec round trip: %v", time.Since(start).Round(time.Millisecond))
		want := podmantest.Result{Stdout: "hello\n", Stderr: "err\n", ExitCode: 3}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("exec result (-want +got):\n%s", diff)
		}
	})

	t.Run("rlimits applied", func(t *testing.T) {
		got := podmantest.Exec(t, conn, created.ID, "bash", "-c", "ulimit -n; ulimit -u")
		want := podmantest.Result{Stdout: "256\n512\n"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ulimit (-want +got):\n%s", diff)
		}
	})

	t.Run("no network", func(t *testing.T) {
		// A port that is open on the host's loopback must be closed inside:
		// the container's 127.0.0.1 is its own namespace's.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		script := fmt.Sprintf(`
import socket
ifaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]]
print("interfaces:", " ".join(sorted(ifaces)))
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("127.0.0.1", %d))
    print("connect: ok")
except OSError as e:
    print("connect:", type(e).__name__)
`, port)
		got := podmantest.Exec(t, conn, created.ID, "python3", "-c", script)
		want := podmantest.Result{Stdout: "interfaces: lo\nconnect: ConnectionRefusedError\n"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("network inside the sandbox (-want +got):\n%s", diff)
		}
	})
}
