//go:build remote

package netpol

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/eventlog/eventlogtest"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/internal/testenv/faultreport"
	"github.com/agentaudit/agentaudit/internal/testenv/podmantest"
)

// bypassPy runs one request from inside the sandbox, written byte for
// byte (curl would normalise "0x7f.1" to "127.0.0.1" before the proxy
// saw it), and prints the answer's status and X-Deny-Reason.
//
//	via: tcp (the bridge, as every client goes), unix (the mounted proxy
//	     socket itself), or a pass-* mode that hands the proxy a
//	     descriptor of its own choosing.
const bypassPy = `
import os, socket, ssl, sys
via, method, target, authority, sni = sys.argv[1:6]

def answer(s):
    data = b""
    while b"\r\n\r\n" not in data:
        c = s.recv(4096)
        if not c:
            break
        data += c
    if not data:
        return "closed", ""
    lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    reason = next((l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("x-deny-reason:")), "")
    return (parts[1] if len(parts) > 1 else "none"), reason

def unix():
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.settimeout(10)
    u.connect("/agentaudit/egress/proxy.sock")
    return u

marker = [b"\0\r\n\r\n"]
if via == "tcp":
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
elif via == "unix":
    s = unix()
elif via == "pass-socket":
    # Hand the proxy a connected socket of our own, as the bridge does.
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
    s = socket.create_connection(l.getsockname(), timeout=10)
    peer, _ = l.accept()
    u = unix()
    socket.send_fds(u, marker, [peer.fileno()])
    if u.recv(1) != b"\0":
        print("no-ack", ""); sys.exit()
    peer.close(); u.close()
else:
    u = unix()
    if via == "pass-file":
        fds = [os.open("/etc/hostname", os.O_RDONLY)]
    elif via == "pass-listener":
        l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1); fds = [l.fileno()]
    elif via == "pass-udp":
        d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); fds = [d.fileno()]
    elif via == "pass-two":
        l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(2)
        a = socket.create_connection(l.getsockname()); b = socket.create_connection(l.getsockname())
        fds = [a.fileno(), b.fileno()]
    socket.send_fds(u, marker, fds)
    print(*answer(u)); sys.exit()

s.sendall(("%s %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (method, target, authority)).encode())
status, reason = answer(s)
if method == "CONNECT" and status == "200":
    try:
        ctx = ssl._create_unverified_context()
        ctx.wrap_socket(s, server_hostname=sni).do_handshake()
        reason = "handshake-ok"
    except (ssl.SSLError, OSError):
        reason = "tunnel-closed"
print(status, reason)
`

// bypassAttempt is one try at reaching the host's loopback.
type bypassAttempt struct {
	name   string
	via    string // see bypassPy
	method string // GET (absolute URI) or CONNECT
	host   string // as written in the request
	port   uint16
	sni    string // CONNECT: the ClientHello's server name
	want   string // the sandbox's view: status and X-Deny-Reason
	reason string // the deny event's reason code
}

func (a bypassAttempt) args() []string {
	auth := net.JoinHostPort(a.host, strconv.Itoa(int(a.port)))
	if strings.HasPrefix(a.host, "[") {
		auth = a.host + ":" + strconv.Itoa(int(a.port))
	}
	target := auth
	if a.method != http.MethodConnect {
		target = "http://" + auth + "/canary"
	}
	return []string{"python3", "-c", bypassPy, a.via, a.method, target, auth, a.sni}
}

