package netpol

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// Credential is a secret the proxy adds to the plain-HTTP requests a
// sandbox sends to one destination, so the sandbox never holds it. An
// agent in the sandbox is given a placeholder key and a plain-HTTP base
// URL for its model API; its requests reach the proxy over the session's
// socket, the proxy decides them like any request, replaces the
// credential headers with the real one, and speaks TLS upstream when
// UpstreamTLS is set. The key is never in the sandbox's environment, its
// files or any event (net.egress records no headers).
type Credential struct {
	// Host and Port are the destination as the request names it.
	Host string
	Port uint16
	// Header is the header that carries the secret (Authorization,
	// x-api-key); Value is its whole value ("Bearer sk-…").
	Header string
	Value  string
	// UpstreamTLS connects with TLS, verified against Host, to
	// UpstreamPort (0: Port). The decision is made on that port.
	UpstreamTLS  bool
	UpstreamPort uint16
	// RootCAs verifies the upstream (nil: the system roots). For tests.
	RootCAs *x509.CertPool
}

// credentialHeaders are removed from a request a credential applies to,
// whatever the sandbox put there.
var credentialHeaders = []string{"Authorization", "X-Api-Key", "Api-Key", "Proxy-Authorization"}

// WithCredentials makes the proxy add each credential to the plain-HTTP
// requests for its destination.
func WithCredentials(cs ...Credential) ProxyOption {
	return func(c *proxyConfig) { c.credentials = append(c.credentials, cs...) }
}

func (c Credential) upstreamPort() uint16 {
	if c.UpstreamPort != 0 {
		return c.UpstreamPort
	}
	return c.Port
}

// credentialFor returns the credential for host:port, or nil.
func (p *Proxy) credentialFor(host string, port uint16) *Credential {
	for i := range p.cfg.credentials {
		c := &p.cfg.credentials[i]
		if c.Port == port && strings.EqualFold(strings.TrimSuffix(c.Host, "."), strings.TrimSuffix(host, ".")) {
			return c
		}
	}
	return nil
}

// apply puts the credential on req in place of whatever the sandbox sent.
func (c *Credential) apply(h http.Header) {
	for _, k := range credentialHeaders {
		h.Del(k)
	}
	h.Set(c.Header, c.Value)
}

// upstream wraps a dialed connection in TLS when the credential asks.
func (c *Credential) upstream(ctx context.Context, conn net.Conn, host string) (net.Conn, error) {
	if !c.UpstreamTLS {
		return conn, nil
	}
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("netpol: TLS to %s: %w", host, err)
	}
	return tc, nil
}
