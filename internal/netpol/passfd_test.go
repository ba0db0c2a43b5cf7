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
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// startBridge serves a bridge on 127.0.0.1 in front of sock and returns
// an HTTP client whose proxy it is.
func startBridge(t *testing.T, sock string) (*http.Client, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeBridge(ctx, ln, sock, testenv.Logger(t, slog.LevelDebug)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeBridge: %v", err)
		}
	})
	proxyURL, _ := url.Parse("http://" + ln.Addr().String())
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true,
	}}, ln.Addr().String()
}

func get(t *testing.T, c *http.Client, u string) (int, string, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(DenyHeader), string(body)
}

// TestBridgePassesSockets: through the real bridge, the proxy serves the
// client's own socket (passed, not relayed), with the same decisions,
// events and byte counts as on its Unix socket.
func TestBridgePassesSockets(t *testing.T) {
	e := newProxyEnv(t)
	c, _ := startBridge(t, e.sock)
	body := strings.Repeat("x", 1<<20)
	for _, u := range []string{fmt.Sprintf("http://allowed.test:%d/a", e.hp), fmt.Sprintf("https://allowed.test:%d/b", e.tp)} {
		resp, err := c.Post(u, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "hello POST /" + u[len(u)-1:] + " " + body; string(got) != want {
			t.Errorf("%s: %d bytes back, want %d", u, len(got), len(want))
		}
	}
	if code, reason, _ := get(t, c, fmt.Sprintf("http://meta.test:%d/", e.hp)); code != 403 || reason != ReasonMetadataAddress {
		t.Errorf("denied through the bridge: %d %q", code, reason)
	}
	if got := e.p.Stats().Passed.Load(); got != 3 {
		t.Errorf("passed sockets = %d, want 3", got)
	}
	evs := e.audit.wait(t, 5)
	var got []string
	for _, v := range evs {
		got = append(got, fmt.Sprintf("%s %s %s %s %s %v", v.Phase, v.Method, v.Host, v.Decision, v.Reason, v.Bytes))
	}
	want := []string{
		"decision POST allowed.test allow allowlisted false",
		"closed POST allowed.test allow allowlisted true",
		"decision CONNECT allowed.test allow allowlisted false",
		"closed CONNECT allowed.test allow allowlisted true",
		"decision GET meta.test deny metadata_address false",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// hiddenUnix hides *net.UnixConn from the proxy, so it serves every
// connection as plain bytes: a proxy that predates descriptor passing.
type hiddenUnix struct{ net.Listener }

func (l hiddenUnix) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{c}, nil
}

// TestBridgeFallsBackToRelay: a proxy that does not take the socket
// answers the marker 400; the bridge then relays, and the client never
// notices.
func TestBridgeFallsBackToRelay(t *testing.T) {
	e := newProxyEnv(t)
	dir := filepath.Join(t.TempDir(), "old")
	ln, err := ListenUnix(dir, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	go e.p.Serve(hiddenUnix{ln})
	before := openSockets(t)
	c, _ := startBridge(t, filepath.Join(dir, SocketName))
	if code, _, body := get(t, c, fmt.Sprintf("http://allowed.test:%d/old", e.hp)); code != 200 || body != "hello GET /old " {
		t.Fatalf("through an old proxy: %d %q", code, body)
	}
	if got := e.p.Stats().Passed.Load(); got != 0 {
		t.Errorf("passed = %d, want 0", got)
	}
	evs := e.audit.wait(t, 3)
	if evs[0].Reason != ReasonBadRequest || evs[1].Reason != ReasonAllowlisted {
		t.Errorf("events %+v", evs)
	}
	// The bridge's listener and its idle client connections aside, the
	// descriptor the old proxy read past is not left open anywhere.
	// (Only sockets count here: the relay's splice keeps a pool of pipes.)
	c.CloseIdleConnections()
	waitFor(t, func() bool { return openSockets(t) <= before+1 })
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func openSockets(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// tcpPair returns both ends of a loopback TCP connection as files.
func tcpPair(t *testing.T) (client, server *os.File) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	client, _ = cc.(*net.TCPConn).File()
	server, _ = sc.(*net.TCPConn).File()
	cc.Close()
	sc.Close()
	return client, server
}

func socketFile(t *testing.T, domain, typ int) *os.File {
	t.Helper()
	fd, err := syscall.Socket(domain, typ|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "socket")
}

// TestProxyRefusesPassedFDs: anything but one connected TCP socket with
// the marker byte is refused bad_request, with an event, and every
// descriptor the proxy received is closed.
func TestProxyRefusesPassedFDs(t *testing.T) {
	e := newProxyEnv(t)
	cases := []struct {
		name string
		data []byte
		fds  func(t *testing.T) []*os.File
	}{
		{"pipe", []byte{passMarker}, func(t *testing.T) []*os.File {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			return []*os.File{r}
		}},
		{"regular file", []byte{passMarker}, func(t *testing.T) []*os.File {
			f, err := os.Open("/proc/self/status")
			if err != nil {
				t.Fatal(err)
			}
			return []*os.File{f}
		}},
		{"UDP socket", []byte{passMarker}, func(t *testing.T) []*os.File {
			return []*os.File{socketFile(t, syscall.AF_INET, syscall.SOCK_DGRAM)}
		}},
		{"Unix stream socket", []byte{passMarker}, func(t *testing.T) []*os.File {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return []*os.File{os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")}
		}},
		{"unconnected TCP socket", []byte{passMarker}, func(t *testing.T) []*os.File {
			return []*os.File{socketFile(t, syscall.AF_INET, syscall.SOCK_STREAM)}
		}},
		{"listening TCP socket", []byte{passMarker}, func(t *testing.T) []*os.File {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			f, _ := ln.(*net.TCPListener).File()
			ln.Close()
			return []*os.File{f}
		}},
		{"two TCP sockets", []byte{passMarker}, func(t *testing.T) []*os.File {
			a, b := tcpPair(t)
			return []*os.File{a, b}
		}},
		{"five TCP sockets (truncated)", []byte{passMarker}, func(t *testing.T) []*os.File {
			var fs []*os.File
			for range 3 {
				a, b := tcpPair(t)
				fs = append(fs, a, b)
			}
			fs[5].Close()
			return fs[:5]
		}},
		{"TCP socket without the marker", []byte("G"), func(t *testing.T) []*os.File {
			a, b := tcpPair(t)
			b.Close()
			return []*os.File{a}
		}},
		{"TCP socket with a request", []byte("GET http://allowed.test/ HTTP/1.1\r\n\r\n"), func(t *testing.T) []*os.File {
			a, b := tcpPair(t)
			b.Close()
			return []*os.File{a}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.audit.reset()
			before := openFDs(t)
			files := tc.fds(t)
			var fds []int
			for _, f := range files {
				fds = append(fds, int(f.Fd()))
			}
			c, err := net.Dial("unix", e.sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := c.(*net.UnixConn).WriteMsgUnix(tc.data, syscall.UnixRights(fds...), nil); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 || resp.Header.Get(DenyHeader) != ReasonBadRequest {
				t.Errorf("answer %s %q, want 400 bad_request", resp.Status, resp.Header.Get(DenyHeader))
			}
			if evs := e.audit.wait(t, 1); evs[0].Decision != "deny" || evs[0].Reason != ReasonBadRequest {
				t.Errorf("event %+v", evs[0])
			}
			c.Close()
			for _, f := range files {
				f.Close()
			}
			// Whatever the proxy received, it closed.
			waitFor(t, func() bool { return openFDs(t) <= before })
		})
	}
	if n := e.p.Stats().Passed.Load(); n != 0 {
		t.Errorf("passed = %d, want 0", n)
	}
}

// TestPassedSocketMadeBlocking: a sender that keeps a copy of the socket
// it passed and clears O_NONBLOCK on it (the flag is shared) would make
// the proxy's reads ignore their deadlines; the guard shuts the socket
// down instead, so the header time-out still ends the connection.
func TestPassedSocketMadeBlocking(t *testing.T) {
	e := newProxyEnv(t, WithHeaderTimeout(200*time.Millisecond))
	client, server := tcpPair(t)
	defer client.Close()
	defer server.Close()
	c, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.(*net.UnixConn).WriteMsgUnix([]byte{passMarker}, syscall.UnixRights(int(server.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != passAck {
		t.Fatalf("ack %q %v", ack, err)
	}
	// Our copy shares the open file description with the proxy's. With
	// O_NONBLOCK cleared, the proxy's next read after the first byte
	// blocks in the kernel, where its 200 ms deadline cannot reach it.
	if err := syscall.SetNonblock(int(server.Fd()), false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := client.Write([]byte("G")); err != nil {
		t.Fatal(err)
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := client.Read(make([]byte, 1))
	took := time.Since(start)
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("client read %d, %v; want EOF from the proxy's shutdown", n, err)
	}
	// Ended by the guard (deadline + passedOverrun), not the deadline.
	if took < passedOverrun-100*time.Millisecond || took > 5*time.Second {
		t.Errorf("ended after %v, want about %v", took, 200*time.Millisecond+passedOverrun)
	}
	waitFor(t, func() bool { return e.p.Stats().NoRequest.Load() == 1 })
}

func TestParseRights(t *testing.T) {
	for _, tc := range []struct {
		name    string
		oob     []byte
		want    []int
		wantErr bool
	}{
		{"none", nil, nil, false},
		{"one", syscall.UnixRights(7), []int{7}, false},
		{"three", syscall.UnixRights(7, 8, 9), []int{7, 8, 9}, false},
		{"two messages", append(syscall.UnixRights(7), syscall.UnixRights(8)...), []int{7, 8}, false},
		{"credentials", syscall.UnixCredentials(&syscall.Ucred{Pid: 1}), nil, true},
		{"rights after credentials", append(syscall.UnixCredentials(&syscall.Ucred{Pid: 1}), syscall.UnixRights(5)...), []int{5}, true},
		{"short header", syscall.UnixRights(7)[:10], nil, true},
		{"length past the end", syscall.UnixRights(7, 8)[:syscall.CmsgLen(4)], nil, true},
		{"trailing bytes", append(syscall.UnixRights(7), 1, 2, 3), []int{7}, true},
	} {
		got, err := parseRights(tc.oob)
		if diff := cmp.Diff(tc.want, got); diff != "" || (err != nil) != tc.wantErr {
			t.Errorf("%s: fds (-want +got):\n%s\nerr = %v, want error %v", tc.name, diff, err, tc.wantErr)
		}
		if err != nil && !errors.Is(err, ErrPassedFD) {
			t.Errorf("%s: err = %v, want ErrPassedFD", tc.name, err)
		}
	}
}

// FuzzParseRights: control buffers of any shape never panic, and every
// descriptor returned lies inside an SCM_RIGHTS message.
func FuzzParseRights(f *testing.F) {
	f.Add(syscall.UnixRights(3))
	f.Add(syscall.UnixRights(3, 4, 5, 6, 7))
	f.Add(append(syscall.UnixRights(3), syscall.UnixCredentials(&syscall.Ucred{})...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 1, 0, 0, 0})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, oob []byte) {
		fds, err := parseRights(oob)
		if len(fds) > len(oob)/4 {
			t.Fatalf("%d descriptors from %d bytes", len(fds), len(oob))
		}
		if err != nil && !errors.Is(err, ErrPassedFD) {
			t.Fatalf("err = %v", err)
		}
		if err == nil && len(oob) > 0 {
			// A buffer parsed cleanly must round-trip as rights messages.
			var again []byte
			for _, fd := range fds {
				again = append(again, syscall.UnixRights(fd)...)
			}
			if got, _ := parseRights(again); !cmp.Equal(got, fds) {
				t.Fatalf("round trip %v != %v", got, fds)
			}
		}
	})
}
