package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxCmdline bounds how much of a process's command line is read for a
// check; a longer one is reported truncated.
const maxCmdline = 256 << 10

// maxReuse bounds the reusable verdicts kept per call.
const maxReuse = 4096

// maxRecords bounds the records of reused verdicts held back to be sent
// together (see tracer.records).
const maxRecords = 256

// recordWindow is how long the first record held back waits for others.
// Sent one by one, each record of a tight exec loop woke the runner (and
// its event log) once per exec, on the CPU the loop needed. It is also
// how many records a supervisor killed outright can take with it, so it
// stays short: 100 ms measured no clear gain over 20.
const recordWindow = 20 * time.Millisecond

// supervisorTasks is a margin for the supervisor's own threads when it
// compares the traced tasks with the sandbox's process limit.
const supervisorTasks = 16

// task is one traced thread or process.
type task struct {
	tid    int
	tgid   int
	ppid   int // the process that started it
	c      *call
	thread bool
	root   bool // the call's first process
	execd  bool // has been through an exec stop
	// started: its first stop was handled (the exec stop of a call's
	// first process, the attach stop of the others).
	started  bool
	checking uint64 // the pending check's id, 0 when none
	checkKey string // what a reusable verdict for the pending check is kept under
	frozen   bool   // stopped by a hold
	stopSent bool   // a hold's SIGSTOP is on its way
	bg       bool   // outlived its call
	// aff and lastResume: the task's CPU mask as the tracer knows it,
	// and when the tracer last let it go (see pinner).
	aff        affinity
	lastResume time.Time
}

// call is one Exec being run.
type call struct {
	x         *Exec
	root      int
	start     time.Time
	tasks     map[int]*task
	rootDone  bool
	status    unix.WaitStatus
	rusage    unix.Rusage
	duration  time.Duration
	killed    string
	leftovers int
	pidsLimit bool
	denied    []DeniedExec
	out, err  *capture
	readers   sync.WaitGroup
	timer     *time.Timer
	finished  bool
	// reuse holds the verdicts the runner marked reusable, by exec.
	reuse map[string]Verdict
}

// tracer owns every traced process. All of its state is touched only by
// loop's goroutine, which is locked to one OS thread: ptrace requests are
// accepted only from the thread that is the tracer.
type tracer struct {
	w       *wire
	welcome *Welcome
	log     *slog.Logger
	reqs    chan func()

	tasks    map[int]*task
	calls    map[uint64]*call
	checks   map[uint64]*task
	checkSeq uint64
	early    map[int]bool // attach stops seen before the parent's fork event
	holding  bool
	heldWait bool
	heldAt   time.Time
	ident    *identifier
	proc     procReader
	recMu    sync.Mutex
	// records are execs that ran on a reused verdict, not yet sent. They
	// go in one write recordWindow after the first of them, or once
	// maxRecords are held, and always before any other frame the tracer
	// sends (a check, an exit, a notice, held): the runner sees every exec
	// in the order it happened, and a call's execs before its exit.
	records  []*Msg
	recTimer *time.Timer
	pin      pinner
	pinTimer *time.Timer
	bell     atomic.Int64 // the doorbell's pid
	bells    map[int]bool // the doorbell's threads
}

func newTracer(w *wire, welcome *Welcome, log *slog.Logger) *tracer {
	t := &tracer{
		w: w, welcome: welcome, log: log, reqs: make(chan func(), 1024),
		tasks: map[int]*task{}, calls: map[uint64]*call{}, checks: map[uint64]*task{}, early: map[int]bool{},
		ident: newIdentifier(welcome.Identify, os.Getenv("PATH")), bells: map[int]bool{},
	}
	// The window's flush runs on the timer's goroutine, not the tracer
	// thread: ringing the doorbell for it would cost the wake-ups it saves.
	t.recTimer = time.AfterFunc(time.Hour, func() { t.send() })
	t.recTimer.Stop()
	t.pinTimer = time.AfterFunc(time.Hour, func() { t.do(t.sweepPins) })
	t.pinTimer.Stop()
	return t
}

