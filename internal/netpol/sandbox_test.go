//go:build remote

// The in-container tests need the Podman bindings, which compile only
// with the remote build tags (`make test` sets them).

package netpol

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/specgen"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/podmantest"
)

// gitRefs is what the test server offers as a repository: the dumb HTTP
// protocol's info/refs, enough for `git ls-remote`.
const gitRefs = "1111111111111111111111111111111111111111\trefs/heads/main\n"

// TestSandboxEgress runs real clients (curl, python, git) in a sandbox
// container with no network, whose only way out is the bridge to this
// proxy. Everything they reach is a test server on the host's 127.0.0.1;
// denied destinations resolve (in the proxy's stub resolver) to metadata
// and private addresses that are never dialed.
func TestSandboxEgress(t *testing.T) {
	uri := testenv.Podman(t)
	image := testenv.Get(t, "SANDBOX_IMAGE")
	uid, err := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
	if err != nil {
		t.Fatalf("PODMAN_UID: %v", err)
	}
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// The Podman user must reach the bridge and the socket: t.TempDir is
	// root's and 0700, so both live in their own directories under /tmp.
	binDir := searchableTempDir(t, "agentaudit-bridge-", 0o755)
	bridge := filepath.Join(binDir, "egress-bridge")
	start := time.Now()
	if err := BuildBridge(ctx, root, bridge); err != nil {
		t.Fatal(err)
	}
	t.Logf("built egress-bridge in %v", time.Since(start).Round(time.Millisecond))
	socketRoot := searchableTempDir(t, "agentaudit-egress-", 0o711)

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s %s", r.Method, r.URL.Path)
	})
	mux.HandleFunc("/repo.git/info/refs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, gitRefs)
	})
	plain := httptest.NewServer(mux)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	hp := uint16(plain.Listener.Addr().(*net.TCPAddr).Port)
	tp := uint16(tlsSrv.Listener.Addr().(*net.TCPAddr).Port)

	pol, err := Load([]byte(testPolicyYAML(hp, tp)))
	if err != nil {
		t.Fatal(err)
	}
	res := &stubResolver{answers: map[string][]string{
		"allowed.test.": {"127.0.0.1"},
		"ask.test.":     {"127.0.0.1"},
		"meta.test.":    {"169.254.169.254"},
		"private.test.": {"10.0.0.5"},
	}}
	ids, err := events.NewIDGen(2)
	if err != nil {
		t.Fatal(err)
	}
	audit := newMemAuditor(t)
	appr := newChanApprover()
	p, err := NewProxy(NewDecider(pol, WithResolver(res)),
		Session{ID: "sess-sandbox-egress", Tenant: "acme", Agent: &events.Agent{Name: "test-agent"}, IDs: ids},
		audit, WithApprover(appr), WithApprovalTimeout(2*time.Second), WithProxyLogger(testenv.Logger(t, slog.LevelDebug)))
	if err != nil {
		t.Fatal(err)
	}
	inner := p.dialContext
	p.dialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("proxy tried to dial %q", addr)
			return nil, fmt.Errorf("test: refused dial to %s", addr)
		}
		return inner(ctx, network, addr)
	}
	sp, err := StartSession(SandboxConfig{SocketRoot: socketRoot, BridgePath: bridge, UID: uid, GID: uid}, p)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sp.Close(context.Background()); err != nil {
			t.Errorf("close session proxy: %v", err)
		}
		if _, err := os.Stat(sp.SocketDir()); !os.IsNotExist(err) {
			t.Errorf("socket dir left behind: %v", err)
		}
	}()

	conn, err := bindings.NewConnection(context.Background(), uri)
	if err != nil {
		t.Fatalf("connect to %s: %v", uri, err)
	}
	ctrID := startBridgeContainer(t, conn, image, sp)
	run := func(t *testing.T, cmd ...string) podmantest.Result {
		t.Helper()
		return podmantest.Exec(t, conn, ctrID, cmd...)
	}
	// The bridge is the container's main process; wait until it listens.
	if r := run(t, "bash", "-c", `for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/3128) 2>/dev/null && exit 0; sleep 0.05; done; exit 1`); r.ExitCode != 0 {
		t.Fatalf("bridge not listening: %+v", r)
	}

	// lastEvent returns the newest event for host, waiting for it.
	lastEvent := func(t *testing.T, host, phase string) egressView {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			audit.mu.Lock()
			for i := len(audit.evs) - 1; i >= 0; i-- {
				if v := view(audit.evs[i]); v.Host == host && v.Phase == phase {
					audit.mu.Unlock()
					return v
				}
			}
			audit.mu.Unlock()
			if time.Now().After(deadline) {
				t.Fatalf("no %s event for %s", phase, host)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	t.Run("curl plain HTTP allowed", func(t *testing.T) {
		audit.reset()
		r := run(t, "curl", "-sS", "--max-time", "10", fmt.Sprintf("http://allowed.test:%d/curl", hp))
		if r.ExitCode != 0 || r.Stdout != "hello GET /curl" {
			t.Fatalf("%+v", r)
		}
		if ev := lastEvent(t, "allowed.test", "closed"); ev.Status != 200 || !ev.Bytes || ev.IP != "127.0.0.1" {
			t.Errorf("closing event %+v", ev)
		}
	})

	t.Run("curl HTTPS allowed", func(t *testing.T) {
		audit.reset()
		r := run(t, "curl", "-sS", "-k", "--max-time", "10", fmt.Sprintf("https://allowed.test:%d/curl", tp))
		if r.ExitCode != 0 || r.Stdout != "hello GET /curl" {
			t.Fatalf("%+v", r)
		}
		if ev := lastEvent(t, "allowed.test", "decision"); ev.SNI != "allowed.test" || ev.Decision != "allow" || ev.Method != "CONNECT" {
			t.Errorf("decision event %+v", ev)
		}
	})

	t.Run("python urllib HTTPS allowed", func(t *testing.T) {
		script := fmt.Sprintf(`import ssl, urllib.request
ctx = ssl._create_unverified_context()
print(urllib.request.urlopen("https://allowed.test:%d/py", context=ctx, timeout=10).read().decode())`, tp)
		if r := run(t, "python3", "-c", script); r.ExitCode != 0 || r.Stdout != "hello GET /py\n" {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("git ls-remote", func(t *testing.T) {
		for _, u := range []string{fmt.Sprintf("http://allowed.test:%d/repo.git", hp), fmt.Sprintf("https://allowed.test:%d/repo.git", tp)} {
			r := run(t, "git", "-c", "http.sslVerify=false", "ls-remote", u)
			if r.ExitCode != 0 || r.Stdout != gitRefs {
				t.Errorf("git ls-remote %s: %+v", u, r)
			}
		}
	})

	t.Run("denied with reason", func(t *testing.T) {
		r := run(t, "curl", "-sS", "-o", "/dev/null", "-D", "-", "--max-time", "10", fmt.Sprintf("http://meta.test:%d/latest/meta-data/", hp))
		if r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, "HTTP/1.1 403 Forbidden\r\n") || !strings.Contains(r.Stdout, "X-Deny-Reason: metadata_address\r\n") {
			t.Errorf("metadata: %+v", r)
		}
		r = run(t, "curl", "-sS", "-k", "-o", "/dev/null", "-w", "%{http_connect}", "--max-time", "10", fmt.Sprintf("https://private.test:%d/", tp))
		if r.ExitCode != 56 || r.Stdout != "403" {
			t.Errorf("private via CONNECT: %+v", r)
		}
		if ev := lastEvent(t, "private.test", "decision"); ev.Reason != ReasonPrivateAddress || ev.IP != "10.0.0.5" {
			t.Errorf("event %+v", ev)
		}
	})

	t.Run("no way around the proxy", func(t *testing.T) {
		// The container's loopback is its own: the host's test server is
		// not there, and there is no other interface and no DNS.
		r := run(t, "curl", "-sS", "--noproxy", "*", "--max-time", "5", fmt.Sprintf("http://127.0.0.1:%d/", hp))
		if r.ExitCode != 7 {
			t.Errorf("direct to loopback port: %+v", r)
		}
		r = run(t, "curl", "-sS", "--noproxy", "*", "--max-time", "5", fmt.Sprintf("http://allowed.test:%d/", hp))
		if r.ExitCode != 6 {
			t.Errorf("direct by name: %+v", r)
		}
		r = run(t, "python3", "-c", `print(" ".join(sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])))`)
		if r.Stdout != "lo\n" {
			t.Errorf("interfaces: %+v", r)
		}
	})

	t.Run("SNI mismatch closed", func(t *testing.T) {
		audit.reset()
		// curl sends CONNECT allowed.test but SNI evil.test.
		r := run(t, "curl", "-sS", "-k", "--max-time", "10", "--connect-to", fmt.Sprintf("evil.test:%d:allowed.test:%d", tp, tp), fmt.Sprintf("https://evil.test:%d/", tp))
		if r.ExitCode != 35 {
			t.Errorf("curl: %+v", r)
		}
		if ev := lastEvent(t, "allowed.test", "decision"); ev.Reason != ReasonSNIMismatch || ev.SNI != "evil.test" {
			t.Errorf("event %+v", ev)
		}
		script := fmt.Sprintf(`import socket, ssl
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(b"CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode())
try:
    ssl._create_unverified_context().wrap_socket(s, server_hostname="other.test").do_handshake()
    print("handshake: ok")
except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError):
    print("handshake: closed")`, tp, tp)
		r = run(t, "python3", "-c", script)
		if r.Stdout != "HTTP/1.1 200 Connection established\nhandshake: closed\n" {
			t.Errorf("python: %+v", r)
		}
		if ev := lastEvent(t, "allowed.test", "decision"); ev.Reason != ReasonSNIMismatch || ev.SNI != "other.test" {
			t.Errorf("event %+v", ev)
		}
	})

	t.Run("ask waits then passes, or expires", func(t *testing.T) {
		audit.reset()
		type out struct {
			r    podmantest.Result
			took time.Duration
		}
		done := make(chan out, 1)
		curl := func() {
			start := time.Now()
			r := run(t, "curl", "-sS", "-k", "-w", " %{http_code}", "--max-time", "20", fmt.Sprintf("https://ask.test:%d/asked", tp))
			done <- out{r, time.Since(start)}
		}
		go curl()
		req := <-appr.reqs
		time.Sleep(500 * time.Millisecond) // the human takes a moment
		appr.answers <- Approval{Approved: true, Scope: events.ScopeOnce, ApprovalID: "appr-ctr"}
		got := <-done
		if got.r.ExitCode != 0 || got.r.Stdout != "hello GET /asked 200" || got.took < 500*time.Millisecond {
			t.Errorf("approved: %+v after %v", got.r, got.took)
		}
		if req.Host != "ask.test" || req.Method != "CONNECT" {
			t.Errorf("approval request %+v", req)
		}
		if ev := lastEvent(t, "ask.test", "closed"); ev.Reason != ReasonApproved || ev.ApprovalID != "appr-ctr" || !ev.Bytes {
			t.Errorf("closing event %+v", ev)
		}
		go curl()
		<-appr.reqs // nobody answers
		got = <-done
		if got.r.ExitCode != 56 || !strings.Contains(got.r.Stderr, "403") || got.took < 2*time.Second {
			t.Errorf("unanswered: %+v after %v", got.r, got.took)
		}
		if ev := lastEvent(t, "ask.test", "decision"); ev.Reason != ReasonApprovalExpired {
			t.Errorf("event %+v", ev)
		}
	})

	// Every connection the bridge made was a client socket passed across
	// the container's network namespace, none relayed.
	st := p.Stats()
	if st.Passed.Load() == 0 || st.Passed.Load() != st.Accepted.Load() {
		t.Errorf("%d of %d connections passed by the bridge, want all", st.Passed.Load(), st.Accepted.Load())
	}
}

func searchableTempDir(t *testing.T, pattern string, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startBridgeContainer starts a sandbox-like container (no network,
// keep-id, read-only root) whose main process is the egress bridge, with
// the session's mounts and proxy environment. internal/sandbox cannot set
// the main process yet; see the package documentation of the bridge.
func startBridgeContainer(t *testing.T, conn context.Context, image string, sp *SessionProxy) string {
	t.Helper()
	s := specgen.NewSpecGenerator(image, false)
	s.Name = fmt.Sprintf("agentaudit-netpol-%d", time.Now().UnixNano())
	s.Command = sp.Command()
	s.NetNS = specgen.Namespace{NSMode: specgen.NoNetwork}
	s.UserNS = specgen.Namespace{NSMode: specgen.KeepID}
	ro := true
	s.ReadOnlyFilesystem = &ro
	s.Labels = map[string]string{"agentaudit.session": "netpol-sandbox-test"}
	s.Rlimits = []specs.POSIXRlimit{{Type: "nofile", Soft: 1024, Hard: 1024}, {Type: "nproc", Soft: 256, Hard: 256}}
	s.Env = map[string]string{"HOME": "/tmp", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GIT_CONFIG_NOSYSTEM": "1"}
	for k, v := range sp.Env() {
		s.Env[k] = v
	}
	for _, m := range sp.Mounts() {
		opts := []string{"rbind"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Type: "bind", Source: m.Source, Destination: m.Destination, Options: opts})
	}
	created, err := containers.CreateWithSpec(conn, s, nil)
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() {
		if _, err := containers.Remove(conn, created.ID, new(containers.RemoveOptions).WithForce(true).WithTimeout(0)); err != nil {
			t.Errorf("remove container: %v", err)
		}
	})
	if err := containers.Start(conn, created.ID, nil); err != nil {
		t.Fatalf("start container: %v", err)
	}
	return created.ID
}
