package netpol

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// memAuditor stamps events on one chain, validates each against the
// schema (so every event the proxy builds is one Kafka would take), and
// keeps them. failEmit makes Emit fail as an unreachable Kafka would.
type memAuditor struct {
	t        testing.TB
	mu       sync.Mutex
	chains   map[events.ChainKey]*events.Chain
	evs      []*events.Envelope
	failEmit atomic.Bool
}

func newMemAuditor(t testing.TB) *memAuditor {
	return &memAuditor{t: t, chains: map[events.ChainKey]*events.Chain{}}
}

func (a *memAuditor) Emit(ctx context.Context, e *events.Envelope) error {
	if a.failEmit.Load() {
		return fmt.Errorf("test: %w", eventlog.ErrAuditUnavailable)
	}
	return a.record(e)
}

func (a *memAuditor) EmitAfter(ctx context.Context, e *events.Envelope) error { return a.record(e) }

func (a *memAuditor) record(e *events.Envelope) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.RunnerID == "" {
		e.RunnerID = "test-runner"
	}
	c, ok := a.chains[e.Key()]
	if !ok {
		c = events.NewChain(e.Key())
		a.chains[e.Key()] = c
	}
	if err := c.Stamp(e); err != nil {
		a.t.Errorf("stamp: %v", err)
		return err
	}
	if err := events.Validate(e); err != nil {
		a.t.Errorf("proxy built an invalid event: %v\n%s", err, e.Payload)
		return fmt.Errorf("%w: %w", eventlog.ErrInvalidEvent, err)
	}
	a.evs = append(a.evs, e)
	return nil
}

// egressView is the part of a net.egress event the tests compare.
type egressView struct {
	Phase, Decision, Reason, Host string
	Port                          uint16
	IP, SNI, Method, Rule         string
	Status                        uint16
	ApprovalID                    string
	Bytes                         bool // any bytes either way
}

func view(e *events.Envelope) egressView {
	p, err := e.DecodePayload()
	if err != nil {
		panic(err)
	}
	n := p.(*events.NetEgress)
	return egressView{
		Phase: n.Phase, Decision: string(n.Decision), Reason: string(n.ReasonCode), Host: n.Host, Port: n.Port,
		IP: n.ResolvedIP, SNI: n.SNI, Method: n.Method, Rule: n.RuleID, Status: n.StatusCode,
		ApprovalID: e.ApprovalID, Bytes: n.BytesSent > 0 && n.BytesReceived > 0,
	}
}

