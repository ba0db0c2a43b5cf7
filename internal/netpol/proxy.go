package netpol

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// ErrProxyClosed is returned by Serve after Close.
var ErrProxyClosed = errors.New("netpol: proxy closed")

// DenyHeader carries the reason code on every response the proxy makes
// up itself, so an agent can tell a policy block (403), a malformed
// request (400, 431) and a network failure (502) apart by code.
const DenyHeader = "X-Deny-Reason"

// Proxy is one sandbox session's egress proxy: an HTTP forward proxy for
// absolute-URI plain-HTTP requests and CONNECT tunnels for TLS. It decides
// every connection with its Decider, records it through its Auditor, and
// dials only the addresses the decision checked.
//
// A plain-HTTP client connection carries one request: the proxy answers
// with "Connection: close", so every request is decided (and its method
// checked) on its own, and nothing can be pipelined past the check.
type Proxy struct {
	decider *Decider
	session Session
	audit   Auditor
	cfg     proxyConfig
	log     *slog.Logger
	grants  *grants
	stats   ProxyStats

	ctx    context.Context
	cancel context.CancelFunc

	active    atomic.Int64 // admitted client connections
	rejecting atomic.Int64 // connections being refused for the limit

	// dialContext connects upstream; tests wrap it to prove that only
	// checked loopback addresses are ever dialed.
	dialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// ProxyStats counts what the proxy did; every refusal and drop is counted.
type ProxyStats struct {
	Accepted      atomic.Uint64 // client connections accepted
	Passed        atomic.Uint64 // of those, client sockets passed by the bridge
	Allowed       atomic.Uint64 // connections dialed upstream
	Denied        atomic.Uint64 // refused with a reason (any status)
	Asked         atomic.Uint64 // approval requests raised
	Limited       atomic.Uint64 // refused with connection_limit
	Dropped       atomic.Uint64 // closed without an answer: over twice the limit
	NoRequest     atomic.Uint64 // closed before a full request head arrived
	IdleTimeouts  atomic.Uint64
	Panics        atomic.Uint64
	AuditFailures atomic.Uint64
}

type proxyConfig struct {
	approver        Approver
	approvalTimeout time.Duration
	maxConns        int
	idleTimeout     time.Duration
	headerTimeout   time.Duration
	dialTimeout     time.Duration
	auditTimeout    time.Duration
	maxHeaderBytes  int
	log             *slog.Logger
	credentials     []Credential
}

// ProxyOption configures a Proxy.
type ProxyOption func(*proxyConfig)

// WithApprover sets who answers ask decisions. Without one, ask is
// denied with never_ask.
func WithApprover(a Approver) ProxyOption { return func(c *proxyConfig) { c.approver = a } }

// WithApprovalTimeout bounds how long a connection is held for an
// approval before it is denied with approval_expired (default 15 min, the
// approvals default).
func WithApprovalTimeout(d time.Duration) ProxyOption {
	return func(c *proxyConfig) { c.approvalTimeout = d }
}

// WithMaxConns bounds concurrent client connections (default 64); the
// excess is answered 403 connection_limit.
func WithMaxConns(n int) ProxyOption { return func(c *proxyConfig) { c.maxConns = n } }

// WithIdleTimeout closes a connection with no bytes either way for d
// (default 5 min), recorded as idle_timeout.
func WithIdleTimeout(d time.Duration) ProxyOption { return func(c *proxyConfig) { c.idleTimeout = d } }

// WithHeaderTimeout bounds reading a request head, and a tunnel's TLS
// ClientHello (default 10 s).
func WithHeaderTimeout(d time.Duration) ProxyOption {
	return func(c *proxyConfig) { c.headerTimeout = d }
}

// WithDialTimeout bounds each upstream connect (default 10 s).
func WithDialTimeout(d time.Duration) ProxyOption { return func(c *proxyConfig) { c.dialTimeout = d } }

// WithMaxHeaderBytes bounds a request head (default 32 KiB); more is
// answered 431 header_too_large.
func WithMaxHeaderBytes(n int) ProxyOption { return func(c *proxyConfig) { c.maxHeaderBytes = n } }

// WithProxyLogger sets the logger; the default discards.
func WithProxyLogger(l *slog.Logger) ProxyOption { return func(c *proxyConfig) { c.log = l } }

// NewProxy returns a proxy for one session. d decides, a records (it must
// acknowledge before the proxy dials: pass the runner's
// *eventlog.Producer), s names the session on every event.
func NewProxy(d *Decider, s Session, a Auditor, opts ...ProxyOption) (*Proxy, error) {
	cfg := proxyConfig{
		approvalTimeout: 15 * time.Minute,
		maxConns:        64,
		idleTimeout:     5 * time.Minute,
		headerTimeout:   10 * time.Second,
		dialTimeout:     10 * time.Second,
		auditTimeout:    10 * time.Second,
		maxHeaderBytes:  32 << 10,
		log:             slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case d == nil:
		return nil, errors.New("netpol: NewProxy: nil Decider")
	case a == nil:
		return nil, errors.New("netpol: NewProxy: nil Auditor")
	case cfg.maxConns < 1 || cfg.maxHeaderBytes < 512 || cfg.headerTimeout <= 0 || cfg.dialTimeout <= 0 || cfg.approvalTimeout <= 0:
		return nil, errors.New("netpol: NewProxy: limits must be positive (max conns >= 1, max header bytes >= 512)")
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	dialer := &net.Dialer{Timeout: cfg.dialTimeout}
	return &Proxy{
		dialContext: dialer.DialContext,
		decider:     d,
		session:     s,
		audit:       a,
		cfg:         cfg,
		log:         cfg.log.With("session_id", s.ID),
		grants:      newGrants(),
		ctx:         ctx,
		cancel:      cancel,
		listeners:   map[net.Listener]struct{}{},
		conns:       map[net.Conn]struct{}{},
	}, nil
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() *ProxyStats { return &p.stats }

// Serve accepts connections on ln until Close; it returns ErrProxyClosed
// then, or the listener's error.
func (p *Proxy) Serve(ln net.Listener) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		return ErrProxyClosed
	}
	p.listeners[ln] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.listeners, ln)
		p.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil {
				return ErrProxyClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors or similar: back off instead of
				// spinning, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.log.Warn("egress accept failed; backing off", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		p.stats.Accepted.Add(1)
		admitted := p.active.Add(1) <= int64(p.cfg.maxConns)
		if !admitted {
			p.active.Add(-1)
			if p.rejecting.Add(1) > int64(p.cfg.maxConns) {
				// Refusing costs a goroutine and an event; past twice the
				// limit the connection is dropped unanswered, and counted.
				p.rejecting.Add(-1)
				p.stats.Dropped.Add(1)
				conn.Close()
				continue
			}
		}
		if !p.track(conn) {
			conn.Close()
			return ErrProxyClosed
		}
		p.wg.Add(1)
		go p.handle(conn, admitted)
	}
}

