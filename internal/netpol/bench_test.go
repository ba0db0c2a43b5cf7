package netpol

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// nopAuditor acknowledges at once: the set-up benchmarks measure the
// proxy, and BenchmarkEgressAuditAck measures the acknowledgement.
type nopAuditor struct{}

func (nopAuditor) Emit(context.Context, *events.Envelope) error      { return nil }
func (nopAuditor) EmitAfter(context.Context, *events.Envelope) error { return nil }

func newBenchEnv(b *testing.B) *proxyEnv {
	e := newProxyEnv(b, WithProxyLogger(slog.New(slog.DiscardHandler)), WithMaxConns(256))
	e.p.audit = nopAuditor{} // events are still built, just not sent
	e.p.dialContext = (&net.Dialer{}).DialContext
	return e
}

// percentiles returns p50 and p99 of ds in microseconds.
func percentiles(ds []time.Duration) (p50, p99 float64) {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) float64 { return float64(s[int(q*float64(len(s)-1))].Nanoseconds()) / 1e3 }
	return at(0.50), at(0.99)
}

// BenchmarkEgressSetup measures connection set-up, direct, through the
// proxy's Unix socket, and through bridge + proxy (the sandbox's path:
// TCP to the bridge, which passes the socket to the proxy), interleaved
// in one run so all see the same machine:
//   - tls: TCP connect + TLS handshake, vs Unix connect + CONNECT + 200 +
//     ClientHello check + upstream connect + the same handshake;
//   - http: a fresh connection and one small GET, vs the same through
//     the forward proxy.
//
// The audit acknowledgement is excluded (nopAuditor); the event is still
// built. Reported: p50 and p99 per path and the added p50 (proxy and
// bridge, each over direct), in µs.
func BenchmarkEgressSetup(b *testing.B) {
	e := newBenchEnv(b)
	tlsCfg := &tls.Config{InsecureSkipVerify: true, ServerName: "allowed.test"}
	direct := func() (time.Duration, error) {
		start := time.Now()
		c, err := tls.Dial("tcp", e.tls.Listener.Addr().String(), tlsCfg)
		if err != nil {
			return 0, err
		}
		d := time.Since(start)
		c.Close()
		return d, nil
	}
	proxied := func() (time.Duration, error) {
		start := time.Now()
		c, err := net.Dial("unix", e.sock)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n", e.tp, e.tp)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != 200 {
			return 0, fmt.Errorf("CONNECT: %v %v", resp, err)
		}
		tc := tls.Client(c, tlsCfg)
		if err := tc.Handshake(); err != nil {
			return 0, err
		}
		d := time.Since(start)
		tc.Close()
		return d, nil
	}
	// The sandbox's path: TCP to the bridge, which passes the socket on.
	bridgeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeBridge(ctx, bridgeLn, e.sock, nil)
	bridged := func() (time.Duration, error) {
		start := time.Now()
		c, err := net.Dial("tcp", bridgeLn.Addr().String())
		if err != nil {
			return 0, err
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT allowed.test:%d HTTP/1.1\r\nHost: allowed.test:%d\r\n\r\n", e.tp, e.tp)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != 200 {
			return 0, fmt.Errorf("CONNECT via bridge: %v %v", resp, err)
		}
		tc := tls.Client(c, tlsCfg)
		if err := tc.Handshake(); err != nil {
			return 0, err
		}
		d := time.Since(start)
		tc.Close()
		return d, nil
	}
	bridgeURL, _ := url.Parse("http://" + bridgeLn.Addr().String())
	bridgeHTTP := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(bridgeURL), DisableKeepAlives: true}}
	plainURL := fmt.Sprintf("http://allowed.test:%d/b", e.hp)
	directHTTP := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", e.plain.Listener.Addr().String())
		},
	}}
	proxyHTTP := e.client()
	get := func(c *http.Client) (time.Duration, error) {
		start := time.Now()
		resp, err := c.Get(plainURL)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("GET: %s", resp.Status)
		}
		return time.Since(start), nil
	}
	var dTLS, pTLS, bTLS, dHTTP, pHTTP, bHTTP []time.Duration
	for b.Loop() {
		for _, step := range []struct {
			f   func() (time.Duration, error)
			out *[]time.Duration
		}{
			{direct, &dTLS}, {proxied, &pTLS}, {bridged, &bTLS},
			{func() (time.Duration, error) { return get(directHTTP) }, &dHTTP},
			{func() (time.Duration, error) { return get(proxyHTTP) }, &pHTTP},
			{func() (time.Duration, error) { return get(bridgeHTTP) }, &bHTTP},
		} {
			d, err := step.f()
			if err != nil {
				b.Fatal(err)
			}
			*step.out = append(*step.out, d)
		}
	}
	report := func(name string, d, p, br []time.Duration) {
		d50, d99 := percentiles(d)
		p50, p99 := percentiles(p)
		b50, b99 := percentiles(br)
		b.ReportMetric(d50, name+"-direct-p50-µs")
		b.ReportMetric(d99, name+"-direct-p99-µs")
		b.ReportMetric(p50, name+"-proxy-p50-µs")
		b.ReportMetric(p99, name+"-proxy-p99-µs")
		b.ReportMetric(p50-d50, name+"-added-p50-µs")
		b.ReportMetric(b50, name+"-bridge-p50-µs")
		b.ReportMetric(b99, name+"-bridge-p99-µs")
		b.ReportMetric(b50-d50, name+"-bridge-added-p50-µs")
	}
	report("tls", dTLS, pTLS, bTLS)
	report("http", dHTTP, pHTTP, bHTTP)
	b.ReportMetric(0, "ns/op") // one op is six set-ups; the metrics above are the figures
}