// wait returns the events once there are n, failing after 5 s.
func (a *memAuditor) wait(t testing.TB, n int) []egressView {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a.mu.Lock()
		got := len(a.evs)
		var out []egressView
		if got >= n {
			for _, e := range a.evs {
				out = append(out, view(e))
			}
		}
		a.mu.Unlock()
		if got >= n {
			if got > n {
				t.Errorf("got %d events, want %d: %+v", got, n, out)
			}
			return out
		}
		if time.Now().After(deadline) {
			a.mu.Lock()
			for _, e := range a.evs {
				out = append(out, view(e))
			}
			a.mu.Unlock()
			t.Fatalf("timed out waiting for %d events; have %d: %+v", n, got, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (a *memAuditor) reset() {
	a.mu.Lock()
	a.evs = nil
	a.mu.Unlock()
}

// proxyEnv is a proxy on a Unix socket in front of a plain and a TLS test
// server on 127.0.0.1, with a policy that allows them by exact IP and a
// stub resolver; every dial is recorded and anything but loopback fails
// the test (and is never attempted).
type proxyEnv struct {
	p          *Proxy
	sock       string
	audit      *memAuditor
	res        *stubResolver
	plain, tls *httptest.Server
	hp, tp     uint16 // their ports
	dialMu     sync.Mutex
	dialed     []string
	served     chan *http.Request // requests the servers saw
}

func testPolicyYAML(hp, tp uint16) string {
	return fmt.Sprintf(`id: proxy-test
default: deny
rules:
  - id: loopback-tls
    decision: allow
    cidrs: ["127.0.0.1/32"]
    ports: [%[2]d]
  - id: loopback-web
    decision: allow
    hosts: [allowed.test]
    cidrs: ["127.0.0.1/32"]
    ports: [%[1]d]
    methods: [GET, POST, HEAD]
  - id: ask-test
    decision: ask
    hosts: [ask.test]
    ports: [%[1]d, %[2]d]
  - id: blocked
    decision: deny
    hosts: [blocked.test]
    ports: [%[1]d, %[2]d]
`, hp, tp)
}

func newProxyEnv(t testing.TB, opts ...ProxyOption) *proxyEnv {
	t.Helper()
	e := &proxyEnv{audit: newMemAuditor(t), served: make(chan *http.Request, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		select {
		case e.served <- r.Clone(context.Background()):
		default:
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "hello %s %s %s", r.Method, r.URL.Path, body)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		for i := range 8 {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(60 * time.Millisecond)
		}
	})
	e.plain = httptest.NewServer(mux)
	t.Cleanup(e.plain.Close)
	e.tls = httptest.NewTLSServer(mux)
	t.Cleanup(e.tls.Close)
	e.hp = uint16(e.plain.Listener.Addr().(*net.TCPAddr).Port)
	e.tp = uint16(e.tls.Listener.Addr().(*net.TCPAddr).Port)

	pol, err := Load([]byte(testPolicyYAML(e.hp, e.tp)))
	if err != nil {
		t.Fatal(err)
	}
	e.res = &stubResolver{answers: map[string][]string{
		"allowed.test.": {"127.0.0.1"},
		"ask.test.":     {"127.0.0.1"},
		"blocked.test.": {"127.0.0.1"},
		"meta.test.":    {"169.254.169.254"},
		"private.test.": {"10.0.0.5"},
		"public.test.":  {"93.184.215.14"},
		"rebind.test.":  {"127.0.0.1", "192.168.1.1"},
	}}
	ids, err := events.NewIDGen(1)
	if err != nil {
		t.Fatal(err)
	}
	sess := Session{ID: "sess-proxy-test", Tenant: "acme", Agent: &events.Agent{Name: "test-agent", Version: "1"}, IDs: ids}
	opts = append([]ProxyOption{WithProxyLogger(testenv.Logger(t, slog.LevelDebug))}, opts...)
	e.p, err = NewProxy(NewDecider(pol, WithResolver(e.res)), sess, e.audit, opts...)
	if err != nil {
		t.Fatal(err)
	}
	inner := e.p.dialContext
	e.p.dialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil || !ap.Addr().IsLoopback() {
			t.Errorf("proxy tried to dial %q: tests dial loopback only", addr)
			return nil, errors.New("test: refused non-loopback dial")
		}
		e.dialMu.Lock()
		e.dialed = append(e.dialed, addr)
		e.dialMu.Unlock()
		return inner(ctx, network, addr)
	}
	dir := filepath.Join(t.TempDir(), "egress")
	ln, err := ListenUnix(dir, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	e.sock = filepath.Join(dir, SocketName)
	served := make(chan error, 1)
	go func() { served <- e.p.Serve(ln) }()
	t.Cleanup(func() {
		e.p.Close()
		if err := <-served; !errors.Is(err, ErrProxyClosed) {
			t.Errorf("Serve returned %v, want ErrProxyClosed", err)
		}
		if n := e.p.Stats().Panics.Load(); n != 0 && !t.Failed() {
			t.Logf("%d handler panics", n)
		}
	})
	return e
}

func (e *proxyEnv) takeDials() []string {
	e.dialMu.Lock()
	defer e.dialMu.Unlock()
	d := e.dialed
	e.dialed = nil
	return d
}

func (e *proxyEnv) dialProxy(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// client is an HTTP client whose proxy is the test proxy.
func (e *proxyEnv) client() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: "proxy.invalid:3128"}),
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", e.sock)
			},
			// The test server's certificate names example.com; the name
			// check is not what these tests are about, the SNI is.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		},
	}
}