// Close stops accepting, ends every connection (each still records its
// closing event), and waits for the handlers to finish.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.cancel()
	for ln := range p.listeners {
		ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// clientConn is the sandbox side of one connection. Reads go through br;
// idle > 0 makes every read and write push the deadline out by idle,
// otherwise the caller's absolute deadline stands.
type clientConn struct {
	net.Conn
	br   *bufio.Reader
	pre  []byte       // read before br existed (the Unix socket's first byte)
	idle atomic.Int64 // time.Duration
}

type idleReader struct{ c *clientConn }

func (r idleReader) Read(b []byte) (int, error) {
	if len(r.c.pre) > 0 {
		n := copy(b, r.c.pre)
		r.c.pre = r.c.pre[n:]
		return n, nil
	}
	if d := time.Duration(r.c.idle.Load()); d > 0 {
		r.c.Conn.SetReadDeadline(time.Now().Add(d))
	}
	return r.c.Conn.Read(b)
}

func (c *clientConn) Read(b []byte) (int, error) { return c.br.Read(b) }

func (c *clientConn) Write(b []byte) (int, error) {
	if d := time.Duration(c.idle.Load()); d > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(d))
	}
	return c.Conn.Write(b)
}

func (p *Proxy) handle(conn net.Conn, admitted bool) {
	defer p.wg.Done()
	defer p.untrack(conn)
	defer conn.Close()
	if admitted {
		defer p.active.Add(-1)
	} else {
		defer p.rejecting.Add(-1)
	}
	defer func() {
		if r := recover(); r != nil {
			p.stats.Panics.Add(1)
			p.log.Error("egress connection handler panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	headerTimeout := p.cfg.headerTimeout
	if !admitted {
		headerTimeout = min(headerTimeout, 2*time.Second)
	}
	conn.SetDeadline(time.Now().Add(headerTimeout))
	rec := &egressRecord{Started: time.Now(), Verdict: Deny}
	var first []byte
	if uc, ok := conn.(*net.UnixConn); ok {
		pc, b, err := p.receive(uc, rec)
		switch {
		case err != nil:
			return
		case pc != nil:
			// The bridge's client socket is the client from here on; it
			// keeps this connection's admission slot.
			defer p.untrack(pc)
			defer pc.Close()
			conn = pc
			conn.SetDeadline(time.Now().Add(headerTimeout))
		case b == nil:
			p.stats.NoRequest.Add(1)
			return
		default:
			first = b
		}
	}
	c := &clientConn{Conn: conn, pre: first}
	c.br = bufio.NewReaderSize(idleReader{c}, 4096)
	head, err := readHead(c.br, p.cfg.maxHeaderBytes)
	if err != nil {
		if errors.Is(err, ErrHeaderTooLarge) {
			rec.Method, rec.Host, rec.Port = sniffTarget(head)
			p.refuse(c, http.StatusRequestHeaderFieldsTooLarge, rec, ReasonHeaderTooLarge, "request header too large")
			return
		}
		// EOF or time-out before a request: nothing was asked for.
		p.stats.NoRequest.Add(1)
		return
	}
	h, err := ParseRequestHead(head)
	if err != nil {
		rec.Method, rec.Host, rec.Port = sniffTarget(head)
		p.refuse(c, http.StatusBadRequest, rec, ReasonBadRequest, err.Error())
		return
	}
	rec.Method = h.Method
	if h.Method == http.MethodConnect {
		if host, port, err := ParseAuthority(h.Target); err == nil {
			rec.Host, rec.Port = host.String(), port
		}
	} else if tg, err := ParseTarget(h.Target); err == nil {
		rec.Host, rec.Port = tg.Host.String(), tg.Port
	}
	if !admitted {
		p.stats.Limited.Add(1)
		p.refuse(c, http.StatusForbidden, rec, ReasonConnectionLimit,
			fmt.Sprintf("more than %d concurrent connections", p.cfg.maxConns))
		return
	}
	conn.SetDeadline(time.Time{})
	if h.Method == http.MethodConnect {
		p.connect(c, h, rec)
		return
	}
	p.forward(c, h, head, rec)
}

// receive reads a Unix connection's first byte. A passed client socket
// (see passfd.go) is checked, acknowledged and returned; the Unix
// connection is then closed. A refused descriptor is answered 400
// bad_request and recorded; err is then set, as it is when the
// acknowledgement cannot be written (the socket is closed, unused).
// Otherwise b is the first byte of a plain request, or nil at end of
// stream.
func (p *Proxy) receive(uc *net.UnixConn, rec *egressRecord) (pc *passedConn, b []byte, err error) {
	pc, b, err = receiveFirst(uc)
	if err != nil {
		if !errors.Is(err, ErrPassedFD) {
			p.stats.NoRequest.Add(1)
			return nil, nil, err
		}
		p.log.Info("egress bridge passed an unusable descriptor", "err", err)
		p.refuse(&clientConn{Conn: uc}, http.StatusBadRequest, rec, ReasonBadRequest, err.Error())
		return nil, nil, err
	}
	if pc == nil {
		return nil, b, nil
	}
	if !p.track(pc) {
		pc.Close()
		return nil, nil, ErrProxyClosed
	}
	if _, err := uc.Write([]byte{passAck}); err != nil {
		// The bridge will not know the proxy took the socket; it drops
		// the client after its time-out. Nothing was asked for yet.
		p.untrack(pc)
		pc.Close()
		p.stats.NoRequest.Add(1)
		return nil, nil, err
	}
	p.stats.Passed.Add(1)
	uc.Close()
	return pc, nil, nil
}

// decide runs the policy and, for ask, the approval. It fills rec with the
// verdict to act on and returns the decision (for its addresses).
func (p *Proxy) decide(req Request, rec *egressRecord) Decision {
	d := p.decider.Decide(p.ctx, req)
	rec.Host, rec.Port = d.Host, d.Port
	rec.Verdict, rec.Reason, rec.RuleID = d.Verdict, d.Reason, d.RuleID
	rec.PolicyID, rec.PolicySHA = d.PolicyID, d.PolicySHA256
	if d.DeniedAddr.IsValid() {
		rec.ResolvedIP = d.DeniedAddr
	} else if len(d.Addrs) > 0 {
		rec.ResolvedIP = d.Addrs[0]
	}
	if d.Verdict == Ask {
		rec.Verdict, rec.Reason, rec.ApprovalID = p.approve(p.ctx, d, rec)
	}
	if rec.Verdict == Allow && len(d.Addrs) == 0 {
		// Cannot happen with a Decider (an allow always checked an
		// address), but never dial what was not checked.
		rec.Verdict, rec.Reason = Deny, ReasonDNSFailure
	}
	return d
}

// connect serves a CONNECT tunnel.
func (p *Proxy) connect(c *clientConn, h RequestHead, rec *egressRecord) {
	host, port, err := ParseAuthority(h.Target)
	if err != nil {
		p.refuse(c, http.StatusBadRequest, rec, ReasonBadRequest, "CONNECT target: "+err.Error())
		return
	}
	if h.ContentLength > 0 || h.Chunked {
		p.refuse(c, http.StatusBadRequest, rec, ReasonBadRequest, "CONNECT with a body")
		return
	}
	d := p.decide(Request{Host: host.String(), Port: port, Method: http.MethodConnect, Scheme: "https"}, rec)
	if rec.Verdict != Allow {
		p.refuse(c, http.StatusForbidden, rec, rec.Reason, "")
		return
	}
	c.SetWriteDeadline(time.Now().Add(p.cfg.headerTimeout))
	if _, err := io.WriteString(c.Conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		p.denyAfter(rec, ReasonBadRequest)
		return
	}
	// TLS is not intercepted, but the name the client asks the server for
	// must be the one the policy allowed: otherwise "CONNECT allowed:443"
	// could carry a hello for any site sharing that address (a CDN).
	c.SetReadDeadline(time.Now().Add(p.cfg.headerTimeout))
	hello, err := ReadClientHello(c.br, 0)
	if err != nil {
		reason := ReasonBadRequest
		if errors.Is(err, os.ErrDeadlineExceeded) {
			reason = ReasonTimeout
		}
		p.log.Debug("egress tunnel without a usable ClientHello", "host", rec.Host, "err", err)
		p.denyAfter(rec, reason)
		return
	}
	rec.SNI = hello.SNI
	if !sniMatches(host, hello.SNI) {
		p.log.Info("egress tunnel SNI does not match CONNECT host", "host", rec.Host, "sni", hello.SNI)
		p.denyAfter(rec, ReasonSNIMismatch)
		return
	}
	c.SetDeadline(time.Time{})
	up, ok := p.dialAllowed(d, rec)
	if !ok {
		return
	}
	defer up.Close()
	defer p.untrack(up)
	// Forward the hello and anything the client sent after it (0-RTT
	// data) before handing over to the kernel-level copy.
	first := hello.Raw
	if n := c.br.Buffered(); n > 0 {
		extra, _ := c.br.Peek(n)
		first = append(first, extra...)
		c.br.Discard(n)
	}
	if _, err := up.Write(first); err != nil {
		rec.Reason = ReasonUpstreamError
		p.emitAfter(events.PhaseClosed, rec)
		return
	}
	sent, recv, idled := tunnel(c.Conn, up, p.cfg.idleTimeout)
	rec.Sent, rec.Recv = sent+int64(len(first)), recv
	if idled {
		p.stats.IdleTimeouts.Add(1)
		rec.Reason = ReasonIdleTimeout
	}
	p.emitAfter(events.PhaseClosed, rec)
}

// sniMatches: an SNI must name the CONNECT host. A name CONNECT without
// SNI is refused (every client that connects by name sends one; a missing
// one means the client hides which site it wants). An IP CONNECT normally
// has no SNI (RFC 6066 forbids IP literals there), and one carrying a
// name is refused for the same reason as a different name.
func sniMatches(host Host, sni string) bool {
	if sni == "" {
		return host.IsIP()
	}
	if host.IsIP() {
		return false
	}
	got, err := ParseHost(sni)
	return err == nil && !got.IsIP() && got.Name == host.Name
}

// dialAllowed records the allow decision (acknowledged), then dials. On
// failure it has already recorded and answered as far as it can.
func (p *Proxy) dialAllowed(d Decision, rec *egressRecord) (net.Conn, bool) {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.auditTimeout)
	_, err := p.emit(ctx, events.PhaseDecision, rec)
	cancel()
	if err != nil {
		p.log.Warn("egress decision not acknowledged; refusing", "host", rec.Host, "err", err)
		rec.Verdict, rec.Reason = Deny, ReasonAuditUnavailable
		p.emitAfter(events.PhaseClosed, rec)
		return nil, false
	}
	up, addr, err := p.dial(d.Addrs, d.Port)
	if err != nil {
		p.log.Info("egress dial failed", "host", rec.Host, "port", rec.Port, "err", err)
		rec.Reason = ReasonUpstreamError
		p.emitAfter(events.PhaseClosed, rec)
		return nil, false
	}
	rec.ResolvedIP = addr
	p.stats.Allowed.Add(1)
	if !p.track(up) {
		up.Close()
		rec.Reason = ReasonUpstreamError
		p.emitAfter(events.PhaseClosed, rec)
		return nil, false
	}
	return up, true
}

// dial connects to the checked addresses in order, never to a name.
func (p *Proxy) dial(addrs []netip.Addr, port uint16) (net.Conn, netip.Addr, error) {
	var errs []error
	for _, a := range addrs {
		c, err := p.dialContext(p.ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err == nil {
			return c, a, nil
		}
		errs = append(errs, err)
	}
	return nil, netip.Addr{}, errors.Join(errs...)
}

// hopByHop are removed in both directions (RFC 9110 §7.6.1), with the
// fields Connection names. Upgrade goes too: a protocol switch would turn
// the request into an unchecked tunnel.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}

func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, f := range hopByHop {
		h.Del(f)
	}
}

// forward serves one absolute-URI plain-HTTP request.
func (p *Proxy) forward(c *clientConn, h RequestHead, head []byte, rec *egressRecord) {
	tg, err := ParseTarget(h.Target)
	if err != nil {
		p.refuse(c, http.StatusBadRequest, rec, ReasonBadRequest, "request target: "+err.Error())
		return
	}
	if tg.Scheme != "http" {
		p.refuse(c, http.StatusBadRequest, rec, ReasonBadRequest, "only http:// URIs are forwarded; use CONNECT for TLS")
		return
	}
	// A destination the proxy holds a credential for is decided, and
	// dialed, as the upstream it really connects to.
	cred := p.credentialFor(tg.Host.String(), tg.Port)
	port := tg.Port
	if cred != nil {
		port = cred.upstreamPort()
	}
	d := p.decide(Request{Host: tg.Host.String(), Port: port, Method: h.Method, Scheme: SchemeHTTP}, rec)
	if rec.Verdict != Allow {
		p.refuse(c, http.StatusForbidden, rec, rec.Reason, "")
		return
	}
	// net/http frames the body and re-serialises the request, from the
	// same bytes ParseRequestHead has already checked for ambiguity.
	req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(bytes.NewReader(head), c.br)))
	if err != nil {
		p.refuse(c, http.StatusBadRequest, rec, ReasonBadRequest, "request: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.auditTimeout)
	_, err = p.emit(ctx, events.PhaseDecision, rec)
	cancel()
	if err != nil {
		p.log.Warn("egress decision not acknowledged; refusing", "host", rec.Host, "err", err)
		p.refuse(c, http.StatusForbidden, rec, ReasonAuditUnavailable, "")
		return
	}
	up, addr, err := p.dial(d.Addrs, d.Port)
	if err != nil {
		p.log.Info("egress dial failed", "host", rec.Host, "port", rec.Port, "err", err)
		p.answerClosed(c, http.StatusBadGateway, rec, ReasonUpstreamError)
		return
	}
	rec.ResolvedIP = addr
	p.stats.Allowed.Add(1)
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	defer up.Close()
	if cred != nil {
		cred.apply(req.Header)
		hctx, cancel := context.WithTimeout(p.ctx, p.cfg.dialTimeout)
		tup, err := cred.upstream(hctx, up, tg.Host.String())
		cancel()
		if err != nil {
			p.log.Info("egress upstream TLS failed", "host", rec.Host, "port", rec.Port, "err", err)
			p.answerClosed(c, http.StatusBadGateway, rec, ReasonUpstreamError)
			return
		}
		up = tup
	}
	c.idle.Store(int64(p.cfg.idleTimeout))
	upc := &countingConn{Conn: up, idle: p.cfg.idleTimeout}

	expect := strings.EqualFold(req.Header.Get("Expect"), "100-continue")
	req.Header.Del("Expect")
	removeHopByHop(req.Header)
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // stops net/http adding its own
	}
	req.RequestURI = ""
	req.Close = true
	if expect {
		if _, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			p.closeRecord(rec, upc, err)
			return
		}
	}
	bw := bufio.NewWriter(upc)
	if err := req.Write(bw); err == nil {
		err = bw.Flush()
	} else {
		p.answerClosed(c, http.StatusBadGateway, rec, reasonFor(err, ReasonUpstreamError))
		rec.Sent, rec.Recv = upc.sent.Load(), upc.recv.Load()
		return
	}
	br := bufio.NewReader(upc)
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			rec.Sent, rec.Recv = upc.sent.Load(), upc.recv.Load()
			p.answerClosed(c, http.StatusBadGateway, rec, reasonFor(err, ReasonUpstreamError))
			return
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx informational (103 Early Hints): pass it on, read on.
		removeHopByHop(resp.Header)
		if err := resp.Write(c); err != nil {
			p.closeRecord(rec, upc, err)
			return
		}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		rec.Sent, rec.Recv = upc.sent.Load(), upc.recv.Load()
		p.answerClosed(c, http.StatusBadGateway, rec, ReasonUpstreamError)
		return
	}
	rec.Status = resp.StatusCode
	removeHopByHop(resp.Header)
	resp.Close = true
	err = resp.Write(c)
	p.closeRecord(rec, upc, err)
}

