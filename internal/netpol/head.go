package netpol

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
)

// Errors of the request-head reader and parser; match with errors.Is.
var (
	// ErrHeaderTooLarge means the request line and headers exceed the
	// proxy's bound, or there are too many header fields.
	ErrHeaderTooLarge = errors.New("netpol: request header too large")
	// ErrBadRequestHead means the request line or a header field is
	// malformed or ambiguous (see ParseRequestHead).
	ErrBadRequestHead = errors.New("netpol: malformed request head")
)

// MaxHeaderFields bounds the number of header fields in a request head.
const MaxHeaderFields = 128

// RequestHead is a parsed HTTP/1.x request line and header section.
type RequestHead struct {
	Method string
	Target string // request target as sent: absolute URI or authority
	Proto  string // "HTTP/1.1" or "HTTP/1.0"
	// Header holds the fields with canonical keys, values trimmed.
	Header textproto.MIMEHeader
	// ContentLength is the declared body length, -1 when absent.
	ContentLength int64
	Chunked       bool // Transfer-Encoding: chunked
}

// readHead reads one request head (through the empty line) from br, at
// most max bytes and MaxHeaderFields fields. It returns the raw bytes for
// ParseRequestHead; on ErrHeaderTooLarge it returns the first max bytes,
// the head is left half-read, and the connection must be answered and
// closed.
func readHead(br *bufio.Reader, max int) ([]byte, error) {
	var head []byte
	lines := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(head)+len(line) > max {
			// What fits is returned so the refusal can name the target.
			return append(head, line[:max-len(head)]...), fmt.Errorf("%w: more than %d bytes", ErrHeaderTooLarge, max)
		}
		head = append(head, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a long line: keep collecting it
		}
		if err != nil {
			return head, err
		}
		lines++
		if lines > MaxHeaderFields+1 {
			return head, fmt.Errorf("%w: more than %d fields", ErrHeaderTooLarge, MaxHeaderFields)
		}
		if bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
			return head, nil
		}
	}
}

// ParseRequestHead parses a request head as readHead returns it. It is
// stricter than RFC 9112 wherever a lax reading would let the proxy and
// the upstream server see different requests:
//
//   - every line ends in CRLF; bare CR or LF, obsolete line folding,
//     whitespace before a colon and control characters are errors;
//   - the request line is exactly "METHOD SP target SP HTTP/1.x";
//   - Content-Length must be decimal and agree across repeats;
//     Transfer-Encoding must be exactly "chunked", and not together with
//     Content-Length (the classic smuggling pair);
//   - at most one Host field.
func ParseRequestHead(b []byte) (RequestHead, error) {
	bad := func(format string, args ...any) (RequestHead, error) {
		return RequestHead{}, fmt.Errorf("%w: %s", ErrBadRequestHead, fmt.Sprintf(format, args...))
	}
	if !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		return bad("head does not end in an empty CRLF line")
	}
	lines := bytes.Split(b[:len(b)-4], []byte("\r\n"))
	for _, l := range lines {
		if bytes.IndexByte(l, '\r') >= 0 || bytes.IndexByte(l, '\n') >= 0 {
			return bad("bare CR or LF")
		}
	}
	reqLine := lines[0]
	sp1 := bytes.IndexByte(reqLine, ' ')
	sp2 := bytes.LastIndexByte(reqLine, ' ')
	if sp1 <= 0 || sp2 == sp1 {
		return bad("request line %q", truncateForError(reqLine))
	}
	h := RequestHead{
		Method:        string(reqLine[:sp1]),
		Target:        string(reqLine[sp1+1 : sp2]),
		Proto:         string(reqLine[sp2+1:]),
		Header:        textproto.MIMEHeader{},
		ContentLength: -1,
	}
	if !isToken(h.Method) {
		return bad("method %q", truncateForError([]byte(h.Method)))
	}
	if h.Target == "" {
		return bad("empty request target")
	}
	for i := 0; i < len(h.Target); i++ {
		if c := h.Target[i]; c <= ' ' || c >= 0x7f {
			return bad("byte %#x in request target", c)
		}
	}
	if h.Proto != "HTTP/1.1" && h.Proto != "HTTP/1.0" {
		return bad("protocol %q", truncateForError([]byte(h.Proto)))
	}
	for _, l := range lines[1:] {
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			return bad("obsolete line folding")
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 {
			return bad("header line without a name")
		}
		name := string(l[:colon])
		if !isToken(name) {
			return bad("header name %q", truncateForError(l[:colon]))
		}
		value := bytes.Trim(l[colon+1:], " \t")
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return bad("control byte %#x in header %s", c, name)
			}
		}
		h.Header.Add(textproto.CanonicalMIMEHeaderKey(name), string(value))
	}
	if len(h.Header["Host"]) > 1 {
		return bad("more than one Host")
	}
	if cls := h.Header["Content-Length"]; len(cls) > 0 {
		for _, v := range cls {
			if v != cls[0] {
				return bad("conflicting Content-Length")
			}
		}
		n, err := strconv.ParseInt(cls[0], 10, 64)
		if err != nil || n < 0 || cls[0][0] == '+' {
			return bad("Content-Length %q", truncateForError([]byte(cls[0])))
		}
		h.ContentLength = n
	}
	if tes := h.Header["Transfer-Encoding"]; len(tes) > 0 {
		if len(tes) != 1 || !equalFoldASCII(tes[0], "chunked") {
			return bad("Transfer-Encoding other than chunked")
		}
		if h.ContentLength >= 0 {
			return bad("both Content-Length and Transfer-Encoding")
		}
		if h.Proto == "HTTP/1.0" {
			return bad("Transfer-Encoding in HTTP/1.0")
		}
		h.Chunked = true
	}
	return h, nil
}

func equalFoldASCII(a, b string) bool {
	return len(a) == len(b) && lowerASCII(a) == lowerASCII(b)
}

func truncateForError(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