// raw sends a request head (and body) as written and reads the answer.
func (e *proxyEnv) raw(t testing.TB, req string) (*http.Response, string) {
	t.Helper()
	c := e.dialProxy(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", firstLine(req), err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// tunnelTLS opens a CONNECT tunnel to authority and runs a TLS client
// with serverName over it. It returns the TLS connection or the error.
func (e *proxyEnv) tunnelTLS(t testing.TB, authority, serverName string) (*tls.Conn, error) {
	t.Helper()
	c := e.dialProxy(t)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CONNECT: %s (%s)", resp.Status, resp.Header.Get(DenyHeader))
	}
	tc := tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc, nil
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }

func isRoot() bool                  { return os.Geteuid() == 0 }
func currentUID() int               { return os.Geteuid() }
func symlink(old, new string) error { return os.Symlink(old, new) }

// describe renders a file's mode and owner uid, e.g. "drwx------ 999".
func describe(t testing.TB, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%v %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
}

func TestProxyForwardsPlainHTTP(t *testing.T) {
	e := newProxyEnv(t)
	target := fmt.Sprintf("http://allowed.test:%d/hello", e.hp)
	req := "GET " + target + " HTTP/1.1\r\nHost: allowed.test\r\nProxy-Authorization: Basic c2VjcmV0\r\n" +
		"Proxy-Connection: keep-alive\r\nConnection: X-Private\r\nX-Private: secret\r\nX-Kept: yes\r\n\r\n"
	resp, body := e.raw(t, req)
	if resp.StatusCode != 200 || body != "hello GET /hello " {
		t.Fatalf("got %s %q", resp.Status, body)
	}
	if !resp.Close {
		t.Errorf("response does not close the connection; every request must be decided on its own")
	}
	seen := <-e.served
	gotSeen := map[string]string{
		"RequestURI": seen.RequestURI, "Host": seen.Host,
		"Proxy-Authorization": seen.Header.Get("Proxy-Authorization"), "Proxy-Connection": seen.Header.Get("Proxy-Connection"),
		"X-Private": seen.Header.Get("X-Private"), "X-Kept": seen.Header.Get("X-Kept"), "User-Agent": seen.Header.Get("User-Agent"),
	}
	wantSeen := map[string]string{
		"RequestURI": "/hello", "Host": fmt.Sprintf("allowed.test:%d", e.hp),
		"Proxy-Authorization": "", "Proxy-Connection": "", "X-Private": "", "X-Kept": "yes", "User-Agent": "",
	}
	if diff := cmp.Diff(wantSeen, gotSeen); diff != "" {
		t.Errorf("request as the server saw it (-want +got):\n%s", diff)
	}
	want := []egressView{
		{Phase: "decision", Decision: "allow", Reason: "allowlisted", Host: "allowed.test", Port: e.hp, IP: "127.0.0.1", Method: "GET", Rule: "loopback-web"},
		{Phase: "closed", Decision: "allow", Reason: "allowlisted", Host: "allowed.test", Port: e.hp, IP: "127.0.0.1", Method: "GET", Rule: "loopback-web", Status: 200, Bytes: true},
	}
	if diff := cmp.Diff(want, e.audit.wait(t, 2)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{fmt.Sprintf("127.0.0.1:%d", e.hp)}, e.takeDials()); diff != "" {
		t.Errorf("dials (-want +got):\n%s", diff)
	}
}

func TestProxyForwardsBodies(t *testing.T) {
	e := newProxyEnv(t)
	c := e.client()
	for _, tc := range []struct {
		name   string
		expect bool
		chunk  bool
	}{{"content-length", false, false}, {"expect 100-continue", true, false}, {"chunked", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader("payload")
			if tc.chunk {
				body = io.MultiReader(strings.NewReader("pay"), strings.NewReader("load")) // unknown length: chunked
			}
			req, _ := http.NewRequest("POST", fmt.Sprintf("http://allowed.test:%d/post", e.hp), body)
			if tc.expect {
				req.Header.Set("Expect", "100-continue")
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != "hello POST /post payload" {
				t.Errorf("body %q", got)
			}
		})
	}
}

func TestProxyTunnelsTLS(t *testing.T) {
	e := newProxyEnv(t)
	resp, err := e.client().Get(fmt.Sprintf("https://allowed.test:%d/tls", e.tp))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello GET /tls " {
		t.Fatalf("body %q", body)
	}
	want := []egressView{
		{Phase: "decision", Decision: "allow", Reason: "allowlisted", Host: "allowed.test", Port: e.tp, IP: "127.0.0.1", SNI: "allowed.test", Method: "CONNECT", Rule: "loopback-tls"},
		{Phase: "closed", Decision: "allow", Reason: "allowlisted", Host: "allowed.test", Port: e.tp, IP: "127.0.0.1", SNI: "allowed.test", Method: "CONNECT", Rule: "loopback-tls", Bytes: true},
	}
	if diff := cmp.Diff(want, e.audit.wait(t, 2)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// An IP-literal CONNECT carries no SNI, which is normal.
	e.audit.reset()
	resp, err = e.client().Get(fmt.Sprintf("https://127.0.0.1:%d/ip", e.tp))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := e.audit.wait(t, 2); got[0].SNI != "" || got[0].Decision != "allow" {
		t.Errorf("IP CONNECT decision %+v", got[0])
	}
}

func TestProxyDenies(t *testing.T) {
	e := newProxyEnv(t)
	hp, tp := e.hp, e.tp
	cases := []struct {
		name   string
		req    string
		status int
		reason string
		host   string
		ip     string
		rule   string
		looked []string // names the resolver was asked for
	}{
		{"metadata via dns", connectReq("meta.test", tp), 403, ReasonMetadataAddress, "meta.test", "169.254.169.254", "", []string{"ip meta.test."}},
		{"private via dns", getReq("private.test", hp), 403, ReasonPrivateAddress, "private.test", "10.0.0.5", "", []string{"ip private.test."}},
		{"public address no rule", connectReq("public.test", tp), 403, ReasonDefaultDeny, "public.test", "93.184.215.14", "", []string{"ip public.test."}},
		{"one of two addresses private", connectReq("rebind.test", tp), 403, ReasonPrivateAddress, "rebind.test", "192.168.1.1", "", []string{"ip rebind.test."}},
		{"no such name", connectReq("gone.test", tp), 403, ReasonDNSFailure, "gone.test", "", "", []string{"ip gone.test."}},
		{"deny rule, no lookup", connectReq("blocked.test", tp), 403, ReasonDeniedByRule, "blocked.test", "", "blocked", nil},
		{"unlisted port, no lookup", connectReq("allowed.test", 443), 403, ReasonDefaultDeny, "allowed.test", "", "", nil},
		{"loopback on another port", connectReq("127.0.0.1", 1), 403, ReasonLoopbackAddress, "127.0.0.1", "127.0.0.1", "", nil},
		{"metadata literal mapped", getReq("[::ffff:169.254.169.254]", hp), 403, ReasonMetadataAddress, "169.254.169.254", "169.254.169.254", "", nil},
		{"metadata literal hex", connectReq("0xa9fea9fe", tp), 403, ReasonMetadataAddress, "169.254.169.254", "169.254.169.254", "", nil},
		{"private literal", connectReq("10.0.0.5", tp), 403, ReasonPrivateAddress, "10.0.0.5", "10.0.0.5", "", nil},
		{"method not allowed", fmt.Sprintf("DELETE http://allowed.test:%d/ HTTP/1.1\r\nHost: x\r\n\r\n", hp), 403, ReasonDefaultDeny, "allowed.test", "", "", nil},
		{"no approver for ask", getReq("ask.test", hp), 403, ReasonNeverAsk, "ask.test", "127.0.0.1", "ask-test", []string{"ip ask.test."}},
		{"relative target", "GET /x HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400, ReasonBadRequest, "invalid", "", "", nil},
		{"https absolute uri", fmt.Sprintf("GET https://allowed.test:%d/ HTTP/1.1\r\n\r\n", tp), 400, ReasonBadRequest, "allowed.test", "", "", nil},
		{"connect without port", "CONNECT allowed.test HTTP/1.1\r\n\r\n", 400, ReasonBadRequest, "invalid", "", "", nil},
		{"connect with userinfo", fmt.Sprintf("CONNECT a@allowed.test:%d HTTP/1.1\r\n\r\n", tp), 400, ReasonBadRequest, "invalid", "", "", nil},
		{"smuggling pair", fmt.Sprintf("POST http://allowed.test:%d/ HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", hp), 400, ReasonBadRequest, "allowed.test", "", "", nil},
		{"header too large", fmt.Sprintf("GET http://allowed.test:%d/ HTTP/1.1\r\nX: %s\r\n\r\n", hp, strings.Repeat("a", 40<<10)), 431, ReasonHeaderTooLarge, "allowed.test", "", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.audit.reset()
			e.res.takeCalls()
			resp, body := e.raw(t, tc.req)
			if resp.StatusCode != tc.status || resp.Header.Get(DenyHeader) != tc.reason {
				t.Errorf("got %s %s=%q, want %d %q", resp.Status, DenyHeader, resp.Header.Get(DenyHeader), tc.status, tc.reason)
			}
			if !strings.HasSuffix(body, "\n") || strings.Count(body, "\n") != 1 || !strings.Contains(body, tc.reason) {
				t.Errorf("body %q: want one line naming %s", body, tc.reason)
			}
			got := e.audit.wait(t, 1)[0]
			want := egressView{Phase: "decision", Decision: "deny", Reason: tc.reason, Host: tc.host, IP: tc.ip, Rule: tc.rule, Status: uint16(tc.status)}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(egressView{}, "Port", "Method")); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.looked, e.res.takeCalls()); diff != "" {
				t.Errorf("resolver lookups (-want +got):\n%s", diff)
			}
			if d := e.takeDials(); len(d) != 0 {
				t.Errorf("denied request dialed %v", d)
			}
		})
	}
}

