package chdbpath

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSigaction is struct sigaction as the rt_sigaction system call takes
// it on linux/amd64 and arm64 (not the libc layout).
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// Handlers is a saved set of signal dispositions.
type Handlers [65]kernelSigaction

// SaveHandlers records the current handler of every signal 1..64.
// chdb_connect installs its own handlers for SIGSEGV, SIGBUS, SIGFPE and
// others; after that a nil dereference in Go hangs instead of panicking, so
// tests save Go's handlers before connecting and restore them after.
func SaveHandlers() *Handlers {
	var h Handlers
	for sig := 1; sig < len(h); sig++ {
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&h[sig])), 8, 0, 0)
	}
	return &h
}

// Restore reinstalls the saved handlers. Signals the kernel refuses
// (SIGKILL, SIGSTOP) are skipped by the kernel's own error.
func (h *Handlers) Restore() {
	for sig := 1; sig < len(h); sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&h[sig])), 0, 8, 0, 0)
	}
}
