package netpol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Descriptor passing: the bridge hands each accepted client socket to the
// proxy instead of relaying its bytes (see the package documentation).
//
// On the proxy's Unix socket, a connection whose first message is
// passMessage with one descriptor attached (SCM_RIGHTS) to its first
// byte, passMarker, hands over that descriptor as the client connection
// (the rest of the message is not read); the proxy answers
// passAck once it owns the socket, and the Unix connection is done. Any
// other first byte is the start of a plain HTTP proxy request, served on
// the Unix connection as before. A descriptor that is refused is answered
// with an HTTP 400 (bad_request) on the Unix connection, which the bridge
// takes as "relay instead".
const (
	passMarker byte = 0 // never the first byte of an HTTP request
	passAck    byte = 0 // never the first byte of an HTTP response

	// maxPassedFDs sizes the control buffer: room for more than the one
	// descriptor allowed, so extras are received (and closed) rather than
	// truncated away unseen; beyond it the kernel sets MSG_CTRUNC.
	maxPassedFDs = 4

	// passedOverrun is how long an operation on a passed socket may
	// outlive its deadline before the socket is shut down (passedConn).
	passedOverrun = time.Second
)

// passMessage is what the bridge sends with the descriptor: the marker,
// then an empty line, so that a proxy that predates descriptor passing
// sees a complete (malformed) request head and answers 400 at once
// instead of waiting out its header time-out; the bridge then relays.
var passMessage = []byte{passMarker, '\r', '\n', '\r', '\n'}

// ErrPassedFD means a descriptor passed on the proxy's Unix socket was
// refused: not exactly one, not a connected TCP socket, or not sent as
// the protocol says. The client is answered bad_request.
var ErrPassedFD = errors.New("netpol: passed descriptor refused")

// cmsgLenSize is the size of cmsghdr.cmsg_len: size_t on Linux.
const cmsgLenSize = int(unsafe.Sizeof(syscall.Cmsghdr{}.Len))

func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// parseRights walks the control messages in oob and returns every
// descriptor carried by SCM_RIGHTS messages, so the caller can close all
// it does not keep, even when the buffer is malformed (err != nil) or
// holds messages of other types. It only reads oob; it never closes.
func parseRights(oob []byte) (fds []int, err error) {
	hdr := syscall.SizeofCmsghdr
	for len(oob) > 0 {
		if len(oob) < hdr {
			return fds, fmt.Errorf("%w: %d trailing bytes in the control buffer", ErrPassedFD, len(oob))
		}
		var l uint64
		if cmsgLenSize == 8 {
			l = binary.NativeEndian.Uint64(oob)
		} else {
			l = uint64(binary.NativeEndian.Uint32(oob))
		}
		level := int32(binary.NativeEndian.Uint32(oob[cmsgLenSize:]))
		typ := int32(binary.NativeEndian.Uint32(oob[cmsgLenSize+4:]))
		if l < uint64(hdr) || l > uint64(len(oob)) {
			return fds, fmt.Errorf("%w: control message length %d out of range", ErrPassedFD, l)
		}
		data := oob[cmsgAlign(hdr):l]
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_RIGHTS {
			for ; len(data) >= 4; data = data[4:] {
				fds = append(fds, int(int32(binary.NativeEndian.Uint32(data))))
			}
			if len(data) != 0 {
				err = fmt.Errorf("%w: partial descriptor in SCM_RIGHTS", ErrPassedFD)
			}
		} else if err == nil {
			err = fmt.Errorf("%w: unexpected control message (level %d, type %d)", ErrPassedFD, level, typ)
		}
		next := cmsgAlign(int(l))
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return fds, err
}

// receiveFirst reads the first byte of a Unix connection with room for a
// passed descriptor. It returns either a passed client socket (the
// caller answers passAck), or the plain byte read (nil at end of
// stream), or an error wrapping ErrPassedFD for a refused descriptor. No
// descriptor it received stays open unless it is returned.
func receiveFirst(uc *net.UnixConn) (pc *passedConn, first []byte, err error) {
	var b [1]byte
	oob := make([]byte, syscall.CmsgSpace(4*maxPassedFDs))
	n, oobn, flags, _, rerr := uc.ReadMsgUnix(b[:], oob)
	fds, perr := parseRights(oob[:oobn])
	kept := -1
	defer func() {
		for _, fd := range fds {
			if fd != kept && fd >= 0 {
				syscall.Close(fd)
			}
		}
	}()
	if len(fds) == 0 && perr == nil && flags&syscall.MSG_CTRUNC == 0 {
		if rerr != nil || n == 0 {
			return nil, nil, rerr
		}
		return nil, b[:n], nil
	}
	switch {
	case flags&syscall.MSG_CTRUNC != 0:
		return nil, nil, fmt.Errorf("%w: control message truncated (more than %d descriptors, or one the receiver may not take)", ErrPassedFD, maxPassedFDs)
	case perr != nil:
		return nil, nil, perr
	case rerr != nil:
		return nil, nil, fmt.Errorf("%w: %w", ErrPassedFD, rerr)
	case len(fds) != 1:
		return nil, nil, fmt.Errorf("%w: %d descriptors in one message; one is allowed", ErrPassedFD, len(fds))
	case n != 1 || b[0] != passMarker:
		return nil, nil, fmt.Errorf("%w: descriptor not sent with the marker byte", ErrPassedFD)
	}
	if err := checkPassedSocket(fds[0]); err != nil {
		return nil, nil, err
	}
	f := os.NewFile(uintptr(fds[0]), "passed-socket")
	kept = fds[0] // f owns it now
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPassedFD, err)
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return nil, nil, fmt.Errorf("%w: not a TCP connection", ErrPassedFD)
	}
	return newPassedConn(tc)
}