func connectReq(host string, port uint16) string {
	a := hostPortLiteral(host, port)
	return "CONNECT " + a + " HTTP/1.1\r\nHost: " + a + "\r\n\r\n"
}

func getReq(host string, port uint16) string {
	return "GET http://" + hostPortLiteral(host, port) + "/ HTTP/1.1\r\nHost: x\r\n\r\n"
}

func hostPortLiteral(host string, port uint16) string { return fmt.Sprintf("%s:%d", host, port) }

func TestProxySNI(t *testing.T) {
	e := newProxyEnv(t)
	tp := e.tp
	cases := []struct {
		name, authority, sni string
		ok                   bool
		eventSNI             string
	}{
		{"matching", hostPortLiteral("allowed.test", tp), "allowed.test", true, "allowed.test"},
		{"case and trailing dot", hostPortLiteral("allowed.test", tp), "Allowed.TEST.", true, "Allowed.TEST"}, // crypto/tls drops the dot
		{"different name", hostPortLiteral("allowed.test", tp), "evil.test", false, "evil.test"},
		{"name without SNI", hostPortLiteral("allowed.test", tp), "", false, ""},
		{"IP without SNI", hostPortLiteral("127.0.0.1", tp), "", true, ""},
		{"IP with a name SNI", hostPortLiteral("127.0.0.1", tp), "evil.test", false, "evil.test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.audit.reset()
			tc1, err := e.tunnelTLS(t, tc.authority, tc.sni)
			if tc.ok != (err == nil) {
				t.Fatalf("handshake err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				tc1.Close()
				evs := e.audit.wait(t, 2)
				if evs[0].Decision != "allow" || evs[0].SNI != tc.eventSNI {
					t.Errorf("decision %+v", evs[0])
				}
				e.takeDials()
				return
			}
			got := e.audit.wait(t, 1)[0]
			if got.Decision != "deny" || got.Reason != ReasonSNIMismatch || got.SNI != tc.eventSNI {
				t.Errorf("event %+v, want deny sni_mismatch with SNI %q", got, tc.eventSNI)
			}
			if d := e.takeDials(); len(d) != 0 {
				t.Errorf("mismatched tunnel dialed %v", d)
			}
		})
	}

	t.Run("not TLS", func(t *testing.T) {
		e.audit.reset()
		c := e.dialProxy(t)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT allowed.test:%d HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n", tp)
		rest, _ := io.ReadAll(c)
		if string(rest) != "HTTP/1.1 200 Connection established\r\n\r\n" {
			t.Errorf("got %q, want the 200 and then a close", rest)
		}
		if got := e.audit.wait(t, 1)[0]; got.Reason != ReasonBadRequest || got.Decision != "deny" {
			t.Errorf("event %+v", got)
		}
		if d := e.takeDials(); len(d) != 0 {
			t.Errorf("dialed %v", d)
		}
	})
}