func (p *Proxy) closeRecord(rec *egressRecord, upc *countingConn, err error) {
	rec.Sent, rec.Recv = upc.sent.Load(), upc.recv.Load()
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		p.stats.IdleTimeouts.Add(1)
		rec.Reason = ReasonIdleTimeout
	}
	p.emitAfter(events.PhaseClosed, rec)
}

func reasonFor(err error, def string) string {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ReasonIdleTimeout
	}
	return def
}

// answerClosed answers an allowed request the proxy could not complete
// and records the close.
func (p *Proxy) answerClosed(c *clientConn, status int, rec *egressRecord, reason string) {
	rec.Reason, rec.Status = reason, status
	p.emitAfter(events.PhaseClosed, rec)
	writeRefusal(c.Conn, status, reason, refusalLine(rec, ""), p.cfg.headerTimeout)
}

// refuse records a refused request's decision, then answers it: by the
// time the agent reads the reason, the record holds it.
func (p *Proxy) refuse(c *clientConn, status int, rec *egressRecord, reason, detail string) {
	rec.Verdict, rec.Reason, rec.Status = Deny, reason, status
	p.stats.Denied.Add(1)
	p.emitAfter(events.PhaseDecision, rec)
	writeRefusal(c.Conn, status, reason, refusalLine(rec, detail), p.cfg.headerTimeout)
}

