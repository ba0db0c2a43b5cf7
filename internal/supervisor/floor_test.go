package supervisor

import (
	"errors"
	"os"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkInterceptionFloor measures what stopping a shell loop's execs
// costs on this machine before the supervisor does any work of its own,
// so the price of tracing (`make bench-runner`) can be read against it.
// The same loop of 100 execs of /bin/true runs:
//
//   - untraced: nothing between the shell and the kernel;
//   - notify: a seccomp filter hands every execve to a thread that answers
//     "continue" at once. That is one round trip per exec and the least
//     any exec-time decision can cost, without ptrace, without reading the
//     argv, and without the after-exec stop that makes such a check safe
//     from another thread rewriting the argv;
//   - notify-same-cpu: the same, with the listener asking the kernel to
//     wake the answering thread and then the process on the waker's CPU
//     (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP), the cheaper hand-off it offers;
//   - ptrace-follow: every process followed across fork, clone and exec
//     and let go at once, left to the scheduler;
//   - ptrace-follow-one-cpu: the same with the tracer and the loop kept on
//     the tracer's CPU, as the supervisor keeps a call that execs (see
//     pinner): each stop is a switch on one CPU instead of two cross-CPU
//     wake-ups.
//
// Each reports ns/exec; notify − untraced is the floor of interception.
func BenchmarkInterceptionFloor(b *testing.B) {
	argv := []string{"bash", "-c", "for i in $(seq 100); do /bin/true; done"}
	bash, err := lookPath("bash", os.Environ())
	if err != nil {
		b.Fatal(err)
	}
	attr := func(ptrace bool) *syscall.ProcAttr {
		return &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{Ptrace: ptrace}}
	}
	perExec := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/exec")
	}
	b.Run("untraced", func(b *testing.B) {
		for b.Loop() {
			pid, err := syscall.ForkExec(bash, argv, attr(false))
			if err != nil {
				b.Fatal(err)
			}
			waitExit(b, pid)
		}
		perExec(b)
	})
	b.Run("notify", func(b *testing.B) {
		for b.Loop() {
			floorNotified(b, bash, argv, attr(false), false)
		}
		perExec(b)
	})
	b.Run("notify-same-cpu", func(b *testing.B) {
		for b.Loop() {
			floorNotified(b, bash, argv, attr(false), true)
		}
		perExec(b)
	})
	b.Run("ptrace-follow", func(b *testing.B) {
		for b.Loop() {
			floorFollowed(b, bash, argv, attr(true), false)
		}
		perExec(b)
	})
	b.Run("ptrace-follow-one-cpu", func(b *testing.B) {
		for b.Loop() {
			floorFollowed(b, bash, argv, attr(true), true)
		}
		perExec(b)
	})
}

func waitExit(b *testing.B, pid int) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err != unix.EINTR {
			if err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
				b.Fatalf("loop: %v %v", err, ws)
			}
			return
		}
	}
}

// floorNotified runs argv under a filter notifying every execve and
// execveat, on a thread of its own that then ends (a filter binds the
// thread that installs it and what it starts), and answers each with
// continue.
func floorNotified(b *testing.B, path string, argv []string, attr *syscall.ProcAttr, sameCPU bool) {
	listeners := make(chan int)
	pids := make(chan int)
	errs := make(chan error, 1)
	go func() {
		// Never unlocked: the thread carries the filter and ends with this goroutine.
		runtime.LockOSThread()
		fd, err := notifyExecs()
		if err != nil {
			errs <- err
			close(listeners)
			return
		}
		listeners <- fd
		// bash's own exec waits for its answer before ForkExec returns.
		pid, err := syscall.ForkExec(path, argv, attr)
		if err != nil {
			errs <- err
			close(pids)
			return
		}
		pids <- pid
	}()
	listener, ok := <-listeners
	if !ok {
		b.Fatal(<-errs)
	}
	if sameCPU {
		// The kernel wakes the answering thread and, after the answer,
		// the waiting process on the waker's CPU (Linux 6.6).
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP); e != 0 {
			b.Fatal("sync wake-up:", e)
		}
	}
	go func() {
		fds := []unix.PollFd{{Fd: int32(listener), Events: unix.POLLIN}}
		for {
			// A hang-up: no process is left on the filter.
			if _, err := unix.Poll(fds, -1); err == unix.EINTR {
				continue
			} else if err != nil || fds[0].Revents&unix.POLLIN == 0 {
				unix.Close(listener)
				return
			}
			var n seccompNotif
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n))); e != 0 {
				if e == unix.EINTR || e == unix.ENOENT {
					continue
				}
				continue // the process went away meanwhile
			}
			resp := seccompResp{ID: n.ID, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE}
			_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(listener), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
		}
	}()
	pid, ok := <-pids
	if !ok {
		b.Fatal(<-errs)
	}
	waitExit(b, pid)
}

// The kernel's seccomp_notif and seccomp_notif_resp.
type seccompNotif struct {
	ID    uint64
	PID   uint32
	Flags uint32
	NR    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// notifyExecs installs, on the calling thread, a filter that hands every
// execve and execveat to the returned listener.
func notifyExecs() (int, error) {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return -1, err
	}
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeqK = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
	)
	prog := []unix.SockFilter{
		{Code: ldW, K: 0},
		{Code: jeqK, K: unix.SYS_EXECVE, Jt: 2},
		{Code: jeqK, K: unix.SYS_EXECVEAT, Jt: 1},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ret, K: unix.SECCOMP_RET_USER_NOTIF},
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	fd, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&fp)))
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// floorFollowed runs argv traced, following every fork, clone and exec,
// and lets every stop go at once; with oneCPU the tracing thread and
// (inheriting it) everything it starts keep the CPU the thread is on.
func floorFollowed(b *testing.B, path string, argv []string, attr *syscall.ProcAttr, oneCPU bool) {
	done := make(chan error)
	go func() {
		// Never unlocked: ptrace requests must come from the tracing
		// thread, and the thread's pin, if any, ends with it.
		runtime.LockOSThread()
		if oneCPU {
			var p pinner
			if p.start(); !p.on {
				done <- errors.New("cannot pin the tracer to one CPU")
				return
			}
		}
		pid, err := syscall.ForkExec(path, argv, attr)
		if err != nil {
			done <- err
			return
		}
		first := true
		for {
			var ws unix.WaitStatus
			p, err := unix.Wait4(-1, &ws, unix.WALL, nil)
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				done <- err
				return
			case ws.Exited() || ws.Signaled():
				if p == pid {
					done <- nil
					return
				}
				continue
			}
			sig := 0
			switch {
			case p == pid && first:
				first = false
				_ = unix.PtraceSetOptions(pid, unix.PTRACE_O_TRACEEXEC|unix.PTRACE_O_TRACEFORK|
					unix.PTRACE_O_TRACEVFORK|unix.PTRACE_O_TRACECLONE|unix.PTRACE_O_EXITKILL)
			case ws.StopSignal() == unix.SIGTRAP || ws.StopSignal() == unix.SIGSTOP:
			default:
				sig = int(ws.StopSignal())
			}
			_ = unix.PtraceCont(p, sig)
		}
	}()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