// chanApprover hands each request to the test and waits for its answer.
type chanApprover struct {
	reqs    chan ApprovalRequest
	answers chan Approval
	calls   atomic.Int32
}

func newChanApprover() *chanApprover {
	return &chanApprover{reqs: make(chan ApprovalRequest, 4), answers: make(chan Approval, 4)}
}

func (a *chanApprover) RequestApproval(ctx context.Context, req ApprovalRequest) (Approval, error) {
	a.calls.Add(1)
	a.reqs <- req
	select {
	case ans := <-a.answers:
		return ans, nil
	case <-ctx.Done():
		return Approval{}, ctx.Err()
	}
}

func TestProxyAsk(t *testing.T) {
	appr := newChanApprover()
	e := newProxyEnv(t, WithApprover(appr), WithApprovalTimeout(2*time.Second))

	get := func(host string, port uint16) chan string {
		out := make(chan string, 1)
		go func() {
			resp, err := e.client().Get(fmt.Sprintf("http://%s/ask", hostPortLiteral(host, port)))
			if err != nil {
				out <- "error: " + err.Error()
				return
			}
			resp.Body.Close()
			out <- fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get(DenyHeader))
		}()
		return out
	}

	t.Run("held until approved once", func(t *testing.T) {
		e.audit.reset()
		res := get("ask.test", e.hp)
		req := <-appr.reqs
		if req.Host != "ask.test" || req.Port != e.hp || req.Method != "GET" || req.RuleID != "ask-test" || req.RequestEventID == "" {
			t.Errorf("approval request %+v", req)
		}
		select {
		case r := <-res:
			t.Fatalf("answered %q before the approval", r)
		case <-time.After(150 * time.Millisecond):
		}
		appr.answers <- Approval{Approved: true, Scope: events.ScopeOnce, ApprovalID: "appr-once"}
		if r := <-res; r != "200 " {
			t.Fatalf("after approval: %s", r)
		}
		evs := e.audit.wait(t, 3)
		want := []egressView{
			{Phase: "decision", Decision: "ask", Reason: "needs_approval", Host: "ask.test", Port: e.hp, IP: "127.0.0.1", Method: "GET", Rule: "ask-test"},
			{Phase: "decision", Decision: "allow", Reason: "approved", Host: "ask.test", Port: e.hp, IP: "127.0.0.1", Method: "GET", Rule: "ask-test", ApprovalID: "appr-once"},
			{Phase: "closed", Decision: "allow", Reason: "approved", Host: "ask.test", Port: e.hp, IP: "127.0.0.1", Method: "GET", Rule: "ask-test", ApprovalID: "appr-once", Status: 200, Bytes: true},
		}
		if diff := cmp.Diff(want, evs); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		// Once means once: the next connection asks again.
		res = get("ask.test", e.hp)
		<-appr.reqs
		appr.answers <- Approval{Approved: false, Reason: ReasonApprovalDenied, ApprovalID: "appr-no"}
		if r := <-res; r != "403 approval_denied" {
			t.Errorf("after denial: %s", r)
		}
	})

	t.Run("expires", func(t *testing.T) {
		e.audit.reset()
		start := time.Now()
		res := get("ask.test", e.hp)
		<-appr.reqs
		if r := <-res; r != "403 approval_expired" {
			t.Errorf("unanswered: %s", r)
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Errorf("denied after %v, before the 2s approval time-out", d)
		}
		evs := e.audit.wait(t, 2)
		if evs[1].Decision != "deny" || evs[1].Reason != ReasonApprovalExpired {
			t.Errorf("events %+v", evs)
		}
	})

	t.Run("session scope reused and recorded", func(t *testing.T) {
		e.audit.reset()
		e.takeDials()
		calls := appr.calls.Load()
		// Two connections at once raise one approval request.
		first, second := make(chan error, 1), make(chan error, 1)
		go func() { _, err := e.tunnelTLS(t, hostPortLiteral("ask.test", e.tp), "ask.test"); first <- err }()
		req := <-appr.reqs
		go func() { _, err := e.tunnelTLS(t, hostPortLiteral("ask.test", e.tp), "ask.test"); second <- err }()
		time.Sleep(100 * time.Millisecond) // let the second one queue behind the first ask
		appr.answers <- Approval{Approved: true, Scope: events.ScopeSession, ApprovalID: "appr-session"}
		for _, ch := range []chan error{first, second} {
			if err := <-ch; err != nil {
				t.Fatalf("tunnel: %v", err)
			}
		}
		if n := appr.calls.Load() - calls; n != 1 {
			t.Errorf("%d approval requests for one destination, want 1", n)
		}
		if req.Method != "CONNECT" {
			t.Errorf("request %+v", req)
		}
		// A later connection needs no approval; the reuse is recorded.
		if _, err := e.tunnelTLS(t, hostPortLiteral("ask.test", e.tp), "ask.test"); err != nil {
			t.Fatal(err)
		}
		if n := appr.calls.Load() - calls; n != 1 {
			t.Errorf("session grant not reused: %d approval requests", n)
		}
		var reasons []string
		for _, ev := range e.audit.wait(t, 4) {
			if ev.Phase == "decision" {
				reasons = append(reasons, ev.Decision+"/"+ev.Reason+"/"+ev.ApprovalID)
			}
		}
		want := []string{"ask/needs_approval/", "allow/approved/appr-session", "allow/approved_for_session/appr-session", "allow/approved_for_session/appr-session"}
		if diff := cmp.Diff(want, reasons, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("decisions (-want +got):\n%s", diff)
		}
		// The grant is for that host and port only.
		res := get("ask.test", e.hp)
		<-appr.reqs
		appr.answers <- Approval{Approved: false, ApprovalID: "x"}
		if r := <-res; r != "403 approval_denied" {
			t.Errorf("other port: %s", r)
		}
	})
}