const transferSize = 1 << 30

// sinkServer answers each connection by reading the client's hello
// record, then writing transferSize bytes and closing: the payload of a
// download through a tunnel, without TLS costs that would hide the
// proxy's.
func sinkServer(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := ReadClientHello(c, 0); err != nil {
					return
				}
				buf := make([]byte, 256<<10)
				for left := transferSize; left > 0; {
					n, err := c.Write(buf[:min(left, len(buf))])
					if err != nil {
						return
					}
					left -= n
				}
			}()
		}
	}()
	return ln
}

// download sends hello on c and reads until EOF, within a bound.
func download(c net.Conn, hello []byte) (time.Duration, error) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	start := time.Now()
	if _, err := c.Write(hello); err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	var got int64
	for {
		n, err := c.Read(buf)
		got += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if got != transferSize {
		return 0, fmt.Errorf("got %d bytes, want %d", got, transferSize)
	}
	return time.Since(start), nil
}

// BenchmarkEgressThroughput downloads 1 GiB per path, interleaved in one
// run: direct TCP; through the proxy's CONNECT tunnel on its Unix socket;
// through bridge + proxy (the sandbox's path, minus the container: the
// bridge passes the client socket to the proxy); and through a bridge
// that relays instead (its fallback, and the path before descriptor
// passing).
// Reported in MB/s, with the proxy's and the bridge path's share of
// direct in percent. Run it with -benchtime 1x..8x (the default 1s gives
// one op).
func BenchmarkEgressThroughput(b *testing.B) {
	e := newBenchEnv(b)
	sink := sinkServer(b)
	port := sink.Addr().(*net.TCPAddr).Port
	pol, err := Load([]byte(fmt.Sprintf("id: bench\nrules:\n  - id: sink\n    decision: allow\n    cidrs: [\"127.0.0.1/32\"]\n    ports: [%d]\n", port)))
	if err != nil {
		b.Fatal(err)
	}
	e.p.decider = NewDecider(pol)
	hello := captureHello(b, "127.0.0.1") // an IP CONNECT: no SNI

	bridgeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeBridge(ctx, bridgeLn, e.sock, nil)
	relayLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go serveBridge(ctx, relayLn, e.sock, nil, false)

	connect := func(c net.Conn) (net.Conn, error) {
		fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n", port)
		// Read the 39-byte answer exactly, so no payload is buffered away.
		ans := make([]byte, len("HTTP/1.1 200 Connection established\r\n\r\n"))
		if _, err := io.ReadFull(c, ans); err != nil || string(ans[9:12]) != "200" {
			return nil, fmt.Errorf("CONNECT: %q %v", ans, err)
		}
		return c, nil
	}
	paths := []struct {
		name string
		dial func() (net.Conn, error)
		took time.Duration
	}{
		{name: "direct", dial: func() (net.Conn, error) { return net.Dial("tcp", sink.Addr().String()) }},
		{name: "proxy", dial: func() (net.Conn, error) {
			c, err := net.Dial("unix", e.sock)
			if err != nil {
				return nil, err
			}
			return connect(c)
		}},
		{name: "bridge+proxy", dial: func() (net.Conn, error) {
			c, err := net.Dial("tcp", bridgeLn.Addr().String())
			if err != nil {
				return nil, err
			}
			return connect(c)
		}},
		{name: "bridge-relay+proxy", dial: func() (net.Conn, error) {
			c, err := net.Dial("tcp", relayLn.Addr().String())
			if err != nil {
				return nil, err
			}
			return connect(c)
		}},
	}
	if b.N > 8 {
		// Each op moves 4 GiB; a -benchtime meant for the set-up
		// benchmark must not turn into terabytes.
		b.Fatalf("b.N = %d: run this benchmark with -benchtime 1x..8x", b.N)
	}
	b.SetBytes(transferSize)
	b.ResetTimer()
	for range b.N {
		for i := range paths {
			c, err := paths[i].dial()
			if err != nil {
				b.Fatal(err)
			}
			d, err := download(c, hello)
			if err != nil {
				b.Fatalf("%s: %v", paths[i].name, err)
			}
			paths[i].took += d
		}
	}
	mbps := func(d time.Duration) float64 { return float64(b.N) * transferSize / 1e6 / d.Seconds() }
	direct := mbps(paths[0].took)
	for _, p := range paths {
		b.ReportMetric(mbps(p.took), p.name+"-MB/s")
	}
	b.ReportMetric(100*mbps(paths[1].took)/direct, "proxy-%-of-direct")
	b.ReportMetric(100*mbps(paths[2].took)/direct, "bridge-%-of-direct")
	b.ReportMetric(100*mbps(paths[3].took)/direct, "bridge-relay-%-of-direct")
}

// BenchmarkEgressAuditAck is the part the set-up figures exclude: Emit of
// a net.egress decision event to the real Kafka (acks=all), which the
// proxy waits for before it dials.
func BenchmarkEgressAuditAck(b *testing.B) {
	brokers := testenv.Kafka(b)
	ctx := context.Background()
	prod, err := eventlog.NewProducer(ctx, brokers, "netpol-bench", eventlog.WithEnsureTopics(1, 1))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close(context.Background())
	ids, err := events.NewIDGen(3)
	if err != nil {
		b.Fatal(err)
	}
	p := &Proxy{session: Session{ID: fmt.Sprintf("bench-%d", time.Now().UnixNano()), Tenant: "bench", IDs: ids,
		Actor: events.Actor{Type: events.ActorAgent, ID: "bench"}}, audit: prod}
	rec := &egressRecord{Host: "allowed.test", Port: 443, Method: "CONNECT", Verdict: Allow, Reason: ReasonAllowlisted}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := p.emit(ctx, events.PhaseDecision, rec); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	p50, p99 := percentiles(lat)
	b.ReportMetric(p50, "ack-p50-µs")
	b.ReportMetric(p99, "ack-p99-µs")
}
