package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The runner's end: it listens on a Unix socket in a directory private to
// the session, bind-mounted into the sandbox at ContainerDir, accepts the
// one supervisor of that sandbox, and then drives it through Conn.

// ContainerDir is where the session's socket directory is mounted in the
// sandbox, and ContainerBinary where the supervisor binary is.
const (
	ContainerDir    = "/agentaudit/supervisor"
	ContainerBinary = "/agentaudit/sandbox-supervisor"
	SocketName      = "supervisor.sock"
)

// Errors of the runner's end.
var (
	// ErrClosed: the supervisor connection is gone; the sandbox is dead.
	ErrClosed = errors.New("supervisor: connection closed")
	// ErrPeer: something other than the sandbox's PID 1 connected.
	ErrPeer = errors.New("supervisor: unexpected peer")
)

// Listener is the session's socket, waiting for its supervisor.
type Listener struct {
	ln  *net.UnixListener
	dir string
}

// Listen creates dir (mode 0700, owned by uid:gid when uid >= 0, so the
// sandbox's user can traverse it) and listens on dir/SocketName.
func Listen(dir string, uid, gid int) (*Listener, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("supervisor: socket dir: %w", err)
	}
	sock := filepath.Join(dir, SocketName)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("supervisor: listen: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	if uid >= 0 {
		for _, p := range []string{dir, sock} {
			if err := os.Chown(p, uid, gid); err != nil {
				ln.Close()
				os.RemoveAll(dir)
				return nil, fmt.Errorf("supervisor: chown %s: %w", p, err)
			}
		}
	}
	return &Listener{ln: ln, dir: dir}, nil
}

// Dir is the host directory holding the socket.
func (l *Listener) Dir() string { return l.dir }

// Close stops listening and removes the directory.
func (l *Listener) Close() error {
	err := l.ln.Close()
	os.RemoveAll(l.dir)
	return err
}

// Accept waits for the supervisor, checks it, and completes the hello.
// peerPID, when not 0, is the host pid the connecting process must have
// (the container's PID 1, from the runtime): nothing else in the sandbox
// may pose as its supervisor. The listener is closed once a supervisor is
// accepted, so no second connection can be made.
func (l *Listener) Accept(ctx context.Context, peerPID func() int, checker Checker, opts ...ConnOption) (*Conn, error) {
	stop := context.AfterFunc(ctx, func() { l.ln.SetDeadline(time.Now()) })
	defer stop()
	uc, err := l.ln.AcceptUnix()
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("supervisor: waiting for the sandbox's supervisor: %w", err)
	}
	l.Close()
	if peerPID != nil {
		if want := peerPID(); want != 0 {
			got, err := peerCred(uc)
			if err != nil || got != want {
				uc.Close()
				return nil, fmt.Errorf("%w: pid %d connected, want the sandbox's PID 1 (host pid %d): %v", ErrPeer, got, want, err)
			}
		}
	}
	c := newConn(uc, checker, opts...)
	if err := c.handshake(ctx); err != nil {
		uc.Close()
		return nil, err
	}
	go c.readLoop()
	return c, nil
}

func peerCred(uc *net.UnixConn) (int, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return int(cred.Pid), nil
}

// Checker rules on each exec in the sandbox. It may block (an approval);
// the process stays stopped meanwhile. It must not panic.
type Checker interface {
	CheckExec(ctx context.Context, c *Check) Verdict
}

// Recorder is implemented by a Checker that records execs the supervisor
// ran on a reusable verdict (Check.Recorded). It gets them in the order
// they happened, as many at a time as arrived together, always before the
// exit of their call is reported; it must not block for long.
type Recorder interface {
	RecordExecs(ctx context.Context, cs []*Check)
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context, c *Check) Verdict

// CheckExec implements Checker.
func (f CheckerFunc) CheckExec(ctx context.Context, c *Check) Verdict { return f(ctx, c) }

// ConnOption configures a Conn.
type ConnOption func(*Conn)

// WithLogger sets the logger of a Conn.
func WithLogger(l *slog.Logger) ConnOption { return func(c *Conn) { c.log = l } }

// WithNProc tells the supervisor the sandbox's process limit.
func WithNProc(n int) ConnOption { return func(c *Conn) { c.nproc = n } }