func TestProxyAuditUnavailable(t *testing.T) {
	e := newProxyEnv(t)
	e.audit.failEmit.Store(true)
	resp, body := e.raw(t, getReq("allowed.test", e.hp))
	if resp.StatusCode != 403 || resp.Header.Get(DenyHeader) != ReasonAuditUnavailable {
		t.Errorf("plain HTTP: %s %q", resp.Status, body)
	}
	if _, err := e.tunnelTLS(t, hostPortLiteral("allowed.test", e.tp), "allowed.test"); err == nil {
		t.Errorf("tunnel opened although its decision was not acknowledged")
	}
	var got []string
	for _, ev := range e.audit.wait(t, 2) {
		got = append(got, ev.Phase+"/"+ev.Decision+"/"+ev.Reason)
	}
	want := []string{"decision/deny/audit_unavailable", "closed/deny/audit_unavailable"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if d := e.takeDials(); len(d) != 0 {
		t.Errorf("dialed %v without an acknowledged decision", d)
	}
	if n := e.p.Stats().AuditFailures.Load(); n != 2 {
		t.Errorf("AuditFailures = %d, want 2", n)
	}
}

func TestProxyConnectionLimit(t *testing.T) {
	e := newProxyEnv(t, WithMaxConns(2))
	// Two connections that have not sent their request yet hold the slots.
	a, b := e.dialProxy(t), e.dialProxy(t)
	waitFor(t, func() bool { return e.p.active.Load() == 2 })
	resp, body := e.raw(t, getReq("allowed.test", e.hp))
	if resp.StatusCode != 403 || resp.Header.Get(DenyHeader) != ReasonConnectionLimit {
		t.Fatalf("third connection: %s %q", resp.Status, body)
	}
	if ev := e.audit.wait(t, 1)[0]; ev.Reason != ReasonConnectionLimit || ev.Host != "allowed.test" {
		t.Errorf("event %+v", ev)
	}
	a.Close()
	b.Close()
	waitFor(t, func() bool { return e.p.active.Load() == 0 })
	if resp, _ := e.raw(t, getReq("allowed.test", e.hp)); resp.StatusCode != 200 {
		t.Errorf("after the slots freed: %s", resp.Status)
	}
	if n := e.p.Stats().Limited.Load(); n != 1 {
		t.Errorf("Limited = %d, want 1", n)
	}
}

func TestProxyTimeouts(t *testing.T) {
	e := newProxyEnv(t, WithIdleTimeout(300*time.Millisecond), WithHeaderTimeout(300*time.Millisecond))

	t.Run("idle tunnel closed", func(t *testing.T) {
		e.audit.reset()
		tc, err := e.tunnelTLS(t, hostPortLiteral("127.0.0.1", e.tp), "")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = tc.Read(make([]byte, 1))
		if d := time.Since(start); err == nil || d < 250*time.Millisecond || d > 3*time.Second {
			t.Errorf("read returned %v after %v; want a close after ~300ms idle", err, d)
		}
		evs := e.audit.wait(t, 2)
		if evs[1].Phase != "closed" || evs[1].Reason != ReasonIdleTimeout {
			t.Errorf("closing event %+v", evs[1])
		}
	})

	t.Run("busy stream outlives idle timeout", func(t *testing.T) {
		e.audit.reset()
		for _, u := range []string{fmt.Sprintf("https://127.0.0.1:%d/slow", e.tp), fmt.Sprintf("http://allowed.test:%d/slow", e.hp)} {
			resp, err := e.client().Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || strings.Count(string(body), "chunk") != 8 {
				t.Errorf("%s: %d chunks, err %v", u, strings.Count(string(body), "chunk"), err)
			}
		}
		for _, ev := range e.audit.wait(t, 4) {
			if ev.Reason != ReasonAllowlisted {
				t.Errorf("event %+v", ev)
			}
		}
	})

	t.Run("no request head", func(t *testing.T) {
		before := e.p.Stats().NoRequest.Load()
		c := e.dialProxy(t)
		io.WriteString(c, "GET http://allowed.test/ HTTP/1.1\r\n") // and then nothing
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("read = %d, %v; want EOF", n, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("closed after %v", d)
		}
		waitFor(t, func() bool { return e.p.Stats().NoRequest.Load() == before+1 })
	})
}

type panicApprover struct{}

func (panicApprover) RequestApproval(context.Context, ApprovalRequest) (Approval, error) {
	panic("approver bug")
}

func TestProxySurvivesHandlerPanic(t *testing.T) {
	e := newProxyEnv(t, WithApprover(panicApprover{}))
	c := e.dialProxy(t)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, getReq("ask.test", e.hp))
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("got %q from a panicking handler", b)
	}
	if n := e.p.Stats().Panics.Load(); n != 1 {
		t.Errorf("Panics = %d", n)
	}
	if resp, _ := e.raw(t, getReq("allowed.test", e.hp)); resp.StatusCode != 200 {
		t.Errorf("after a panic: %s", resp.Status)
	}
}