// do runs f on the tracer's thread and wakes it.
func (t *tracer) do(f func()) {
	t.reqs <- f
	t.ring()
}

// loop waits for traced processes and requests until ctx ends, then kills
// every traced process.
//
// The tracer thread blocks in wait4 itself: every ptrace stop reaches it
// without a detour through the runtime's signal handling. To hand it a
// request (a start, a verdict, a hold), do rings a doorbell: a child the
// tracer keeps traced and idle, whose signal-delivery stop makes wait4
// return.
func (t *tracer) loop(ctx context.Context) error {
	// Never unlocked: the thread is the tracer for the supervisor's life.
	runtime.LockOSThread()
	if err := confine(); err != nil {
		// The exec checks still run; what they read could be rewritten
		// by another process. The runner records it as a violation.
		t.log.Error("supervisor: memory guard not applied", "err", err)
		t.notice(Notice{Kind: NoticeSupervisor, Detail: "memory guard not applied, argv checks can be raced: " + err.Error()})
	}
	if err := t.spawnBell(); err != nil {
		return err
	}
	t.pin.start()
	stop := context.AfterFunc(ctx, t.ring)
	defer stop()
	for {
		for drained := false; !drained; {
			select {
			case f := <-t.reqs:
				f()
			default:
				drained = true
			}
		}
		if ctx.Err() != nil {
			t.killAll()
			// Reap what is dead already; EXITKILL takes the rest when the
			// supervisor exits.
			deadline := time.Now().Add(time.Second)
			for len(t.tasks) > 0 && time.Now().Before(deadline) {
				t.reapNoHang()
				time.Sleep(5 * time.Millisecond)
			}
			_ = unix.Kill(int(t.bell.Load()), unix.SIGKILL)
			return nil
		}
		var ws unix.WaitStatus
		var ru unix.Rusage
		pid, err := unix.Wait4(-1, &ws, unix.WALL, &ru)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			// No child at all (ECHILD) cannot happen while the bell lives;
			// it died between two waits: ring a new one.
			if err := t.spawnBell(); err != nil {
				return err
			}
			continue
		}
		if t.bells[pid] {
			t.bellEvent(pid, ws)
			continue
		}
		t.event(pid, ws, &ru)
	}
}

