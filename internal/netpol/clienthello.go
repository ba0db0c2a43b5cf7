package netpol

import (
	"errors"
	"fmt"
	"io"
)

// Errors of the ClientHello reader. Each is wrapped with detail; match
// with errors.Is.
var (
	// ErrNotTLS means the first bytes of a tunnel are not a TLS handshake
	// record, so the proxy cannot see which server the client means.
	ErrNotTLS = errors.New("netpol: tunnel does not start with a TLS handshake")
	// ErrBadClientHello means the handshake is malformed: a length that
	// does not add up, a record of the wrong type, duplicate extensions or
	// an unusable server_name extension.
	ErrBadClientHello = errors.New("netpol: malformed TLS ClientHello")
	// ErrClientHelloTooLarge means the ClientHello exceeds the reader's bound.
	ErrClientHelloTooLarge = errors.New("netpol: TLS ClientHello too large")
)

// MaxClientHello bounds the ClientHello ReadClientHello accepts by
// default. Real hellos are 200 B–2 KiB (with post-quantum key shares);
// the TLS limit is 2^24, which no client uses.
const MaxClientHello = 64 << 10

const (
	recordTypeHandshake   = 0x16
	handshakeClientHello  = 0x01
	recordHeaderLen       = 5
	maxRecordPayload      = 1<<14 + 256 // TLSPlaintext limit with slack for lax clients
	extensionServerName   = 0x0000
	serverNameTypeHost    = 0x00
	maxSNILength          = 255
	handshakeHeaderLength = 4
)

// ClientHello is what the proxy learned from a TLS ClientHello.
type ClientHello struct {
	// SNI is the host_name of the server_name extension exactly as sent
	// (not normalised), or "" when the client sent none.
	SNI string
	// Raw holds every byte read from the stream, record headers included,
	// so the proxy can forward the hello unchanged.
	Raw []byte
}

// ReadClientHello reads TLS records from r until it holds one complete
// ClientHello handshake message, reassembling it across records (clients
// and evasion tools may fragment it), and returns its SNI. It reads no
// further than the last record of the message, and at most max bytes of
// handshake data (MaxClientHello when max <= 0).
func ReadClientHello(r io.Reader, max int) (ClientHello, error) {
	if max <= 0 {
		max = MaxClientHello
	}
	var raw, msg []byte
	var hdr [recordHeaderLen]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if len(raw) == 0 && errors.Is(err, io.EOF) {
				return ClientHello{}, fmt.Errorf("%w: empty stream", ErrNotTLS)
			}
			return ClientHello{Raw: raw}, fmt.Errorf("%w: record header: %w", ErrBadClientHello, err)
		}
		raw = append(raw, hdr[:]...)
		if hdr[0] != recordTypeHandshake || hdr[1] != 0x03 {
			if len(msg) == 0 {
				return ClientHello{Raw: raw}, fmt.Errorf("%w: first bytes %x", ErrNotTLS, hdr[:3])
			}
			return ClientHello{Raw: raw}, fmt.Errorf("%w: record type %#x inside the hello", ErrBadClientHello, hdr[0])
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		if n == 0 || n > maxRecordPayload {
			return ClientHello{Raw: raw}, fmt.Errorf("%w: record length %d", ErrBadClientHello, n)
		}
		if len(msg)+n > max+handshakeHeaderLength {
			return ClientHello{Raw: raw}, fmt.Errorf("%w: more than %d bytes", ErrClientHelloTooLarge, max)
		}
		start := len(raw)
		raw = append(raw, make([]byte, n)...)
		if _, err := io.ReadFull(r, raw[start:]); err != nil {
			return ClientHello{Raw: raw[:start]}, fmt.Errorf("%w: record body: %w", ErrBadClientHello, err)
		}
		msg = append(msg, raw[start:]...)
		if len(msg) < handshakeHeaderLength {
			continue
		}
		if msg[0] != handshakeClientHello {
			return ClientHello{Raw: raw}, fmt.Errorf("%w: handshake type %d, want client_hello", ErrBadClientHello, msg[0])
		}
		want := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if want > max {
			return ClientHello{Raw: raw}, fmt.Errorf("%w: declares %d bytes", ErrClientHelloTooLarge, want)
		}
		switch have := len(msg) - handshakeHeaderLength; {
		case have < want:
			continue
		case have > want:
			// A hello sharing a record with another message is legal in
			// theory, but no client does it; refusing keeps Raw exactly the
			// records of one message.
			return ClientHello{Raw: raw}, fmt.Errorf("%w: %d bytes after the hello in its record", ErrBadClientHello, have-want)
		}
		sni, err := ParseClientHello(msg[handshakeHeaderLength:])
		return ClientHello{SNI: sni, Raw: raw}, err
	}
}

