package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The exec check reads a program's argv from its new image while the
// program is stopped before its first instruction. That reading is only
// worth something if nothing else can rewrite the argv between the check
// and the program's use of it: an agent could start `git push origin
// feature`, let an approver allow it, and meanwhile overwrite "feature"
// with "main" from a sibling process. ptrace itself is closed to the
// sandbox (every process is already traced by the supervisor, and a
// process has one tracer); two doors remain, and confine shuts both on the
// tracer's thread, so every call's process inherits the guard and cannot
// drop it:
//
//   - /proc/PID/mem opened for writing: a Landlock ruleset lets files be
//     opened for writing beneath every top-level directory except /proc
//     and /sys. Pipes and sockets reached through /proc/self/fd stay
//     writable (they are not files under /proc), as do /dev/null and the
//     workspace.
//   - process_vm_writev: a seccomp filter answers EPERM. It also answers
//     ENOSYS to every syscall made through another architecture's entry
//     (int 0x80, x32), which would otherwise go around the filter's
//     syscall numbers.
//
// The same filter refuses new namespaces: unshare and clone with any
// CLONE_NEW* flag and setns answer EPERM, and clone3 (whose flags a
// filter cannot read) ENOSYS, on which the C library falls back to clone.
// The sandbox's own profile let a call create a user namespace and, in
// it, a mount namespace, where it could bind-mount a copied program
// read-only: the identifier trusts what runs from a read-only mount to be
// what its path says.
//
// Both are enforced by the kernel, need no privilege (no_new_privs is set
// first, as the sandbox already has it), and are stacked: a process can
// add its own restrictions but never lift these.

// confine applies the guard to the calling thread, which must be locked to
// its goroutine and stay so: Landlock and seccomp bind a thread and the
// processes it forks, never the rest of the supervisor.
func confine() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if err := landlockProc(); err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	if err := seccompGuard(); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}

// landlockAccess is what the ruleset handles, and what it allows beneath
// every top-level directory but /proc and /sys: opening files for
// writing, and linking or renaming files between directories.
const landlockAccess = unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REFER

// landlockProc allows opening files for writing everywhere but beneath
// /proc and /sys.
func landlockProc() error {
	abi, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return fmt.Errorf("not available: %w", e)
	}
	// ABI 1 cannot handle REFER, and a ruleset that does not handle it
	// refuses every link and rename across directories (mv, ln, package
	// managers): ABI 2 (Linux 5.19) is the least this guard takes.
	if abi < 2 {
		return fmt.Errorf("ABI %d, want 2 or later", abi)
	}
	// Only the first field is given, so every kernel from ABI 2 takes it.
	attr := unix.LandlockRulesetAttr{Handled_access_fs: landlockAccess}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr.Handled_access_fs), 0)
	if e != 0 {
		return fmt.Errorf("create ruleset: %w", e)
	}
	defer unix.Close(int(fd))
	entries, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	for _, ent := range entries {
		switch ent.Name() {
		case "proc", "sys":
			continue
		}
		if err := landlockAllowWrite(int(fd), filepath.Join("/", ent.Name())); err != nil {
			return err
		}
	}
	_, _, e = unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0)
	if e != 0 {
		return fmt.Errorf("restrict self: %w", e)
	}
	return nil
}

// landlockAllowWrite adds a rule letting files beneath dir be opened for
// writing. A name that is not a directory (a plain file or a dangling
// link at the root) gets no rule.
func landlockAllowWrite(ruleset int, dir string) error {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return nil
	}
	pfd, err := unix.Open(dir, unix.O_PATH|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil // vanished or unreadable: nothing to allow
	}
	defer unix.Close(pfd)
	rule := unix.LandlockPathBeneathAttr{Allowed_access: landlockAccess, Parent_fd: int32(pfd)}
	_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
	if e != 0 {
		return fmt.Errorf("allow writes beneath %s: %w", dir, e)
	}
	return nil
}

// nsFlags are the clone and unshare flags that make a new namespace.
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWTIME

// seccompGuard installs a filter refusing process_vm_writev, new
// namespaces and every syscall entered through a foreign architecture.
func seccompGuard() error {
	arch, ok := auditArch[runtime.GOARCH]
	if !ok {
		return errors.New("unsupported architecture " + runtime.GOARCH)
	}
	const (
		ldW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeqK = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jgeK = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		andK = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
		// offsets in struct seccomp_data; the flags are in the low 32
		// bits of args[0], first on a little-endian machine.
		offNR    = 0
		offArch  = 4
		offFlags = 16
		// x32 syscalls have this bit set in their number.
		x32Bit = 0x40000000
	)
	// Jumps are relative: Jt/Jf skip that many instructions. The labels
	// are the last three instructions (enosys, eperm, allow) and flags.
	prog := []unix.SockFilter{
		/* 0 */ {Code: ldW, K: offArch},
		/* 1 */ {Code: jeqK, K: arch, Jt: 1},
		/* 2 */ {Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		/* 3 */ {Code: ldW, K: offNR},
		/* 4 */ {Code: jgeK, K: x32Bit, Jt: 9}, // → 14 enosys
		/* 5 */ {Code: jeqK, K: unix.SYS_PROCESS_VM_WRITEV, Jt: 9}, // → 15 eperm
		/* 6 */ {Code: jeqK, K: unix.SYS_CLONE3, Jt: 7}, // → 14 enosys
		/* 7 */ {Code: jeqK, K: unix.SYS_SETNS, Jt: 7}, // → 15 eperm
		/* 8 */ {Code: jeqK, K: unix.SYS_UNSHARE, Jt: 2}, // → 11 flags
		/* 9 */ {Code: jeqK, K: unix.SYS_CLONE, Jt: 1}, // → 11 flags
		/* 10 */ {Code: ret, K: unix.SECCOMP_RET_ALLOW},
		/* 11 flags */ {Code: ldW, K: offFlags},
		/* 12 */ {Code: andK, K: nsFlags},
		/* 13 */ {Code: jeqK, K: 0, Jt: 2, Jf: 1}, // → 16 allow, 15 eperm
		/* 14 enosys */ {Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		/* 15 eperm */ {Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		/* 16 allow */ {Code: ret, K: unix.SECCOMP_RET_ALLOW},
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fp)))
	if e != 0 {
		return e
	}
	return nil
}

// auditArch is the seccomp architecture of the native syscall entry.
var auditArch = map[string]uint32{
	"amd64": unix.AUDIT_ARCH_X86_64,
	"arm64": unix.AUDIT_ARCH_AARCH64,
}