// denyAfter records a refusal after "200 Connection established", when
// the only answer left is closing the tunnel.
func (p *Proxy) denyAfter(rec *egressRecord, reason string) {
	rec.Verdict, rec.Reason = Deny, reason
	p.stats.Denied.Add(1)
	p.emitAfter(events.PhaseDecision, rec)
}

func refusalLine(rec *egressRecord, detail string) string {
	var b strings.Builder
	b.WriteString("agentaudit egress proxy: ")
	if rec.Host != "" {
		fmt.Fprintf(&b, "%s %s: ", rec.Method, hostPort(rec.Host, rec.Port))
	}
	if rec.Verdict == Deny {
		b.WriteString("denied: ")
	} else {
		b.WriteString("failed: ")
	}
	b.WriteString(rec.Reason)
	if rec.RuleID != "" {
		fmt.Fprintf(&b, " (rule %s)", rec.RuleID)
	}
	if detail != "" {
		b.WriteString(": ")
		b.WriteString(detail)
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, b.String())
}

func writeRefusal(w net.Conn, status int, reason, line string, timeout time.Duration) {
	w.SetWriteDeadline(time.Now().Add(timeout))
	body := line + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\n%s: %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), DenyHeader, reason, len(body), body)
}

// sniffTarget extracts method and destination from a head that failed to
// parse, for the record only (never to dial).
func sniffTarget(head []byte) (method, host string, port uint16) {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 2 {
		return "", "", 0
	}
	method = fields[0]
	if method == http.MethodConnect {
		if h, p, err := ParseAuthority(fields[1]); err == nil {
			return method, h.String(), p
		}
		return method, "", 0
	}
	if tg, err := ParseTarget(fields[1]); err == nil {
		return method, tg.Host.String(), tg.Port
	}
	return method, "", 0
}

// countingConn counts bytes each way and pushes deadlines out by idle on
// every read and write.
type countingConn struct {
	net.Conn
	idle       time.Duration
	sent, recv atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	if c.idle > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	n, err := c.Conn.Read(b)
	c.recv.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	if c.idle > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	}
	n, err := c.Conn.Write(b)
	c.sent.Add(int64(n))
	return n, err
}