// checkPassedSocket accepts a connected TCP socket only: that is all a
// bridge ever passes. A Unix socket is refused too: it could be connected
// to any socket the sandbox can reach, and every write the proxy made to
// it would carry the proxy's credentials to a peer that asks for them
// (SO_PASSCRED).
func checkPassedSocket(fd int) error {
	get := func(opt int) (int, error) { return syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, opt) }
	typ, err := get(syscall.SO_TYPE)
	if err != nil {
		return fmt.Errorf("%w: not a socket: %w", ErrPassedFD, err)
	}
	dom, err1 := get(syscall.SO_DOMAIN)
	proto, err2 := get(syscall.SO_PROTOCOL)
	listening, err3 := get(syscall.SO_ACCEPTCONN)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("%w: %w", ErrPassedFD, err)
	}
	switch {
	case typ != syscall.SOCK_STREAM:
		return fmt.Errorf("%w: socket type %d, not a stream", ErrPassedFD, typ)
	case dom != syscall.AF_INET && dom != syscall.AF_INET6:
		return fmt.Errorf("%w: address family %d, not IPv4 or IPv6", ErrPassedFD, dom)
	case proto != syscall.IPPROTO_TCP:
		return fmt.Errorf("%w: protocol %d, not TCP", ErrPassedFD, proto)
	case listening != 0:
		return fmt.Errorf("%w: a listening socket", ErrPassedFD)
	}
	if _, err := syscall.Getpeername(fd); err != nil {
		return fmt.Errorf("%w: not connected: %w", ErrPassedFD, err)
	}
	return nil
}

// passedConn is a client socket received from the bridge.
//
// It shares its open file description with whoever sent it, who may keep
// a copy and clear O_NONBLOCK on it at any time (status flags belong to
// the description, not the descriptor). Go's deadlines rely on
// non-blocking I/O, so a read would then block in the kernel past every
// deadline, holding a thread, the connection slot and Proxy.Close. So
// every Read or Write still running passedOverrun after its deadline
// shuts the socket down (shutdown(2) acts on the socket and wakes a
// blocked read, write or splice), and Close shuts it down before closing,
// which also ends the connection for a sender that kept a copy. Tunnel
// copies (ReadFrom/WriteTo, promoted so splice still applies) are bounded
// by the tunnel's idle watchdog, which ends in Close.
type passedConn struct {
	*net.TCPConn
	raw      syscall.RawConn
	rdl, wdl atomic.Int64 // deadlines in Unix ns; 0 = none
	down     atomic.Bool
}

func newPassedConn(tc *net.TCPConn) (*passedConn, []byte, error) {
	raw, err := tc.SyscallConn()
	if err != nil {
		tc.Close()
		return nil, nil, fmt.Errorf("%w: %w", ErrPassedFD, err)
	}
	return &passedConn{TCPConn: tc, raw: raw}, nil, nil
}

func deadlineNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (c *passedConn) SetDeadline(t time.Time) error {
	c.rdl.Store(deadlineNanos(t))
	c.wdl.Store(deadlineNanos(t))
	return c.TCPConn.SetDeadline(t)
}

func (c *passedConn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(deadlineNanos(t))
	return c.TCPConn.SetReadDeadline(t)
}

func (c *passedConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(deadlineNanos(t))
	return c.TCPConn.SetWriteDeadline(t)
}

// guard arms the shutdown for an operation with deadline dl.
func (c *passedConn) guard(dl int64) *time.Timer {
	if dl == 0 {
		return nil
	}
	return time.AfterFunc(time.Until(time.Unix(0, dl))+passedOverrun, c.shutdown)
}

func (c *passedConn) Read(b []byte) (int, error) {
	t := c.guard(c.rdl.Load())
	n, err := c.TCPConn.Read(b)
	if t != nil {
		t.Stop()
	}
	return n, err
}

func (c *passedConn) Write(b []byte) (int, error) {
	t := c.guard(c.wdl.Load())
	n, err := c.TCPConn.Write(b)
	if t != nil {
		t.Stop()
	}
	return n, err
}

// shutdown ends the connection in both directions, for every holder.
func (c *passedConn) shutdown() {
	if c.down.Swap(true) {
		return
	}
	c.raw.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
}

func (c *passedConn) Close() error {
	c.shutdown()
	return c.TCPConn.Close()
}

// passConn hands client c to the proxy over up (a fresh connection to the
// proxy's Unix socket): passMessage carrying c's descriptor, then it
// waits up to timeout for the proxy's ack. passed reports that the proxy
// owns the socket now (the caller closes its copy); with passed false and
// err nil the proxy did not take it (an older proxy, a refusal, a kernel
// that would not pass it) and the caller may relay instead on a new
// connection. err != nil means the outcome is unknown (no ack in time):
// the proxy may yet take the socket, so relaying it too would mix two
// readers; the caller must drop the client.
func passConn(up *net.UnixConn, c *net.TCPConn, timeout time.Duration) (passed bool, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return false, nil
	}
	var serr error
	cerr := raw.Control(func(fd uintptr) {
		_, _, serr = up.WriteMsgUnix(passMessage, syscall.UnixRights(int(fd)), nil)
	})
	if cerr != nil || serr != nil {
		return false, nil
	}
	up.SetReadDeadline(time.Now().Add(timeout))
	var ack [1]byte
	n, err := up.Read(ack[:])
	switch {
	case n == 1 && ack[0] == passAck:
		return true, nil
	case n == 1:
		return false, nil // an HTTP answer: refused or not understood
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, fmt.Errorf("netpol: bridge: no answer to a passed connection in %v", timeout)
	default:
		return false, nil // closed without taking it
	}
}
