package netpol

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// captureHello returns the records a real crypto/tls client sends first.
// It talks to a pipe, never to a network.
func captureHello(t testing.TB, serverName string) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		tc := tls.Client(client, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		tc.Handshake() // fails once the server side closes
		client.Close()
	}()
	h, err := ReadClientHello(server, 0)
	if err != nil {
		t.Fatalf("capture hello for %q: %v", serverName, err)
	}
	return h.Raw
}

// fragment re-frames the handshake bytes of raw into records of at most
// size bytes, as evasion tools and some middleboxes do.
func fragment(t testing.TB, raw []byte, size int) []byte {
	t.Helper()
	var msg []byte
	for r := raw; len(r) > 0; {
		n := int(binary.BigEndian.Uint16(r[3:5]))
		msg = append(msg, r[5:5+n]...)
		r = r[5+n:]
	}
	var out []byte
	for len(msg) > 0 {
		k := min(size, len(msg))
		out = append(out, 0x16, 0x03, 0x01, byte(k>>8), byte(k))
		out = append(out, msg[:k]...)
		msg = msg[k:]
	}
	return out
}

// buildHello assembles a ClientHello record with the given extensions
// (type, data) pairs, for cases no real client produces.
func buildHello(exts ...[]byte) []byte {
	body := []byte{0x03, 0x03}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // one cipher suite
	body = append(body, 1, 0)                // null compression
	var extBytes []byte
	for _, e := range exts {
		extBytes = append(extBytes, e...)
	}
	if exts != nil {
		body = binary.BigEndian.AppendUint16(body, uint16(len(extBytes)))
		body = append(body, extBytes...)
	}
	msg := []byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	msg = append(msg, body...)
	rec := []byte{0x16, 0x03, 0x01, byte(len(msg) >> 8), byte(len(msg))}
	return append(rec, msg...)
}

func sniExt(names ...string) []byte {
	var list []byte
	for _, n := range names {
		list = append(list, 0)
		list = binary.BigEndian.AppendUint16(list, uint16(len(n)))
		list = append(list, n...)
	}
	data := binary.BigEndian.AppendUint16(nil, uint16(len(list)))
	data = append(data, list...)
	return ext(0, data)
}

func ext(typ uint16, data []byte) []byte {
	e := binary.BigEndian.AppendUint16(nil, typ)
	e = binary.BigEndian.AppendUint16(e, uint16(len(data)))
	return append(e, data...)
}

