package supervisor

import (
	"errors"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procReader reads what a check needs of a process from /proc. It runs at
// every exec stop, while the program waits, so it keeps its buffers from
// one exec to the next and goes straight to the syscalls (an os.File would
// add a poller registration and a finalizer each time). Not safe for
// concurrent use: the tracer thread has its own.
//
// It reads by path, /proc/PID/...: the tracee is a stopped child of the
// tracer, so its pid cannot be reused meanwhile. (Opening /proc/PID once
// and reading relative to it cost more than the lookups it saved.)
type procReader struct {
	path []byte // "/proc/PID/" and a name
	buf  []byte // the command line
	link []byte // a link's target
}

// execInfo is what an exec stop reads of the new program.
type execInfo struct {
	argv     []string
	trunc    bool
	exe, cwd string
	identity string
}

// read reads pid's argv, executable, cwd and (with id) identity.
func (r *procReader) read(pid int, id *identifier) execInfo {
	var x execInfo
	x.argv, x.trunc = r.cmdline(pid)
	x.exe = r.readlink(pid, "exe")
	x.cwd = r.readlink(pid, "cwd")
	x.identity = id.identify(r.name(pid, "exe"))
	return x
}

// name is /proc/PID/name, in r.path.
func (r *procReader) name(pid int, name string) string {
	r.path = strconv.AppendInt(append(r.path[:0], "/proc/"...), int64(pid), 10)
	r.path = append(append(r.path, '/'), name...)
	return string(r.path)
}

// cmdline reads the process's argv, at most maxCmdline bytes. A read
// shorter than asked is the end: the kernel copies the arguments page by
// page until it has what was asked or there is no more to copy, so a
// second read would only return 0 (and a stopped process's arguments
// cannot change in between).
func (r *procReader) cmdline(pid int) ([]string, bool) {
	fd, err := openRetry(r.name(pid, "cmdline"), unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	if r.buf == nil {
		r.buf = make([]byte, 4096)
	}
	b := r.buf[:0]
	for len(b) <= maxCmdline {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		want := cap(b) - len(b)
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n <= 0 || err != nil {
			break
		}
		b = b[:len(b)+n]
		if n < want {
			break
		}
	}
	if cap(b) <= 64<<10 {
		r.buf = b[:0] // keep a grown buffer, within reason
	}
	return splitCmdline(b)
}

// splitCmdline turns a NUL-separated command line into argv, cut at
// maxCmdline bytes (then reported truncated).
func splitCmdline(b []byte) ([]string, bool) {
	trunc := len(b) > maxCmdline
	if trunc {
		b = b[:maxCmdline]
	}
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return []string{}, trunc
	}
	return strings.Split(s, "\x00"), trunc
}

// readlink reads one of the process's links; "" when it cannot.
func (r *procReader) readlink(pid int, name string) string {
	if r.link == nil {
		r.link = make([]byte, 512)
	}
	p := r.name(pid, name)
	for {
		n, err := unix.Readlink(p, r.link)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || n < 0:
			return ""
		case n < len(r.link):
			return string(r.link[:n])
		}
		r.link = make([]byte, 2*len(r.link))
	}
}

// readCmdline reads a process's argv from /proc, at most maxCmdline bytes,
// for the paths that are not an exec stop (a denied exec, a leftover).
func readCmdline(pid int) ([]string, bool) {
	var r procReader
	return r.cmdline(pid)
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}