// WithIdentify names the programs whose copies the supervisor must
// recognise (see Welcome.Identify).
func WithIdentify(names []string) ConnOption { return func(c *Conn) { c.identify = names } }

// WithNoticeHandler receives the supervisor's notices (leftover kills,
// internal failures).
func WithNoticeHandler(f func(Notice)) ConnOption { return func(c *Conn) { c.onNotice = f } }

// Conn is the runner's connection to one sandbox's supervisor.
type Conn struct {
	uc       *net.UnixConn
	w        *wire
	checker  Checker
	log      *slog.Logger
	nproc    int
	identify []string
	onNotice func(Notice)
	hello    Hello

	ctx    context.Context // ends when the connection does
	cancel context.CancelFunc
	ids    atomic.Uint64

	mu    sync.Mutex
	calls map[uint64]*pending
	held  chan Held
	err   error
	done  chan struct{}
}

type pending struct {
	onOut  func(stream int, b []byte)
	result chan *Exit
}

func newConn(uc *net.UnixConn, checker Checker, opts ...ConnOption) *Conn {
	c := &Conn{uc: uc, w: newWire(uc), checker: checker, log: slog.New(slog.DiscardHandler),
		calls: map[uint64]*pending{}, done: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

func (c *Conn) handshake(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		c.uc.SetDeadline(dl)
		defer c.uc.SetDeadline(time.Time{})
	}
	m, err := c.w.read()
	if err != nil {
		return fmt.Errorf("supervisor: hello: %w", err)
	}
	if m.Type != MsgHello || m.Hello == nil {
		return fmt.Errorf("%w: first frame %q, want hello", ErrFrame, m.Type)
	}
	if m.Hello.Version != ProtocolVersion {
		return fmt.Errorf("supervisor: protocol version %d, this runner speaks %d", m.Hello.Version, ProtocolVersion)
	}
	c.hello = *m.Hello
	return c.w.write(&Msg{Type: MsgWelcome, Welcome: &Welcome{Version: ProtocolVersion, NProc: c.nproc, Identify: c.identify}})
}

// Hello is what the supervisor said when it connected.
func (c *Conn) Hello() Hello { return c.hello }

// Done is closed when the connection ends; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is up).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection; the supervisor then kills every process in
// the sandbox and exits.
func (c *Conn) Close() error {
	err := c.uc.Close()
	<-c.done
	return err
}

func (c *Conn) readLoop() {
	err := c.serve()
	c.mu.Lock()
	if err == nil {
		err = ErrClosed
	} else {
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	c.err = err
	calls := c.calls
	c.calls = map[uint64]*pending{}
	if c.held != nil {
		close(c.held)
		c.held = nil
	}
	c.mu.Unlock()
	c.cancel()
	for _, p := range calls {
		close(p.result)
	}
	close(c.done)
}

func (c *Conn) serve() error {
	// Records that arrived together are handed over together, and before
	// whatever frame follows them.
	var recs []*Check
	flush := func() {
		if len(recs) == 0 {
			return
		}
		if r, ok := c.checker.(Recorder); ok {
			r.RecordExecs(c.ctx, recs)
		}
		recs = nil
	}
	defer flush()
	for {
		if c.w.r.Buffered() == 0 {
			flush()
		}
		m, err := c.w.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		if m.Type != MsgCheck || m.Check == nil || !m.Check.Recorded {
			flush()
		}
		switch m.Type {
		case MsgOut:
			if m.Out == nil {
				return fmt.Errorf("%w: out without body", ErrFrame)
			}
			c.mu.Lock()
			p := c.calls[m.Out.ID]
			c.mu.Unlock()
			if p != nil && p.onOut != nil {
				p.onOut(m.Out.Stream, m.Out.Data)
			}
		case MsgExit:
			if m.Exit == nil {
				return fmt.Errorf("%w: exit without body", ErrFrame)
			}
			c.mu.Lock()
			p := c.calls[m.Exit.ID]
			delete(c.calls, m.Exit.ID)
			c.mu.Unlock()
			if p != nil {
				p.result <- m.Exit
			}
		case MsgCheck:
			if m.Check == nil {
				return fmt.Errorf("%w: check without body", ErrFrame)
			}
			chk := m.Check
			if chk.Recorded {
				recs = append(recs, chk)
				continue
			}
			// Checks may wait for a human; each gets its own goroutine so
			// one pending approval does not stop the others.
			go c.check(chk)
		case MsgNotice:
			if m.Notice != nil && c.onNotice != nil {
				c.onNotice(*m.Notice)
			}
		case MsgHeld:
			c.mu.Lock()
			if c.held != nil && m.Held != nil {
				c.held <- *m.Held
				c.held = nil
			}
			c.mu.Unlock()
		default:
			return fmt.Errorf("%w: unexpected %q from the supervisor", ErrFrame, m.Type)
		}
	}
}

func (c *Conn) check(chk *Check) {
	v := Verdict{ID: chk.ID, Reason: "no_checker"}
	if c.checker != nil {
		v = c.checker.CheckExec(c.ctx, chk)
		v.ID = chk.ID
	}
	if err := c.w.write(&Msg{Type: MsgVerdict, Verdict: &v}); err != nil {
		c.log.Warn("supervisor: verdict not sent", "pid", chk.PID, "err", err)
	}
}

// Request is one command for the supervisor to run.
type Request struct {
	CallID      string
	Argv        []string
	Cwd         string
	Env         []string
	Stdin       []byte // nil: /dev/null
	Timeout     time.Duration
	OutputLimit int
	CPUSeconds  uint64
	Background  bool
	Untraced    bool // see Exec.Untraced: benchmarks only
	PtraceOnly  bool // see Exec.PtraceOnly: benchmarks only
	// OnOutput, when set, receives the kept output as it arrives.
	OnOutput func(stream int, b []byte)
}

// Result is how a command ended, with its kept output.
type Result struct {
	Exit
	Stdout, Stderr []byte
}

// Run runs req in the sandbox and waits for it. When ctx ends first the
// call's processes are killed and Run returns the result with Killed
// "cancelled" once the supervisor reports it (or ErrClosed).
func (c *Conn) Run(ctx context.Context, req Request) (*Result, error) {
	id := c.ids.Add(1)
	res := &Result{}
	var omu sync.Mutex
	p := &pending{result: make(chan *Exit, 1), onOut: func(stream int, b []byte) {
		omu.Lock()
		if stream == 1 {
			res.Stdout = append(res.Stdout, b...)
		} else {
			res.Stderr = append(res.Stderr, b...)
		}
		omu.Unlock()
		if req.OnOutput != nil {
			req.OnOutput(stream, b)
		}
	}}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.calls[id] = p
	c.mu.Unlock()
	x := &Exec{ID: id, CallID: req.CallID, Argv: req.Argv, Cwd: req.Cwd, Env: req.Env,
		Stdin: req.Stdin, HasStdin: req.Stdin != nil, TimeoutMS: req.Timeout.Milliseconds(),
		OutputLimit: req.OutputLimit, CPUSeconds: req.CPUSeconds, Background: req.Background,
		Untraced: req.Untraced, PtraceOnly: req.PtraceOnly}
	if err := c.w.write(&Msg{Type: MsgExec, Exec: x}); err != nil {
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: send exec: %w", ErrClosed, err)
	}
	var e *Exit
	select {
	case e = <-p.result:
	case <-ctx.Done():
		_ = c.w.write(&Msg{Type: MsgCancel, Cancel: &Cancel{ID: id}})
		select {
		case e = <-p.result:
		case <-time.After(5 * time.Second):
		}
	}
	if e == nil {
		if err := c.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("supervisor: call %d: no exit after cancel: %w", id, ctx.Err())
	}
	omu.Lock()
	res.Exit = *e
	omu.Unlock()
	return res, nil
}

// Hold freezes every process in the sandbox and reports how many it
// froze; Release lets them run again.
func (c *Conn) Hold(ctx context.Context) (int, error) {
	ch := make(chan Held, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.held = ch
	c.mu.Unlock()
	if err := c.w.write(&Msg{Type: MsgHold}); err != nil {
		return 0, fmt.Errorf("%w: send hold: %w", ErrClosed, err)
	}
	select {
	case h, ok := <-ch:
		if !ok {
			return 0, c.Err()
		}
		return h.Frozen, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Release undoes Hold.
func (c *Conn) Release() error {
	if err := c.w.write(&Msg{Type: MsgRelease}); err != nil {
		return fmt.Errorf("%w: send release: %w", ErrClosed, err)
	}
	return nil
}