// ParseClientHello parses the body of a ClientHello handshake message
// (after the 4-byte handshake header) and returns the host_name of its
// server_name extension, or "" when there is none. Every length is checked
// against the bytes that remain; trailing bytes, duplicate extensions, a
// server_name list with more than one host_name, or a host_name with bytes
// outside printable ASCII are errors.
func ParseClientHello(body []byte) (string, error) {
	s := cursor{b: body}
	s.skip(2 + 32) // legacy_version, random
	s.skip(s.u8()) // legacy_session_id
	if n := s.u16(); n < 2 || n%2 != 0 {
		return "", fmt.Errorf("%w: cipher_suites length %d", ErrBadClientHello, n)
	} else {
		s.skip(n)
	}
	if n := s.u8(); n < 1 {
		return "", fmt.Errorf("%w: no compression methods", ErrBadClientHello)
	} else {
		s.skip(n)
	}
	if s.err {
		return "", fmt.Errorf("%w: truncated before extensions", ErrBadClientHello)
	}
	if s.empty() {
		return "", nil // a hello without extensions (SSL 3.0-era); no SNI
	}
	exts := cursor{b: s.bytes(s.u16())}
	if s.err || !s.empty() {
		return "", fmt.Errorf("%w: extensions length does not match the message", ErrBadClientHello)
	}
	var seen [1 << 16 / 64]uint64 // bitset over every extension type: 8 KiB
	sni := ""
	for !exts.empty() {
		typ := exts.u16()
		data := exts.bytes(exts.u16())
		if exts.err {
			return "", fmt.Errorf("%w: truncated extension", ErrBadClientHello)
		}
		word, bit := typ/64, uint64(1)<<(typ%64)
		if seen[word]&bit != 0 {
			// RFC 8446 §4.2 forbids it, and two server_names would let
			// the proxy and the server read different names.
			return "", fmt.Errorf("%w: duplicate extension %d", ErrBadClientHello, typ)
		}
		seen[word] |= bit
		if typ != extensionServerName {
			continue
		}
		name, err := parseServerName(data)
		if err != nil {
			return "", err
		}
		sni = name
	}
	return sni, nil
}

// parseServerName parses the server_name extension (RFC 6066 §3).
func parseServerName(data []byte) (string, error) {
	if len(data) == 0 {
		// A server's empty server_name acknowledgement; a client must not
		// send it, and an empty list tells us nothing.
		return "", fmt.Errorf("%w: empty server_name extension", ErrBadClientHello)
	}
	s := cursor{b: data}
	list := cursor{b: s.bytes(s.u16())}
	if s.err || !s.empty() || list.empty() {
		return "", fmt.Errorf("%w: server_name list length", ErrBadClientHello)
	}
	host := ""
	for !list.empty() {
		typ := list.u8()
		name := list.bytes(list.u16())
		if list.err {
			return "", fmt.Errorf("%w: truncated server_name entry", ErrBadClientHello)
		}
		if typ != serverNameTypeHost {
			continue // unknown name types are skipped, as RFC 6066 intends
		}
		if host != "" {
			return "", fmt.Errorf("%w: more than one host_name", ErrBadClientHello)
		}
		if len(name) == 0 || len(name) > maxSNILength {
			return "", fmt.Errorf("%w: host_name length %d", ErrBadClientHello, len(name))
		}
		for _, c := range name {
			if c <= ' ' || c >= 0x7f {
				return "", fmt.Errorf("%w: byte %#x in host_name", ErrBadClientHello, c)
			}
		}
		host = string(name)
	}
	return host, nil
}

// cursor reads big-endian fields; any read past the end sets err and
// yields zeros, so a parser checks err once per group of reads.
type cursor struct {
	b   []byte
	err bool
}

func (c *cursor) empty() bool { return len(c.b) == 0 }

func (c *cursor) bytes(n int) []byte {
	if n > len(c.b) {
		c.err, c.b = true, nil
		return nil
	}
	out := c.b[:n]
	c.b = c.b[n:]
	return out
}

func (c *cursor) skip(n int) { c.bytes(n) }

func (c *cursor) u8() int {
	b := c.bytes(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (c *cursor) u16() int {
	b := c.bytes(2)
	if b == nil {
		return 0
	}
	return int(b[0])<<8 | int(b[1])
}
