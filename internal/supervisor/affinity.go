package supervisor

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Every ptrace stop is two hand-offs: the stopping process wakes the
// tracer, and the tracer's PTRACE_CONT wakes the process. Left to itself
// the scheduler puts the two on different CPUs (each wakes while the
// other's CPU is still busy, so the idle one is chosen), and every
// hand-off becomes a cross-CPU wake-up. On this project's virtual machines
// that doubled what ptrace costs a shell loop: a loop of /bin/true
// followed and let go at once added about 20% wall time across two CPUs
// and 8% with tracer and loop on one.
//
// So the tracer keeps one CPU (the one it starts on) and hands every
// process it resumes to that CPU: a process that stops often runs where
// the tracer waits, and each hand-off is a switch on one CPU. A process
// that has not stopped for pinIdle gets its CPUs back, so parallel work
// (a build's compilers) spreads out as before, a few milliseconds after
// its last exec. A process whose CPUs the program itself chose (taskset,
// sched_setaffinity) is never moved: only a process whose mask is the
// sandbox's whole set is pinned, and a pin is undone only while the mask
// is still the one the tracer set. (A program that chose exactly the
// tracer's CPU for itself cannot be told apart, and may be given the
// whole set back.)
//
// Nothing here is enforcement: a process can change its own mask at any
// time, and all it changes is where it runs.

// pinIdle is how long a pinned process may go without a stop before it
// gets its CPUs back. (A variable so a test can hold a pin.)
var pinIdle = 10 * time.Millisecond

// affinity is what the tracer knows of a task's CPU mask.
type affinity uint8

const (
	affUnknown affinity = iota // read it before touching it
	affPinned                  // the tracer's CPU, set (or inherited) by the tracer
	affOwn                     // the program's own choice: never touched
)

// pinner keeps the tracer's CPU and the tasks pinned to it. Used only on
// the tracer's thread, like the rest of the tracer's state.
type pinner struct {
	on       bool
	all      unix.CPUSet // the sandbox's CPUs: the supervisor's mask at start
	one      unix.CPUSet // the tracer's CPU
	pinned   map[int]*task
	sweeping bool
}

// start pins the calling thread (the tracer's, locked to it) to the CPU it
// runs on. With a single CPU, or when the masks cannot be read or set,
// pinning stays off and nothing else changes.
func (p *pinner) start() {
	if err := unix.SchedGetaffinity(0, &p.all); err != nil || p.all.Count() < 2 {
		return
	}
	var cpu, node uint32
	if _, _, e := unix.Syscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0); e != 0 {
		return
	}
	p.one.Zero()
	p.one.Set(int(cpu))
	if err := unix.SchedSetaffinity(0, &p.one); err != nil {
		return
	}
	p.on, p.pinned = true, map[int]*task{}
}

// resume is called before tk is let go: it pins tk to the tracer's CPU
// unless the program chose its own CPUs. It reports whether a sweep needs
// to be scheduled.
func (p *pinner) resume(tk *task) (sweep bool) {
	if !p.on {
		return false
	}
	tk.lastResume = time.Now()
	switch tk.aff {
	case affOwn:
		return false
	case affPinned:
		if p.pinned[tk.tid] == nil {
			p.pinned[tk.tid] = tk // inherited, or pinned at start
		}
	default:
		var m unix.CPUSet
		if unix.SchedGetaffinity(tk.tid, &m) != nil {
			return false
		}
		switch m {
		case p.one:
		case p.all:
			if unix.SchedSetaffinity(tk.tid, &p.one) != nil {
				return false
			}
		default:
			tk.aff = affOwn
			return false
		}
		tk.aff = affPinned
		p.pinned[tk.tid] = tk
	}
	if p.sweeping {
		return false
	}
	p.sweeping = true
	return true
}

// sweep gives the whole set back to every pinned task that has not been
// resumed for pinIdle, and reports whether any stay pinned (another sweep
// is then due).
func (p *pinner) sweep(now time.Time) (again bool) {
	p.sweeping = false
	for tid, tk := range p.pinned {
		if now.Sub(tk.lastResume) < pinIdle {
			continue
		}
		delete(p.pinned, tid)
		tk.aff = affUnknown
		var m unix.CPUSet
		if unix.SchedGetaffinity(tid, &m) == nil && m == p.one {
			_ = unix.SchedSetaffinity(tid, &p.all)
		}
	}
	p.sweeping = len(p.pinned) > 0
	return p.sweeping
}

// forget drops a task that exited.
func (p *pinner) forget(tk *task) {
	if p.on {
		delete(p.pinned, tk.tid)
	}
}

// unpinned runs fork (on the tracer's thread) with the whole set, so that
// what it forks does not inherit the tracer's CPU.
func (p *pinner) unpinned(fork func()) {
	if !p.on || unix.SchedSetaffinity(0, &p.all) != nil {
		fork()
		return
	}
	fork()
	_ = unix.SchedSetaffinity(0, &p.one)
}