func TestReadClientHello(t *testing.T) {
	real := captureHello(t, "allowed.test")
	noSNI := captureHello(t, "127.0.0.1") // crypto/tls sends no SNI for an IP
	type result struct {
		SNI    string
		Err    error
		RawLen int
	}
	cases := []struct {
		name string
		in   []byte
		max  int
		want result
	}{
		{"crypto/tls hello", real, 0, result{SNI: "allowed.test", RawLen: len(real)}},
		{"ip hello has no SNI", noSNI, 0, result{RawLen: len(noSNI)}},
		{"fragmented into 1-byte records", fragment(t, real, 1), 0, result{SNI: "allowed.test", RawLen: len(fragment(t, real, 1))}},
		{"fragmented into 100-byte records", fragment(t, real, 100), 0, result{SNI: "allowed.test", RawLen: len(fragment(t, real, 100))}},
		{"hello followed by more bytes", append(append([]byte{}, real...), "early"...), 0, result{SNI: "allowed.test", RawLen: len(real)}},
		{"plain HTTP", []byte("GET / HTTP/1.1\r\n\r\n"), 0, result{Err: ErrNotTLS}},
		{"empty", nil, 0, result{Err: ErrNotTLS}},
		{"truncated record", real[:len(real)-1], 0, result{Err: ErrBadClientHello}},
		{"truncated header", real[:3], 0, result{Err: ErrBadClientHello}},
		{"bound", real, 64, result{Err: ErrClientHelloTooLarge}},
		{"crafted sni", buildHello(sniExt("Evil.Test.")), 0, result{SNI: "Evil.Test."}},
		{"no extensions", buildHello(), 0, result{}},
		{"empty extension block", buildHello([]byte{}), 0, result{}},
		{"other extension only", buildHello(ext(10, []byte{0, 2, 0, 29})), 0, result{}},
		{"duplicate sni extension", buildHello(sniExt("a.test"), sniExt("b.test")), 0, result{Err: ErrBadClientHello}},
		{"duplicate other extension", buildHello(ext(10, nil), ext(10, nil)), 0, result{Err: ErrBadClientHello}},
		{"two host names", buildHello(sniExt("a.test", "b.test")), 0, result{Err: ErrBadClientHello}},
		{"empty host name", buildHello(sniExt("")), 0, result{Err: ErrBadClientHello}},
		{"control byte in host name", buildHello(sniExt("a\x00.test")), 0, result{Err: ErrBadClientHello}},
		{"empty sni extension", buildHello(ext(0, nil)), 0, result{Err: ErrBadClientHello}},
		{"sni list longer than data", buildHello(ext(0, []byte{0, 9, 0, 0, 1, 'a'})), 0, result{Err: ErrBadClientHello}},
		{"extension longer than block", buildHello([]byte{0, 10, 0, 9}), 0, result{Err: ErrBadClientHello}},
		{"alert record", []byte{0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28}, 0, result{Err: ErrNotTLS}},
		{"server hello type", append([]byte{0x16, 0x03, 0x03, 0x00, 0x04}, 2, 0, 0, 0), 0, result{Err: ErrBadClientHello}},
		{"zero-length record", []byte{0x16, 0x03, 0x01, 0x00, 0x00}, 0, result{Err: ErrBadClientHello}},
		{"oversized record", []byte{0x16, 0x03, 0x01, 0xff, 0xff}, 0, result{Err: ErrBadClientHello}},
		{"declared length over bound", []byte{0x16, 0x03, 0x01, 0x00, 0x04, 1, 0xff, 0xff, 0xff}, 0, result{Err: ErrClientHelloTooLarge}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want.Err == nil && tc.want.RawLen == 0 {
				tc.want.RawLen = len(tc.in) // the whole input is the hello
			}
			h, err := ReadClientHello(bytes.NewReader(tc.in), tc.max)
			got := result{SNI: h.SNI, RawLen: len(h.Raw)}
			if err != nil {
				got = result{Err: tc.want.Err}
				if !errors.Is(err, tc.want.Err) {
					t.Fatalf("err = %v, want %v", err, tc.want.Err)
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("ReadClientHello (-want +got):\n%s", diff)
			}
		})
	}
}

// The reader must stop at the end of the hello: what follows belongs to
// the server.
func TestReadClientHelloLeavesRest(t *testing.T) {
	real := captureHello(t, "allowed.test")
	r := bytes.NewReader(append(append([]byte{}, real...), "rest"...))
	if _, err := ReadClientHello(r, 0); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if string(rest) != "rest" {
		t.Errorf("left %q, want %q", rest, "rest")
	}
}

func FuzzClientHello(f *testing.F) {
	real := captureHello(f, "allowed.test")
	f.Add(real)
	f.Add(fragment(f, real, 7))
	f.Add(captureHello(f, "127.0.0.1"))
	f.Add(buildHello(sniExt("a.test"), sniExt("b.test")))
	f.Add(buildHello(sniExt("x.test", "y.test")))
	f.Add(buildHello())
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadClientHello(bytes.NewReader(b), 4096)
		if len(h.Raw) > len(b) || !bytes.Equal(h.Raw, b[:len(h.Raw)]) {
			t.Fatalf("Raw is not a prefix of the input")
		}
		if err != nil {
			if !errors.Is(err, ErrNotTLS) && !errors.Is(err, ErrBadClientHello) && !errors.Is(err, ErrClientHelloTooLarge) {
				t.Fatalf("unexpected error type: %v", err)
			}
			if h.SNI != "" {
				t.Fatalf("SNI %q returned with error %v", h.SNI, err)
			}
			return
		}
		if len(h.SNI) > maxSNILength {
			t.Fatalf("SNI of %d bytes", len(h.SNI))
		}
		for i := 0; i < len(h.SNI); i++ {
			if c := h.SNI[i]; c <= ' ' || c >= 0x7f {
				t.Fatalf("SNI %q has byte %#x", h.SNI, c)
			}
		}
		// Re-reading exactly the consumed bytes gives the same answer.
		again, err := ReadClientHello(bytes.NewReader(h.Raw), 4096)
		if err != nil || again.SNI != h.SNI {
			t.Fatalf("re-read of Raw: %q, %v; first read %q", again.SNI, err, h.SNI)
		}
	})
}
