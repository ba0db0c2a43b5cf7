package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The MCP SDK's stdio transport ends the connection on a frame over its
// limit, so a client that sends one big write_file loses its session (and
// the sandbox) without a word. frameTransport reads newline-delimited
// JSON-RPC itself: a frame over the limit is skipped, and its request gets
// a JSON-RPC error naming the size and the limit; the session goes on.

// oversizedMethod stands in, inside the transport, for a skipped frame.
const oversizedMethod = "agentaudit/oversized_frame"

// frameTransport is stdio's transport (newline-delimited JSON-RPC over r
// and w) with a per-frame limit that refuses instead of disconnecting.
type frameTransport struct {
	r     io.ReadCloser
	w     io.WriteCloser
	limit int
	log   *slog.Logger
}

func (t *frameTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	limit := t.limit
	if limit <= 0 {
		limit = DefaultMaxFrame
	}
	fr := &frameReader{br: bufio.NewReaderSize(t.r, 64<<10), limit: limit}
	inner, err := (&mcp.IOTransport{Reader: readCloser{fr, t.r}, Writer: t.w, MaxLineLength: -1}).Connect(ctx)
	if err != nil {
		return nil, err
	}
	log := t.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &frameConn{Connection: inner, log: log}, nil
}

// frameConn answers the stand-ins of skipped frames and hides them from
// the server.
type frameConn struct {
	mcp.Connection
	log *slog.Logger
}

func (c *frameConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	for {
		msg, err := c.Connection.Read(ctx)
		if err != nil {
			return msg, err
		}
		req, ok := msg.(*jsonrpc.Request)
		if !ok || req.Method != oversizedMethod {
			return msg, nil
		}
		text := "frame too large"
		var p struct{ Bytes, Limit int }
		if json.Unmarshal(req.Params, &p) == nil {
			text = fmt.Sprintf("request of %d bytes exceeds the runner's limit of %d bytes per message; nothing was run (send a smaller request, e.g. write the file in parts)", p.Bytes, p.Limit)
		}
		c.log.Warn("oversized MCP frame refused", "bytes", p.Bytes, "limit", p.Limit, "has_id", req.ID.IsValid())
		if !req.ID.IsValid() {
			continue // a notification, or an id past what was kept: nobody to answer
		}
		if err := c.Connection.Write(ctx, &jsonrpc.Response{ID: req.ID,
			Error: &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: text}}); err != nil {
			return nil, err
		}
	}
}

// frameReader passes newline-delimited frames through and replaces each
// frame longer than limit by a small stand-in request (oversizedMethod)
// carrying the original's id when its first bytes had one.
type frameReader struct {
	br    *bufio.Reader
	limit int

	out  []byte // bytes ready for Read
	cur  []byte // the frame being read, while under the limit
	head []byte // the first bytes of an oversized frame
	size int    // bytes of the frame so far
	over bool   // the frame passed the limit
	err  error
}

// headKeep is how much of an oversized frame is kept to find its id.
const headKeep = 4096

func (f *frameReader) Read(p []byte) (int, error) {
	for len(f.out) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		chunk, err := f.br.ReadSlice('\n')
		complete := err == nil
		if err == bufio.ErrBufferFull {
			err = nil
		}
		f.size += len(chunk)
		switch {
		case !f.over && f.size > f.limit:
			f.over = true
			f.head = append(f.head[:0], f.cur[:min(len(f.cur), headKeep)]...)
			f.head = append(f.head, chunk[:min(len(chunk), headKeep-len(f.head))]...)
			f.cur = f.cur[:0]
		case f.over:
			f.head = append(f.head, chunk[:min(len(chunk), headKeep-len(f.head))]...)
		default:
			f.cur = append(f.cur, chunk...)
		}
		if complete || (err != nil && f.size > 0) {
			if f.over {
				f.out = standIn(f.head, f.size, f.limit)
			} else {
				f.out = f.cur
			}
			f.size, f.over = 0, false
			if cap(f.cur) > 1<<20 {
				// One big frame must not pin its buffer for the rest of a
				// long session.
				f.out = append([]byte(nil), f.out...)
				f.cur = nil
			}
			f.cur = f.cur[:0]
		}
		f.err = err
	}
	n := copy(p, f.out)
	f.out = f.out[n:]
	return n, nil
}

var (
	frameID     = regexp.MustCompile(`"id"\s*:\s*("(?:[^"\\]|\\.){0,256}"|-?[0-9]{1,20})`)
	frameParams = regexp.MustCompile(`"params"\s*:`)
)

// standIn is the request that replaces an oversized frame.
func standIn(head []byte, size, limit int) []byte {
	id := ""
	if m := frameID.FindSubmatchIndex(head); m != nil {
		// An "id" inside params is not the request's: take it only
		// before them.
		if p := frameParams.FindIndex(head); p == nil || p[0] > m[0] {
			id = string(head[m[2]:m[3]])
		}
	}
	if id != "" {
		return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"method":%q,"params":{"bytes":%d,"limit":%d}}`+"\n", id, oversizedMethod, size, limit)
	}
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","method":%q,"params":{"bytes":%d,"limit":%d}}`+"\n", oversizedMethod, size, limit)
}

// readCloser reads from r and closes c.
type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// nopWriteCloser is stdout: the process closes it, not the transport.
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