// TestFaultEgressBypass tries to reach services on the host's loopback
// from inside a real sandbox container: every spelling of a loopback
// address, IPv6 forms, names the proxy's (stub) resolver maps to
// loopback, CONNECT to the canary and to Kafka's port, SNI mismatches,
// descriptors passed by hand, and connections that skip the proxy. The
// policy is as careless as it can be without allowing loopback outright:
// it allows every name under bypass.test, and localhost, on the canary's
// port and 9092; the only loopback destination it allows is one other
// server, by name and /32, which the SNI cases target and a sanity check
// reaches. Every attempt must be denied with its reason, its deny event
// must be in Kafka, and the canary (an HTTP server on 127.0.0.1 that
// counts every TCP connection) must see none. No attempt names a
// non-loopback address.
func TestFaultEgressBypass(t *testing.T) {
	uri := testenv.Podman(t)
	image := testenv.Get(t, "SANDBOX_IMAGE")
	uid, err := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
	if err != nil {
		t.Fatalf("PODMAN_UID: %v", err)
	}
	brokers := testenv.Kafka(t)
	root, err := testenv.Root()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var canaryHits atomic.Int64
	canary := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("canary reached: %s %s", r.Method, r.URL)
		fmt.Fprint(w, "canary")
	}))
	canary.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			canaryHits.Add(1)
		}
	}
	canary.Start()
	defer canary.Close()
	cp := uint16(canary.Listener.Addr().(*net.TCPAddr).Port)
	allowed := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "allowed")
	}))
	defer allowed.Close()
	ap := uint16(allowed.Listener.Addr().(*net.TCPAddr).Port)

	pol, err := Load([]byte(fmt.Sprintf(`id: bypass-test
default: deny
rules:
  - id: careless-names
    decision: allow
    hosts: ["*.bypass.test", localhost]
    ports: [%[1]d, 9092]
  - id: allowed-upstream
    decision: allow
    hosts: [allowed.bypass.test]
    cidrs: ["127.0.0.1/32"]
    ports: [%[2]d]
`, cp, ap)))
	if err != nil {
		t.Fatal(err)
	}
	res := &stubResolver{answers: map[string][]string{
		"localhost.":           {"127.0.0.1", "::1"},
		"canary.bypass.test.":  {"127.0.0.1"},
		"v6.bypass.test.":      {"::1"},
		"mapped.bypass.test.":  {"::ffff:127.0.0.1"},
		"other.bypass.test.":   {"127.0.0.2"},
		"zero.bypass.test.":    {"0.0.0.0"},
		"allowed.bypass.test.": {"127.0.0.1"},
	}}

	topics := eventlogtest.Topics(t, brokers)
	prod, err := eventlog.NewProducer(ctx, brokers, "netpol-bypass", eventlog.WithTopics(topics),
		eventlog.WithProducerLogger(testenv.Logger(t, slog.LevelDebug)))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(context.Background())
	ids, err := events.NewIDGen(5)
	if err != nil {
		t.Fatal(err)
	}
	sessionID := fmt.Sprintf("sess-bypass-%d", time.Now().UnixNano())
	p, err := NewProxy(NewDecider(pol, WithResolver(res)),
		Session{ID: sessionID, Tenant: "acme", Agent: &events.Agent{Name: "bypass-agent"}, IDs: ids},
		prod, WithHeaderTimeout(5*time.Second), WithProxyLogger(testenv.Logger(t, slog.LevelDebug)))
	if err != nil {
		t.Fatal(err)
	}
	// The proxy may dial the allowed server and nothing else; any other
	// dial is a bypass, refused here as well as counted.
	var dialMu sync.Mutex
	var badDials []string
	allowedAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap).String()
	inner := p.dialContext
	p.dialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != allowedAddr {
			dialMu.Lock()
			badDials = append(badDials, addr)
			dialMu.Unlock()
			return nil, fmt.Errorf("test: refused dial to %s", addr)
		}
		return inner(ctx, network, addr)
	}

	binDir := searchableTempDir(t, "agentaudit-bridge-", 0o755)
	bridge := filepath.Join(binDir, "egress-bridge")
	if err := BuildBridge(ctx, root, bridge); err != nil {
		t.Fatal(err)
	}
	socketRoot := searchableTempDir(t, "agentaudit-egress-", 0o711)
	sp, err := StartSession(SandboxConfig{SocketRoot: socketRoot, BridgePath: bridge, UID: uid, GID: uid}, p)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close(context.Background())
	conn, err := bindings.NewConnection(context.Background(), uri)
	if err != nil {
		t.Fatalf("connect to %s: %v", uri, err)
	}
	ctrID := startBridgeContainer(t, conn, image, sp)
	run := func(cmd ...string) podmantest.Result { return podmantest.Exec(t, conn, ctrID, cmd...) }
	if r := run("bash", "-c", `for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/3128) 2>/dev/null && exit 0; sleep 0.05; done; exit 1`); r.ExitCode != 0 {
		t.Fatalf("bridge not listening: %+v", r)
	}

	// The allow path works, so the denials below are the policy's.
	if r := run("curl", "-sS", "-k", "--max-time", "10", fmt.Sprintf("https://allowed.bypass.test:%d/", ap)); r.ExitCode != 0 || r.Stdout != "allowed" {
		t.Fatalf("allowed upstream through the proxy: %+v", r)
	}

	const (
		loop  = ReasonLoopbackAddress
		unspc = ReasonUnspecifiedAddress
	)
	deny := func(reason string) string { return "403 " + reason }
	var attempts []bypassAttempt
	spellings := []struct{ host, reason string }{
		{"127.0.0.1", loop}, {"127.1", loop}, {"0x7f.1", loop}, {"0x7f000001", loop},
		{"2130706433", loop}, {"017700000001", loop}, {"0177.0.0.1", loop}, {"127.0.0.2", loop},
		{"127.255.255.254", loop}, {"[::1]", loop}, {"[0:0:0:0:0:0:0:1]", loop},
		{"[::ffff:127.0.0.1]", loop}, {"[0:0:0:0:0:ffff:7f00:1]", loop}, {"[::ffff:7f00:1]", loop},
		{"localhost", loop}, {"LOCALHOST.", loop}, {"LocalHost", loop},
		{"canary.bypass.test", loop}, {"CANARY.bypass.test.", loop}, {"v6.bypass.test", loop},
		{"mapped.bypass.test", loop}, {"other.bypass.test", loop},
		{"0.0.0.0", unspc}, {"0", unspc}, {"[::]", unspc}, {"zero.bypass.test", unspc},
	}
	for _, s := range spellings {
		attempts = append(attempts,
			bypassAttempt{name: "GET " + s.host, via: "tcp", method: http.MethodGet, host: s.host, port: cp, want: deny(s.reason), reason: s.reason},
			bypassAttempt{name: "CONNECT " + s.host, via: "tcp", method: http.MethodConnect, host: s.host, port: cp, want: deny(s.reason), reason: s.reason})
	}
	attempts = append(attempts,
		// Other services on the host's loopback: Kafka, by address and name.
		bypassAttempt{name: "CONNECT Kafka 127.0.0.1:9092", via: "tcp", method: http.MethodConnect, host: "127.0.0.1", port: 9092, want: deny(loop), reason: loop},
		bypassAttempt{name: "GET Kafka 127.0.0.1:9092", via: "tcp", method: http.MethodGet, host: "127.0.0.1", port: 9092, want: deny(loop), reason: loop},
		bypassAttempt{name: "CONNECT Kafka localhost:9092", via: "tcp", method: http.MethodConnect, host: "localhost", port: 9092, want: deny(loop), reason: loop},
		// The allowed name, on the canary's port instead of its own.
		bypassAttempt{name: "CONNECT allowed name, canary port", via: "tcp", method: http.MethodConnect, host: "allowed.bypass.test", port: cp, want: deny(loop), reason: loop},
		// SNI mismatch: the tunnel is allowed, the ClientHello names another.
		bypassAttempt{name: "SNI canary.bypass.test in CONNECT allowed", via: "tcp", method: http.MethodConnect, host: "allowed.bypass.test", port: ap, sni: "canary.bypass.test", want: "200 tunnel-closed", reason: ReasonSNIMismatch},
		bypassAttempt{name: "SNI localhost in CONNECT allowed", via: "tcp", method: http.MethodConnect, host: "allowed.bypass.test", port: ap, sni: "localhost", want: "200 tunnel-closed", reason: ReasonSNIMismatch},
		bypassAttempt{name: "SNI name in CONNECT 127.0.0.1", via: "tcp", method: http.MethodConnect, host: "127.0.0.1", port: ap, sni: "allowed.bypass.test", want: "200 tunnel-closed", reason: ReasonSNIMismatch},
		// Straight to the mounted proxy socket, past the bridge.
		bypassAttempt{name: "GET 127.0.0.1 on the Unix socket", via: "unix", method: http.MethodGet, host: "127.0.0.1", port: cp, want: deny(loop), reason: loop},
		bypassAttempt{name: "CONNECT localhost on the Unix socket", via: "unix", method: http.MethodConnect, host: "localhost", port: cp, want: deny(loop), reason: loop},
		// Descriptors passed by hand.
		bypassAttempt{name: "pass own socket, GET 0x7f.1", via: "pass-socket", method: http.MethodGet, host: "0x7f.1", port: cp, want: deny(loop), reason: loop},
		bypassAttempt{name: "pass a file", via: "pass-file", want: "400 " + ReasonBadRequest, reason: ReasonBadRequest},
		bypassAttempt{name: "pass a listening socket", via: "pass-listener", want: "400 " + ReasonBadRequest, reason: ReasonBadRequest},
		bypassAttempt{name: "pass a UDP socket", via: "pass-udp", want: "400 " + ReasonBadRequest, reason: ReasonBadRequest},
		bypassAttempt{name: "pass two sockets", via: "pass-two", want: "400 " + ReasonBadRequest, reason: ReasonBadRequest},
	)

	got := make([]string, len(attempts))
	for i, a := range attempts {
		r := run(a.args()...)
		got[i] = strings.TrimSpace(r.Stdout)
		if r.ExitCode != 0 || got[i] != a.want {
			t.Errorf("%s: got %q (exit %d, stderr %q), want %q", a.name, got[i], r.ExitCode, r.Stderr, a.want)
		}
	}

	// Around the proxy entirely: the sandbox has its own loopback and no
	// other interface or resolver, so these fail inside the container.
	direct := []struct {
		name string
		cmd  []string
		exit int
	}{
		{"curl --noproxy 127.0.0.1", []string{"curl", "-sS", "--noproxy", "*", "--max-time", "5", fmt.Sprintf("http://127.0.0.1:%d/", cp)}, 7},
		{"curl --noproxy [::1]", []string{"curl", "-sS", "--noproxy", "*", "--max-time", "5", fmt.Sprintf("http://[::1]:%d/", cp)}, 7},
		{"curl --noproxy localhost", []string{"curl", "-sS", "--noproxy", "*", "--max-time", "5", fmt.Sprintf("http://localhost:%d/", cp)}, 7},
		{"curl --noproxy name", []string{"curl", "-sS", "--noproxy", "*", "--max-time", "5", fmt.Sprintf("http://canary.bypass.test:%d/", cp)}, 6},
		{"Kafka 127.0.0.1:9092 direct", []string{"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9092"}, 1},
	}
	for _, d := range direct {
		if r := run(d.cmd...); r.ExitCode != d.exit {
			t.Errorf("%s: %+v, want exit %d", d.name, r, d.exit)
		}
	}

	// Read the session's deny events back from Kafka: one per attempt, in
	// order (one session, one partition).
	denies := readDenies(t, brokers, topics.Events, sessionID, len(attempts))
	var stored, lost int64
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "attempt\texpected\tsandbox saw\tevent reason")
	for i, a := range attempts {
		evReason := "(missing)"
		if i < len(denies) {
			evReason = denies[i].reason
			if denies[i].reason == a.reason && (a.via == "pass-file" || a.via == "pass-listener" || a.via == "pass-udp" || a.via == "pass-two" || denies[i].port == a.port) {
				stored++
			} else {
				t.Errorf("%s: event %+v, want reason %s port %d", a.name, denies[i], a.reason, a.port)
			}
		} else {
			lost++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.name, a.reason, got[i], evReason)
	}
	tw.Flush()
	t.Logf("attempts:\n%s", table.String())
	if len(denies) > len(attempts) {
		t.Errorf("%d deny events for %d attempts: %+v", len(denies), len(attempts), denies[len(attempts):])
	}

	dialMu.Lock()
	bypasses := canaryHits.Load() + int64(len(badDials))
	if len(badDials) > 0 {
		t.Errorf("the proxy dialed %v", badDials)
	}
	dialMu.Unlock()
	if n := canaryHits.Load(); n != 0 {
		t.Errorf("the canary saw %d connections", n)
	}
	faultreport.Record(t, faultreport.Case{
		Name: "egress bypass", Package: "internal/netpol",
		Produced: int64(len(attempts)), Stored: stored, Lost: lost, Duplicated: bypasses,
		Detail: fmt.Sprintf("%d attempts through the proxy and %d around it, %d reached the canary or were dialed (counted as duplicated); lost = attempts without their deny event in Kafka",
			len(attempts), len(direct), bypasses),
	})
}

type denyEvent struct {
	host, reason, method string
	port                 uint16
}

// readDenies reads the session's net.egress deny decisions from topic
// until it has want of them or 30 s have passed, then for one more
// second, so extra events are seen too.
func readDenies(t *testing.T, brokers []string, topic, sessionID string, want int) []denyEvent {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []denyEvent
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			e, err := events.Decode(r.Value)
			if err != nil {
				t.Errorf("undecodable event in %s: %v", topic, err)
				return
			}
			if e.SessionID != sessionID || e.EventType != "net.egress" {
				return
			}
			pl, err := e.DecodePayload()
			if err != nil {
				t.Errorf("payload: %v", err)
				return
			}
			n := pl.(*events.NetEgress)
			if n.Decision == events.Decision(Deny) {
				out = append(out, denyEvent{host: n.Host, reason: string(n.ReasonCode), method: n.Method, port: n.Port})
			}
		})
		if len(out) >= want && deadline.Sub(time.Now()) > time.Second {
			deadline = time.Now().Add(time.Second)
		}
	}
	return out
}