func TestProxyCloseRecordsOpenTunnels(t *testing.T) {
	e := newProxyEnv(t)
	tc, err := e.tunnelTLS(t, hostPortLiteral("127.0.0.1", e.tp), "")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	e.audit.wait(t, 1)
	e.p.Close()
	if ev := e.audit.wait(t, 2)[1]; ev.Phase != "closed" {
		t.Errorf("after Close: %+v", ev)
	}
}

func TestListenUnixPermissions(t *testing.T) {
	base := t.TempDir()
	uid, gid := -1, -1
	if isRoot() {
		uid, gid = 999, 999 // the sandbox user of testenv
	}
	dir := filepath.Join(base, "sess")
	ln, err := ListenUnix(dir, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := map[string]string{"dir": describe(t, dir), "socket": describe(t, filepath.Join(dir, SocketName))}
	owner := fmt.Sprint(uid)
	if uid < 0 {
		owner = fmt.Sprint(currentUID())
	}
	want := map[string]string{"dir": "drwx------ " + owner, "socket": "Srw------- " + owner}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}
	// A second listener replaces a stale socket but nothing else.
	ln.SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := ListenUnix(dir, uid, gid)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	link := filepath.Join(base, "link")
	if err := symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(link, uid, gid); !errors.Is(err, ErrSocketDir) {
		t.Errorf("symlinked dir: err = %v, want ErrSocketDir", err)
	}
}

