package hook

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Handler answers one hook call. It may block (an approval); it must not
// panic.
type Handler interface {
	Hook(ctx context.Context, req *Request) Response
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) Response

// Hook implements Handler.
func (f HandlerFunc) Hook(ctx context.Context, req *Request) Response { return f(ctx, req) }

// Errors of the runner's end.
var (
	// ErrPeer: a process outside the session's sandbox connected.
	ErrPeer = errors.New("hook: peer is not in the session's sandbox")
)

// Server is the runner's end of one session's hook socket.
type Server struct {
	ln  *net.UnixListener
	dir string
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	ns       *unix.Stat_t // the sandbox's PID namespace; nil until SetPeer
	stdio    []*os.File
	tty      bool
	attached bool
	handler  Handler
	refused  int
}

// Listen creates dir (mode 0700, owned by uid:gid when uid >= 0, so the
// sandbox's user can reach the socket through the read-only bind mount)
// and listens on dir/SocketName. Nothing is accepted until SetPeer names
// the sandbox.
func Listen(dir string, uid, gid int, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("hook: socket dir: %w", err)
	}
	if uid >= 0 {
		if err := os.Lchown(dir, uid, gid); err != nil {
			os.Remove(dir)
			return nil, fmt.Errorf("hook: chown %s: %w", dir, err)
		}
	}
	ln, err := listenSocket(filepath.Join(dir, SocketName), uid, gid)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{ln: ln, dir: dir, log: log}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Dir is the host directory holding the socket; mount it read-only at
// ContainerDir.
func (s *Server) Dir() string { return s.dir }

// SetPeer names the sandbox by the host pid of its PID 1: from then on
// only processes in that PID namespace are served.
func (s *Server) SetPeer(pid int) error {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/pid", &st); err != nil {
		return fmt.Errorf("hook: the sandbox's pid namespace: %w", err)
	}
	s.mu.Lock()
	s.ns = &st
	s.mu.Unlock()
	return nil
}

// SetStdio gives the descriptors the first attach receives: stdin,
// stdout, stderr. They are sent once; a second attach is refused. The
// server keeps its own duplicates, closed once handed over (or at Close),
// so the caller's files stay the caller's to close.
func (s *Server) SetStdio(files []*os.File, tty bool) {
	var dups []*os.File
	for _, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			s.log.Warn("hook: the agent's stdio cannot be kept", "err", err)
			for _, d := range dups {
				d.Close()
			}
			dups = nil
			break
		}
		dups = append(dups, os.NewFile(uintptr(fd), f.Name()))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.stdio {
		d.Close()
	}
	s.stdio, s.tty = dups, tty
}

// Refused is how many connections failed the peer check.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Serve answers connections with h until Close.
func (s *Server) Serve(h Handler) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.AcceptUnix()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveConn(c)
			}()
		}
	}()
}

// Close stops accepting, cancels the calls being answered and removes the
// socket directory.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	if !s.attached {
		for _, f := range s.stdio {
			f.Close()
		}
	}
	s.stdio = nil
	s.mu.Unlock()
	os.RemoveAll(s.dir)
	return err
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	if !s.admit(c) {
		return
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var req Request
	if err := readFrame(bufio.NewReader(c), &req); err != nil {
		s.log.Warn("hook: bad request", "err", err)
		s.reply(c, Response{ExitCode: 2, Stderr: "agentaudit: malformed hook request: " + err.Error()}, nil)
		return
	}
	c.SetReadDeadline(time.Time{})
	switch req.Kind {
	case KindAttach:
		s.mu.Lock()
		files, tty, done := s.stdio, s.tty, s.attached
		s.attached = true
		s.mu.Unlock()
		if done || len(files) != 3 {
			s.reply(c, Response{ExitCode: 2, Stderr: "agentaudit: the agent's terminal was handed out already"}, nil)
			return
		}
		s.reply(c, Response{FDs: 3, TTY: tty}, files)
		// Handed over: the agent holds them now.
		for _, f := range files {
			f.Close()
		}
	case KindHook:
		s.mu.Lock()
		h := s.handler
		s.mu.Unlock()
		// The call ends when the hook binary goes away (its time-out, or
		// the agent killed it): nothing waits on for nobody.
		ctx, cancel := context.WithCancel(s.ctx)
		go func() {
			var b [1]byte
			c.Read(b[:])
			cancel()
		}()
		resp := h.Hook(ctx, &req)
		cancel()
		s.reply(c, resp, nil)
	default:
		s.reply(c, Response{ExitCode: 2, Stderr: fmt.Sprintf("agentaudit: unknown request kind %q", req.Kind)}, nil)
	}
}

func (s *Server) reply(c *net.UnixConn, r Response, files []*os.File) {
	f, err := encode(r)
	if err != nil {
		f, _ = encode(Response{ExitCode: 2, Stderr: "agentaudit: answer too large: " + err.Error()})
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, fl := range files {
			fds[i] = int(fl.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.WriteMsgUnix(f, oob, nil); err != nil {
		s.log.Warn("hook: answer not sent", "err", err)
	}
}

// admit reports whether c comes from the sandbox; a refusal is counted
// (Refused) and logged.
func (s *Server) admit(c *net.UnixConn) bool {
	err := s.checkPeer(c)
	if err == nil {
		return true
	}
	s.mu.Lock()
	s.refused++
	s.mu.Unlock()
	s.log.Warn("hook: connection refused", "socket", c.LocalAddr().String(), "err", err)
	return false
}

// checkPeer accepts only a process whose PID namespace is the sandbox's.
func (s *Server) checkPeer(c *net.UnixConn) error {
	s.mu.Lock()
	ns := s.ns
	s.mu.Unlock()
	if ns == nil {
		return fmt.Errorf("%w: the sandbox is not started yet", ErrPeer)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(int(cred.Pid))+"/ns/pid", &st); err != nil {
		return fmt.Errorf("%w: pid %d: %v", ErrPeer, cred.Pid, err)
	}
	if st.Dev != ns.Dev || st.Ino != ns.Ino {
		return fmt.Errorf("%w: pid %d (uid %d) is in another pid namespace", ErrPeer, cred.Pid, cred.Uid)
	}
	return nil
}

// OTLPSocketName is the runner's telemetry receiver beside the hook
// socket; the supervisor relays the sandbox's OTLP port to it.
const OTLPSocketName = "otlp.sock"

// ListenExtra listens on dir/name beside the hook socket, with its owner
// and mode, and admits only what the hook socket admits: processes in
// the sandbox's PID namespace (see SetPeer). Closing the Server removes
// it with the directory; close the listener first.
func (s *Server) ListenExtra(name string, uid, gid int) (net.Listener, error) {
	if name == "" || name == SocketName || filepath.Base(name) != name {
		return nil, fmt.Errorf("hook: extra socket %q", name)
	}
	ln, err := listenSocket(filepath.Join(s.dir, name), uid, gid)
	if err != nil {
		return nil, err
	}
	return &peerListener{UnixListener: ln, s: s}, nil
}

// listenSocket listens on the Unix socket at path, mode 0600, owned by
// uid:gid when uid >= 0 (the sandbox's user reaches it through the
// read-only bind mount of its directory).
func listenSocket(path string, uid, gid int) (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("hook: listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("hook: socket mode: %w", err)
	}
	if uid >= 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("hook: chown %s: %w", path, err)
		}
	}
	return ln, nil
}

// peerListener drops connections from outside the sandbox.
type peerListener struct {
	*net.UnixListener
	s *Server
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if !l.s.admit(c) {
			c.Close()
			continue
		}
		return c, nil
	}
}
