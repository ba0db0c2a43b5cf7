package netpol

import (
	"crypto/x509"
	"fmt"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/internal/events"
)

// TestProxyCredential: a plain-HTTP request to a destination the proxy
// holds a credential for is decided on its upstream, sent there over TLS
// with the real key in place of whatever the sandbox sent, and the key
// appears in no event.
func TestProxyCredential(t *testing.T) {
	const secret = "sk-real-4b1d"
	pool := x509.NewCertPool()
	e := newProxyEnv(t, WithCredentials(Credential{Host: "127.0.0.1", Port: 80, Header: "Authorization",
		Value: "Bearer " + secret, UpstreamTLS: true, UpstreamPort: 0, RootCAs: pool}))
	pool.AddCert(e.tls.Certificate())
	// The port is known only now: point the credential at the TLS server.
	e.p.cfg.credentials[0].UpstreamPort = e.tp

	req := "POST http://127.0.0.1:80/v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer placeholder\r\n" +
		"X-Api-Key: placeholder\r\nContent-Length: 2\r\n\r\n{}"
	resp, body := e.raw(t, req)
	if resp.StatusCode != 200 || body != "hello POST /v1/responses {}" {
		t.Fatalf("got %s %q", resp.Status, body)
	}
	seen := <-e.served
	if got := seen.Header.Get("Authorization"); got != "Bearer "+secret {
		t.Errorf("upstream saw Authorization %q, want the real key", got)
	}
	if got := seen.Header.Get("X-Api-Key"); got != "" {
		t.Errorf("upstream saw the sandbox's X-Api-Key %q", got)
	}
	if seen.TLS == nil {
		t.Error("upstream was reached without TLS")
	}
	evs := e.audit.wait(t, 2)
	if evs[0].Port != e.tp || evs[0].Rule != "loopback-tls" {
		t.Errorf("decision %+v: want it made on the upstream port %d", evs[0], e.tp)
	}
	e.audit.mu.Lock()
	for _, ev := range e.audit.evs {
		if raw, _ := events.Marshal(ev); strings.Contains(string(raw), secret) {
			t.Errorf("an event carries the key: %s", raw)
		}
	}
	e.audit.mu.Unlock()

	// Other destinations get no credential, and keep their own headers.
	e.audit.reset()
	resp, _ = e.raw(t, fmt.Sprintf("GET http://allowed.test:%d/other HTTP/1.1\r\nHost: allowed.test\r\nAuthorization: Bearer own\r\n\r\n", e.hp))
	if resp.StatusCode != 200 {
		t.Fatalf("other: %s", resp.Status)
	}
	if got := (<-e.served).Header.Get("Authorization"); got != "Bearer own" {
		t.Errorf("other destination saw Authorization %q", got)
	}
}
