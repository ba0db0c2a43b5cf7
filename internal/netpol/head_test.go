package netpol

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRequestHead(t *testing.T) {
	type result struct {
		Method, Target, Proto string
		CL                    int64
		Chunked               bool
		Err                   bool
	}
	cases := []struct {
		name string
		in   string
		want result
	}{
		{"connect", "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", result{Method: "CONNECT", Target: "a.test:443", Proto: "HTTP/1.1", CL: -1}},
		{"absolute get", "GET http://a.test/x?y HTTP/1.1\r\nHost: a.test\r\nUser-Agent: t\r\n\r\n", result{Method: "GET", Target: "http://a.test/x?y", Proto: "HTTP/1.1", CL: -1}},
		{"http/1.0", "GET http://a.test/ HTTP/1.0\r\n\r\n", result{Method: "GET", Target: "http://a.test/", Proto: "HTTP/1.0", CL: -1}},
		{"post with length", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n", result{Method: "POST", Target: "http://a.test/", Proto: "HTTP/1.1", CL: 5}},
		{"repeated equal length", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", result{Method: "POST", Target: "http://a.test/", Proto: "HTTP/1.1", CL: 5}},
		{"chunked", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", result{Method: "POST", Target: "http://a.test/", Proto: "HTTP/1.1", CL: -1, Chunked: true}},
		{"value whitespace trimmed", "GET http://a.test/ HTTP/1.1\r\nX:  v \t\r\n\r\n", result{Method: "GET", Target: "http://a.test/", Proto: "HTTP/1.1", CL: -1}},
		{"bare LF", "GET http://a.test/ HTTP/1.1\nHost: a\n\n", result{Err: true}},
		{"bare CR in value", "GET http://a.test/ HTTP/1.1\r\nX: a\rb\r\n\r\n", result{Err: true}},
		{"obs-fold", "GET http://a.test/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n", result{Err: true}},
		{"space before colon", "GET http://a.test/ HTTP/1.1\r\nHost : a\r\n\r\n", result{Err: true}},
		{"double space in request line", "GET  http://a.test/ HTTP/1.1\r\n\r\n", result{Err: true}},
		{"space in target", "GET http://a.test/a b HTTP/1.1\r\n\r\n", result{Err: true}},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\n", result{Err: true}},
		{"http/0.9", "GET /\r\n\r\n", result{Err: true}},
		{"lower-case proto", "GET http://a.test/ http/1.1\r\n\r\n", result{Err: true}},
		{"bad method", "G(T http://a.test/ HTTP/1.1\r\n\r\n", result{Err: true}},
		{"CL and TE", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", result{Err: true}},
		{"conflicting CL", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", result{Err: true}},
		{"CL list", "POST http://a.test/ HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", result{Err: true}},
		{"signed CL", "POST http://a.test/ HTTP/1.1\r\nContent-Length: +5\r\n\r\n", result{Err: true}},
		{"TE gzip, chunked", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", result{Err: true}},
		{"TE twice", "POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", result{Err: true}},
		{"TE in 1.0", "POST http://a.test/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", result{Err: true}},
		{"two hosts", "GET http://a.test/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", result{Err: true}},
		{"NUL in value", "GET http://a.test/ HTTP/1.1\r\nX: a\x00b\r\n\r\n", result{Err: true}},
		{"no colon", "GET http://a.test/ HTTP/1.1\r\nX\r\n\r\n", result{Err: true}},
		{"unterminated", "GET http://a.test/ HTTP/1.1\r\n", result{Err: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseRequestHead([]byte(tc.in))
			got := result{Method: h.Method, Target: h.Target, Proto: h.Proto, CL: h.ContentLength, Chunked: h.Chunked}
			if err != nil {
				if !errors.Is(err, ErrBadRequestHead) {
					t.Fatalf("error %v does not wrap ErrBadRequestHead", err)
				}
				got = result{Err: true}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseRequestHead(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestReadHeadBounds(t *testing.T) {
	big := "GET http://a.test/ HTTP/1.1\r\nX: " + strings.Repeat("a", 10000) + "\r\n\r\n"
	if _, err := readHead(bufio.NewReaderSize(strings.NewReader(big), 16), 4096); !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("10 kB head under a 4 KiB bound: err = %v, want ErrHeaderTooLarge", err)
	}
	// A long line that fits is read whole, even through a small buffer.
	head, err := readHead(bufio.NewReaderSize(strings.NewReader(big+"tail"), 16), 1<<20)
	if err != nil || string(head) != big {
		t.Errorf("readHead = %d bytes, %v; want the %d-byte head", len(head), err, len(big))
	}
	many := "GET http://a.test/ HTTP/1.1\r\n" + strings.Repeat("X: y\r\n", MaxHeaderFields+1) + "\r\n"
	if _, err := readHead(bufio.NewReader(strings.NewReader(many)), 1<<20); !errors.Is(err, ErrHeaderTooLarge) {
		t.Errorf("%d fields: err = %v, want ErrHeaderTooLarge", MaxHeaderFields+1, err)
	}
}

// FuzzRequestHead checks the proxy's request parser against net/http's,
// which frames and forwards the requests the proxy accepts: whatever
// ParseRequestHead accepts, net/http must read as the same request, so
// the proxy never checks one request and forwards another.
func FuzzRequestHead(f *testing.F) {
	for _, s := range []string{
		"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
		"GET http://a.test/x HTTP/1.1\r\nHost: b.test\r\n\r\n",
		"POST http://a.test/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
		"POST http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"GET http://a.test/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://a.test/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"GET http://user@a.test/ HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		head, err := readHead(bufio.NewReader(bytes.NewReader(b)), 8192)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(b, head) {
			t.Fatalf("head is not a prefix of the input")
		}
		h, err := ParseRequestHead(head)
		if err != nil {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			// net/http may be stricter (e.g. about URLs); that only
			// refuses a request, it cannot change one.
			return
		}
		if req.Method != h.Method || req.RequestURI != h.Target || req.Proto != h.Proto {
			t.Fatalf("net/http read %q %q %q, we read %q %q %q", req.Method, req.RequestURI, req.Proto, h.Method, h.Target, h.Proto)
		}
		chunked := len(req.TransferEncoding) > 0 && req.TransferEncoding[0] == "chunked"
		if chunked != h.Chunked {
			t.Fatalf("chunked: net/http %v, we %v", chunked, h.Chunked)
		}
		if !h.Chunked && h.ContentLength >= 0 && req.ContentLength != h.ContentLength {
			t.Fatalf("Content-Length: net/http %d, we %d", req.ContentLength, h.ContentLength)
		}
		if h.Method == http.MethodConnect {
			return
		}
		if tg, err := ParseTarget(h.Target); err == nil {
			// The host net/http forwards to (the Host header it writes)
			// must be the authority we checked.
			if hh, err := ParseHost(strings.Trim(req.URL.Hostname(), "[]")); err == nil && hh != tg.Host {
				t.Fatalf("net/http host %q parses to %v, we checked %v", req.URL.Host, hh, tg.Host)
			}
		}
	})
}
