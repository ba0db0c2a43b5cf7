package netpol

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// tunnel copies bytes both ways between a and b until both directions
// have ended, or until no byte has moved either way for idle (idle <= 0
// waits forever). It returns the bytes copied a→b and b→a, and whether it
// gave up for idleness. It closes neither connection on a normal end; an
// end of stream in one direction is passed on as a half-close.
//
// The copies use ReadFrom/WriteTo, so TCP↔Unix and TCP↔TCP pairs move
// data with splice(2) inside the kernel. A splice call reports progress
// only when it returns, so each read gets a deadline of idle/2: a busy
// direction returns at least that often, and a timed-out read with
// nothing moved just loops. The watchdog is the only judge of idleness;
// closing both connections also frees a copy stuck writing to a peer that
// stopped reading.
func tunnel(a, b net.Conn, idle time.Duration) (ab, ba int64, idled bool) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var nab, nba atomic.Int64
	done := make(chan struct{}, 2)
	go func() { copyHalf(b, a, idle, &nab, &last); done <- struct{}{} }()
	go func() { copyHalf(a, b, idle, &nba, &last); done <- struct{}{} }()
	var tick <-chan time.Time
	if idle > 0 {
		t := time.NewTicker(max(idle/4, 5*time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	for finished := 0; finished < 2; {
		select {
		case <-done:
			finished++
		case <-tick:
			if !idled && time.Since(time.Unix(0, last.Load())) >= idle {
				idled = true
				a.Close()
				b.Close()
			}
		}
	}
	return nab.Load(), nba.Load(), idled
}

func copyHalf(dst, src net.Conn, idle time.Duration, n, last *atomic.Int64) {
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(idle / 2))
		}
		k, err := copyOnce(dst, src)
		if k > 0 {
			n.Add(k)
			last.Store(time.Now().UnixNano())
		}
		switch {
		case err == nil:
			closeWrite(dst)
			return
		case idle > 0 && errors.Is(err, os.ErrDeadlineExceeded):
			continue
		default:
			// A reset or a closed connection: the other direction cannot
			// do anything useful either.
			dst.Close()
			src.Close()
			return
		}
	}
}

// copyOnce copies until EOF or error, preferring the kernel-level paths.
func copyOnce(dst, src net.Conn) (int64, error) {
	if wt, ok := src.(io.WriterTo); ok {
		return wt.WriteTo(dst)
	}
	if rf, ok := dst.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	buf := make([]byte, 64<<10)
	return io.CopyBuffer(dst, src, buf)
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