// spawnBell starts the doorbell: this binary again, which only waits
// (Doorbell), traced by the tracer thread with every thread it makes, so
// whichever of its threads takes the doorbell's signal stops for the
// tracer.
func (t *tracer) spawnBell() error {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	pid, err := syscall.ForkExec(exe, []string{"sandbox-supervisor-doorbell"}, &syscall.ProcAttr{
		Env: []string{doorbellEnv + "=1"},
		Sys: &syscall.SysProcAttr{Ptrace: true, Setpgid: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return fmt.Errorf("supervisor: start the doorbell: %w", err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		return fmt.Errorf("supervisor: doorbell: %w", err)
	}
	_ = unix.PtraceSetOptions(pid, unix.PTRACE_O_EXITKILL|unix.PTRACE_O_TRACECLONE)
	t.bells[pid] = true
	t.bell.Store(int64(pid))
	_ = unix.PtraceCont(pid, 0)
	return nil
}

// sweepPins gives their CPUs back to pinned tasks that stopped stopping
// (see pinner).
func (t *tracer) sweepPins() {
	if t.pin.sweep(time.Now()) {
		t.pinTimer.Reset(pinIdle)
	}
}

// ring wakes the tracer thread from wait4.
func (t *tracer) ring() {
	if pid := t.bell.Load(); pid > 0 {
		_ = unix.Kill(int(pid), unix.SIGUSR1)
	}
}

// bellEvent handles a stop or exit of one of the doorbell's threads: a
// new thread is followed, every signal is swallowed (the doorbell only
// exists to be stopped), and a doorbell that something killed is replaced.
func (t *tracer) bellEvent(tid int, ws unix.WaitStatus) {
	if ws.Stopped() {
		if ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() == unix.PTRACE_EVENT_CLONE {
			if msg, err := unix.PtraceGetEventMsg(tid); err == nil {
				t.bells[int(msg)] = true
				// Its attach stop may have come first.
				if t.early[int(msg)] {
					delete(t.early, int(msg))
					_ = unix.PtraceCont(int(msg), 0)
				}
			}
		}
		_ = unix.PtraceCont(tid, 0)
		return
	}
	delete(t.bells, tid)
	if int64(tid) != t.bell.Load() {
		return // one of its threads
	}
	t.log.Warn("supervisor: the doorbell died; starting another", "pid", tid)
	t.bell.Store(0)
	if err := t.spawnBell(); err != nil {
		t.log.Error("supervisor: no doorbell", "err", err)
	}
}

// reapNoHang handles every state change already pending.
func (t *tracer) reapNoHang() {
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, &ru)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if t.bells[pid] {
			continue
		}
		t.event(pid, ws, &ru)
	}
}

// event handles one state change of a traced (or orphaned) process.
func (t *tracer) event(pid int, ws unix.WaitStatus, ru *unix.Rusage) {
	tk := t.tasks[pid]
	if ws.Exited() || ws.Signaled() {
		delete(t.early, pid)
		if tk == nil {
			return // an orphan that was not ours to trace
		}
		t.gone(tk, ws, ru)
		return
	}
	if !ws.Stopped() {
		return
	}
	if tk == nil {
		// A new child's attach stop can come before its parent's fork
		// event: it stays stopped until the parent's event names it.
		t.early[pid] = true
		return
	}
	sig := ws.StopSignal()
	if !tk.started {
		tk.started = true
		if tk.root {
			// The stop after the first program's exec (PTRACE_TRACEME).
			opts := unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK |
				unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_EXITKILL
			if err := unix.PtraceSetOptions(pid, opts); err != nil {
				t.log.Error("supervisor: ptrace options", "pid", pid, "err", err)
				t.notice(Notice{Kind: NoticeSupervisor, ExecID: tk.c.x.ID, CallID: tk.c.x.CallID, PID: pid,
					Detail: "could not trace the call's process: " + err.Error()})
				_ = unix.Kill(pid, unix.SIGKILL)
				return
			}
			if cpu := tk.c.x.CPUSeconds; cpu > 0 {
				lim := unix.Rlimit{Cur: cpu, Max: cpu}
				if err := unix.Prlimit(pid, unix.RLIMIT_CPU, &lim, nil); err != nil {
					t.log.Warn("supervisor: cpu limit", "pid", pid, "err", err)
				}
			}
			t.onExec(tk)
			return
		}
		t.resumeOrFreeze(tk)
		return
	}
	if sig == unix.SIGTRAP {
		switch cause := ws.TrapCause(); cause {
		case unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK, unix.PTRACE_EVENT_CLONE:
			msg, err := unix.PtraceGetEventMsg(pid)
			if err == nil {
				t.adopt(tk, int(msg), cause == unix.PTRACE_EVENT_CLONE)
			}
			t.resumeOrFreeze(tk)
			return
		case unix.PTRACE_EVENT_EXEC:
			t.onExec(tk)
			return
		case 0:
			// A real SIGTRAP: deliver it.
		default:
			t.resumeOrFreeze(tk)
			return
		}
	}
	switch sig {
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		// A hold's stop freezes; job-control stops are not honoured in
		// the sandbox (nothing could continue them but the supervisor).
		if sig == unix.SIGSTOP && tk.stopSent {
			tk.stopSent = false
		}
		t.resumeOrFreeze(tk)
		return
	}
	t.cont(tk, int(sig))
}

// resumeOrFreeze lets a stopped task run, unless the sandbox is held.
func (t *tracer) resumeOrFreeze(tk *task) {
	if t.holding {
		tk.frozen = true
		t.heldCheck()
		return
	}
	t.cont(tk, 0)
}

func (t *tracer) cont(tk *task, sig int) {
	if t.pin.resume(tk) {
		t.pinTimer.Reset(pinIdle)
	}
	if err := unix.PtraceCont(tk.tid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		t.log.Warn("supervisor: ptrace cont", "pid", tk.tid, "err", err)
	}
}

// adopt registers a new child or thread of parent.
func (t *tracer) adopt(parent *task, child int, thread bool) {
	if _, ok := t.tasks[child]; ok {
		return
	}
	c := parent.c
	tk := &task{tid: child, tgid: child, ppid: parent.tgid, c: c, thread: thread, bg: parent.bg}
	if parent.aff == affPinned {
		// Forked, or cloned, while pinned: it has the tracer's CPU.
		tk.aff = affPinned
	}
	if thread {
		tk.tgid = parent.tgid
	}
	t.tasks[child] = tk
	c.tasks[child] = tk
	if n := t.welcome.NProc; n > 0 && len(t.tasks)+supervisorTasks >= n {
		c.pidsLimit = true
	}
	if t.early[child] {
		delete(t.early, child)
		tk.started = true
		t.resumeOrFreeze(tk)
	}
}

// gone forgets a task that exited.
func (t *tracer) gone(tk *task, ws unix.WaitStatus, ru *unix.Rusage) {
	delete(t.tasks, tk.tid)
	t.pin.forget(tk)
	if tk.checking != 0 {
		delete(t.checks, tk.checking)
	}
	c := tk.c
	delete(c.tasks, tk.tid)
	if tk.tid == c.root && !c.rootDone {
		c.rootDone = true
		c.status, c.rusage = ws, *ru
		c.duration = time.Since(c.start)
		t.rootExited(c)
	}
	t.heldCheck()
}

// onExec asks the runner about the program a task has just exec'd; the
// task stays stopped until the verdict.
func (t *tracer) onExec(tk *task) {
	if tk.c.x.PtraceOnly {
		tk.execd = true
		t.resumeOrFreeze(tk)
		return
	}
	pid := tk.tid
	x := t.proc.read(pid, t.ident)
	root := tk.root && !tk.execd
	tk.execd = true
	key := execKey(x.argv, x.trunc, x.exe, x.cwd, x.identity)
	chk := &Check{ExecID: tk.c.x.ID, CallID: tk.c.x.CallID, PID: pid, PPID: tk.ppid,
		Argv: x.argv, ArgvTruncated: x.trunc, Exe: x.exe, Cwd: x.cwd, Root: root, Background: tk.bg, Identity: x.identity}
	if v, ok := tk.c.reuse[key]; ok && !root {
		// Allowed before in this call by the policy alone: it runs now,
		// and the runner records it. What it runs with was read above.
		chk.Recorded, chk.Reason, chk.Rule = true, v.Reason, v.Rule
		t.resumeOrFreeze(tk)
		t.record(&Msg{Type: MsgCheck, Check: chk})
		return
	}
	t.checkSeq++
	id := t.checkSeq
	chk.ID = id
	tk.checking, tk.checkKey = id, key
	t.checks[id] = tk
	if err := t.send(&Msg{Type: MsgCheck, Check: chk}); err != nil {
		// No verdict can come: the program does not run.
		t.log.Warn("supervisor: check not sent; killing", "pid", pid, "err", err)
		delete(t.checks, id)
		tk.checking = 0
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}

// execKey identifies an exec for reusing a verdict: everything the policy
// judges.
func execKey(argv []string, trunc bool, exe, cwd, identity string) string {
	if trunc {
		return "" // never reused
	}
	var b strings.Builder
	for _, s := range []string{exe, cwd, identity} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	for _, a := range argv {
		b.WriteString(a)
		b.WriteByte(0)
	}
	return b.String()
}

// verdict applies the runner's answer to a check.
func (t *tracer) verdict(v Verdict) {
	tk := t.checks[v.ID]
	if tk == nil {
		return // exited, or killed, meanwhile
	}
	delete(t.checks, v.ID)
	tk.checking = 0
	if v.Allow && v.Reuse && tk.checkKey != "" && len(tk.c.reuse) < maxReuse {
		tk.c.reuse[tk.checkKey] = v
	}
	if !v.Allow {
		argv, _ := readCmdline(tk.tid)
		tk.c.denied = append(tk.c.denied, DeniedExec{PID: tk.tid, Argv: argv, Reason: v.Reason})
		_ = unix.Kill(tk.tid, unix.SIGKILL)
		return
	}
	t.resumeOrFreeze(tk)
}

// start forks the call's first process, traced from its exec on.
func (t *tracer) start(x *Exec) {
	if _, dup := t.calls[x.ID]; dup || len(x.Argv) == 0 {
		t.sendExit(&Exit{ID: x.ID, ExitCode: -1, Error: "supervisor: empty argv or duplicate call id"})
		return
	}
	env := mergeEnv(os.Environ(), x.Env)
	path, err := lookPath(x.Argv[0], env)
	if err != nil {
		t.sendExit(&Exit{ID: x.ID, ExitCode: 127, Error: err.Error(),
			Stdout: StreamSum{SHA256: emptySHA}, Stderr: StreamSum{SHA256: emptySHA}})
		return
	}
	c := &call{x: x, tasks: map[int]*task{}, reuse: map[string]Verdict{}}
	limit := max(x.OutputLimit, 0)
	c.out = newCapture(limit, func(b []byte) { t.sendOut(x.ID, 1, b) })
	c.err = newCapture(limit, func(b []byte) { t.sendOut(x.ID, 2, b) })

	outR, outW, err1 := os.Pipe()
	errR, errW, err2 := os.Pipe()
	var inR *os.File
	var inW *os.File
	var err3 error
	if x.HasStdin {
		inR, inW, err3 = os.Pipe()
	} else {
		inR, err3 = os.Open(os.DevNull)
	}
	if err := errors.Join(err1, err2, err3); err != nil {
		for _, f := range []*os.File{outR, outW, errR, errW, inR, inW} {
			if f != nil {
				f.Close()
			}
		}
		t.sendExit(&Exit{ID: x.ID, ExitCode: -1, Error: "supervisor: pipes: " + err.Error()})
		return
	}
	attr := &syscall.ProcAttr{
		Dir: x.Cwd, Env: env,
		Files: []uintptr{inR.Fd(), outW.Fd(), errW.Fd()},
		// Its own process group, so a terminal signal from the supervisor
		// reaches it and not the supervisor; the kill paths use the traced
		// set, not the group, since the program can leave the group.
		Sys: &syscall.SysProcAttr{Ptrace: !x.Untraced, Setpgid: true},
	}
	c.start = time.Now()
	var pid int
	if x.Untraced {
		// Not followed, so never pinned: it gets every CPU from the start.
		t.pin.unpinned(func() { pid, err = syscall.ForkExec(path, x.Argv, attr) })
	} else {
		pid, err = syscall.ForkExec(path, x.Argv, attr)
	}
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if inW != nil {
			inW.Close()
		}
		code := 126
		if errors.Is(err, unix.ENOENT) {
			code = 127
		}
		t.sendExit(&Exit{ID: x.ID, ExitCode: code, Error: fmt.Sprintf("start %s: %v", x.Argv[0], err),
			Stdout: StreamSum{SHA256: emptySHA}, Stderr: StreamSum{SHA256: emptySHA}})
		return
	}
	c.root = pid
	tk := &task{tid: pid, tgid: pid, ppid: os.Getpid(), c: c, root: true, started: x.Untraced}
	if !x.Untraced {
		// Forked by the tracer's thread, it has the tracer's CPU.
		tk.aff = affPinned
	}
	t.tasks[pid] = tk
	c.tasks[pid] = tk
	t.calls[x.ID] = c
	c.readers.Add(2)
	go func() { defer c.readers.Done(); c.out.drain(outR) }()
	go func() { defer c.readers.Done(); c.err.drain(errR) }()
	if inW != nil {
		go func() {
			_, _ = inW.Write(x.Stdin)
			inW.Close()
		}()
	}
	if x.TimeoutMS > 0 {
		id := x.ID
		c.timer = time.AfterFunc(time.Duration(x.TimeoutMS)*time.Millisecond, func() {
			t.do(func() { t.killCall(id, killTimeout) })
		})
	}
}

// killCall kills every process of a running call.
func (t *tracer) killCall(id uint64, why string) {
	c := t.calls[id]
	if c == nil || c.rootDone {
		return
	}
	if c.killed == "" {
		c.killed = why
	}
	for tid := range c.tasks {
		_ = unix.Kill(tid, unix.SIGKILL)
	}
}

// rootExited ends a call whose first process exited: its leftovers are
// killed (or, when the call allows it, kept as background processes), and
// once its output is drained the runner gets the exit.
func (t *tracer) rootExited(c *call) {
	if c.timer != nil {
		c.timer.Stop()
	}
	grace := 2 * time.Second
	if c.x.Background {
		for _, tk := range c.tasks {
			tk.bg = true
		}
		grace = 200 * time.Millisecond
	} else {
		var argv []string
		n, pid := 0, 0
		for tid, tk := range c.tasks {
			if !tk.thread {
				n++
				if argv == nil {
					argv, _ = readCmdline(tid)
					pid = tid
				}
			}
			_ = unix.Kill(tid, unix.SIGKILL)
		}
		c.leftovers = n
		if n > 0 {
			t.notice(Notice{Kind: NoticeLeftover, ExecID: c.x.ID, CallID: c.x.CallID, PID: pid, Argv: argv, Count: n,
				Detail: fmt.Sprintf("%d process(es) outlived the call and were killed", n)})
		}
	}
	go func() {
		done := make(chan struct{})
		go func() { c.readers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(grace):
			// A background process still holds the pipes: stop reading.
			c.out.abandon()
			c.err.abandon()
			<-done
		}
		t.do(func() { t.finish(c) })
	}()
}

func (t *tracer) finish(c *call) {
	if c.finished {
		return
	}
	c.finished = true
	delete(t.calls, c.x.ID)
	e := &Exit{ID: c.x.ID, ExitCode: -1, DurationUS: c.duration.Microseconds(),
		UserUS: tvUS(c.rusage.Utime), SystemUS: tvUS(c.rusage.Stime), MaxRSSKB: c.rusage.Maxrss,
		Killed: c.killed, Leftovers: c.leftovers, PidsLimit: c.pidsLimit, Denied: c.denied}
	switch {
	case c.status.Exited():
		e.ExitCode = c.status.ExitStatus()
	case c.status.Signaled():
		e.Signal = int(c.status.Signal())
		e.ExitCode = 128 + e.Signal
	}
	if e.Killed == "" && len(c.denied) > 0 && c.status.Signaled() && c.status.Signal() == unix.SIGKILL {
		e.Killed = killExecDenied
	}
	e.Stdout, e.Stderr = c.out.sum(), c.err.sum()
	t.sendExit(e)
}

func tvUS(tv unix.Timeval) int64 { return tv.Sec*1e6 + tv.Usec }

// record holds back the record of an exec that ran on a reused verdict
// (see tracer.records).
func (t *tracer) record(m *Msg) {
	t.recMu.Lock()
	t.records = append(t.records, m)
	n := len(t.records)
	t.recMu.Unlock()
	switch {
	case n >= maxRecords:
		t.send()
	case n == 1:
		t.recTimer.Reset(recordWindow)
	}
}

// send writes the held-back records, then m (if any), in one write, so
// nothing the tracer sends overtakes an exec that happened before it.
// Failing, the runner is gone, and with it the supervisor and every
// process it traces.
func (t *tracer) send(m ...*Msg) error {
	t.recMu.Lock()
	defer t.recMu.Unlock()
	n := len(t.records)
	if n+len(m) == 0 {
		return nil
	}
	batch := append(t.records, m...)
	err := t.w.writeBatch(batch)
	if err != nil && n > 0 {
		t.log.Warn("supervisor: exec records not sent", "n", n, "err", err)
	}
	clear(batch)
	t.records = batch[:0]
	return err
}

func (t *tracer) sendExit(e *Exit) {
	if err := t.send(&Msg{Type: MsgExit, Exit: e}); err != nil {
		t.log.Warn("supervisor: exit not sent", "id", e.ID, "err", err)
	}
}

func (t *tracer) sendOut(id uint64, stream int, b []byte) {
	if err := t.w.write(&Msg{Type: MsgOut, Out: &Out{ID: id, Stream: stream, Data: b}}); err != nil {
		t.log.Warn("supervisor: output not sent", "id", id, "err", err)
	}
}

func (t *tracer) notice(n Notice) {
	if err := t.send(&Msg{Type: MsgNotice, Notice: &n}); err != nil {
		t.log.Warn("supervisor: notice not sent", "kind", n.Kind, "err", err)
	}
}

// hold stops every traced task; each is frozen at its next stop and stays
// stopped until release. Held is sent once all are stopped (or after a
// second, with how many were).
func (t *tracer) hold() {
	t.holding = true
	for _, tk := range t.tasks {
		if tk.frozen || tk.checking != 0 || !tk.started {
			continue
		}
		tk.stopSent = true
		_ = unix.Tgkill(tk.tgid, tk.tid, unix.SIGSTOP)
	}
	t.heldWait, t.heldAt = true, time.Now()
	time.AfterFunc(1100*time.Millisecond, func() { t.do(t.heldTimeout) })
	t.heldCheck()
}

func (t *tracer) heldCheck() {
	if !t.heldWait {
		return
	}
	n := 0
	for _, tk := range t.tasks {
		if !tk.frozen && tk.checking == 0 && tk.started {
			return
		}
		n++
	}
	t.sendHeld(n)
}

func (t *tracer) heldTimeout() {
	if t.heldWait && time.Since(t.heldAt) > time.Second {
		n := 0
		for _, tk := range t.tasks {
			if tk.frozen || tk.checking != 0 {
				n++
			}
		}
		t.sendHeld(n)
	}
}

func (t *tracer) sendHeld(n int) {
	t.heldWait = false
	if err := t.send(&Msg{Type: MsgHeld, Held: &Held{Frozen: n}}); err != nil {
		t.log.Warn("supervisor: held not sent", "err", err)
	}
}

// release lets every frozen task run again.
func (t *tracer) release() {
	t.holding, t.heldWait = false, false
	for _, tk := range t.tasks {
		if tk.frozen {
			tk.frozen = false
			t.cont(tk, 0)
		}
	}
}

func (t *tracer) killAll() {
	for tid := range t.tasks {
		_ = unix.Kill(tid, unix.SIGKILL)
	}
}

// mergeEnv overlays KEY=VALUE pairs on base.
func mergeEnv(base, add []string) []string {
	if len(add) == 0 {
		return base
	}
	idx := map[string]int{}
	out := append([]string(nil), base...)
	for i, kv := range out {
		if k, _, ok := strings.Cut(kv, "="); ok {
			idx[k] = i
		}
	}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// lookPath finds prog on env's PATH, as a shell would.
func lookPath(prog string, env []string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	pathVar := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, prog)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found", prog)
}

var emptySHA = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

// capture keeps the first limit bytes of a stream (sending them on as they
// come) and the length and sha256 of all of it.
type capture struct {
	mu        sync.Mutex
	limit     int
	kept      int
	n         int64
	h         hash.Hash
	send      func([]byte)
	abandoned bool
	r         *os.File
}

func newCapture(limit int, send func([]byte)) *capture {
	return &capture{limit: limit, h: sha256.New(), send: send}
}

func (c *capture) drain(r *os.File) {
	c.mu.Lock()
	c.r = r
	c.mu.Unlock()
	defer r.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

func (c *capture) write(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.abandoned {
		return
	}
	c.n += int64(len(p))
	c.h.Write(p)
	if room := c.limit - c.kept; room > 0 {
		k := p[:min(room, len(p))]
		c.kept += len(k)
		c.send(k)
	}
}

// abandon stops counting a stream that a background process still holds.
func (c *capture) abandon() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abandoned = true
	if c.r != nil {
		c.r.Close()
	}
}

func (c *capture) sum() StreamSum {
	c.mu.Lock()
	defer c.mu.Unlock()
	return StreamSum{Length: c.n, SHA256: hex.EncodeToString(c.h.Sum(nil))}
}