func TestSandboxEnv(t *testing.T) {
	want := map[string]string{
		"HTTP_PROXY": BridgeProxyURL, "HTTPS_PROXY": BridgeProxyURL, "ALL_PROXY": BridgeProxyURL,
		"http_proxy": BridgeProxyURL, "https_proxy": BridgeProxyURL, "all_proxy": BridgeProxyURL,
		"NO_PROXY": "", "no_proxy": "",
	}
	if diff := cmp.Diff(want, SandboxEnv(BridgeProxyURL)); diff != "" {
		t.Errorf("SandboxEnv (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"/agentaudit/egress-bridge", "--listen", "127.0.0.1:3128", "--socket", "/agentaudit/egress/proxy.sock"}, BridgeCommand()); diff != "" {
		t.Errorf("BridgeCommand (-want +got):\n%s", diff)
	}
}

// TestBridgeOnHost runs the bridge in-process between a TCP client and
// the proxy socket: the same path as inside the container.
func TestBridgeOnHost(t *testing.T) {
	e := newProxyEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeBridge(ctx, ln, e.sock, testenv.Logger(t, slog.LevelDebug)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeBridge: %v", err)
		}
	}()
	proxyURL, _ := url.Parse("http://" + ln.Addr().String())
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true,
	}}
	for _, u := range []string{fmt.Sprintf("http://allowed.test:%d/b", e.hp), fmt.Sprintf("https://allowed.test:%d/b", e.tp)} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello GET /b " {
			t.Errorf("%s: %q", u, body)
		}
	}
	resp, err := c.Get(fmt.Sprintf("http://meta.test:%d/", e.hp))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get(DenyHeader) != ReasonMetadataAddress {
		t.Errorf("denied through the bridge: %s %q", resp.Status, resp.Header.Get(DenyHeader))
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
