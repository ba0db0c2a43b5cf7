package runner

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// SandboxWorkspace is where the workspace is mounted inside the sandbox.
const SandboxWorkspace = "/workspace"

// Errors of workspace paths. Both deny the call with path_outside_workspace.
var (
	// ErrOutsideWorkspace: the path, or a symlink on it, leaves the workspace.
	ErrOutsideWorkspace = errors.New("runner: path resolves outside the workspace")
	// ErrPathChanged: a component became a symlink between resolving the
	// path and opening it (the sandbox raced the runner).
	ErrPathChanged = errors.New("runner: path changed while it was opened")
	// ErrBadPath: the path is malformed (NUL byte, too long, too many links).
	ErrBadPath = errors.New("runner: malformed path")
)

// ErrHardLink: write_file's target exists with more than one hard link.
// Writing it would write every other name of the same file as well, a
// protected path among them (`ln .git/config x` makes x such a name), so
// the write is refused and the file is left untouched.
var ErrHardLink = errors.New("runner: file has more than one hard link")

const (
	maxPathLen  = 4096
	maxSymlinks = 40
)

// Workspace is the host directory mounted at /workspace, and the only
// files the file tools touch. Paths are resolved the way the sandbox would
// resolve them (symlinks followed, absolute links against the sandbox root)
// and refused as soon as they leave the workspace; files are then opened one
// component at a time with O_NOFOLLOW beneath the workspace's directory, so
// a symlink swapped in after the check is refused too.
type Workspace struct {
	dir      string
	uid, gid int
}

// OpenWorkspace returns the workspace at dir, which must be a directory.
func OpenWorkspace(dir string) (*Workspace, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("runner: workspace: %w", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("runner: workspace: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("runner: workspace %s is not a directory", real)
	}
	w := &Workspace{dir: real, uid: -1, gid: -1}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		w.uid, w.gid = int(st.Uid), int(st.Gid)
	}
	return w, nil
}

// Dir returns the host directory.
func (w *Workspace) Dir() string { return w.dir }

// Resolve maps an agent's path (relative to the workspace, or absolute
// under /workspace) to a clean path relative to the workspace root ("."
// for the root), following symlinks inside the workspace. A path that
// leaves the workspace at any step, by "..", by an absolute path or by a
// symlink, is ErrOutsideWorkspace. Components that do not exist yet are
// taken as written.
func (w *Workspace) Resolve(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 || len(p) > maxPathLen {
		return "", fmt.Errorf("%w: NUL byte or longer than %d bytes", ErrBadPath, maxPathLen)
	}
	rest, err := sandboxRel(p)
	if err != nil {
		return "", err
	}
	var stack []string
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return "", fmt.Errorf("%w: %q climbs above /workspace", ErrOutsideWorkspace, p)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		host := filepath.Join(append([]string{w.dir}, stack...)...)
		fi, err := os.Lstat(host)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			// Missing components are taken as written; the open that
			// follows fails or creates them beneath the workspace.
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("%w: more than %d symlinks in %q", ErrBadPath, maxSymlinks, p)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", fmt.Errorf("runner: read symlink %s: %w", path.Join(stack...), err)
		}
		link := path.Join(stack...)
		stack = stack[:len(stack)-1]
		if path.IsAbs(target) {
			// Absolute links resolve against the sandbox's root, where
			// only /workspace is the workspace.
			rel, err := sandboxRel(target)
			if err != nil {
				return "", fmt.Errorf("%w: symlink %s points to %s", ErrOutsideWorkspace, link, target)
			}
			stack = nil
			rest = append(rel, rest...)
			continue
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	if len(stack) == 0 {
		return ".", nil
	}
	return path.Join(stack...), nil
}

// sandboxRel splits p into components relative to /workspace.
func sandboxRel(p string) ([]string, error) {
	if !path.IsAbs(p) {
		return strings.Split(p, "/"), nil
	}
	if p == SandboxWorkspace {
		return nil, nil
	}
	if r, ok := strings.CutPrefix(p, SandboxWorkspace+"/"); ok {
		return strings.Split(r, "/"), nil
	}
	return nil, fmt.Errorf("%w: %q is not under %s", ErrOutsideWorkspace, p, SandboxWorkspace)
}

// SandboxPath returns where a resolved path is inside the sandbox.
func SandboxPath(rel string) string {
	if rel == "." || rel == "" {
		return SandboxWorkspace
	}
	return SandboxWorkspace + "/" + rel
}

// openDir opens the directory rel (resolved) beneath the workspace without
// following symlinks; with mkdirs, missing directories are created and
// given to the workspace owner.
func (w *Workspace) openDir(rel string, mkdirs bool) (int, error) {
	fd, err := unix.Open(w.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("runner: open workspace: %w", err)
	}
	if rel == "." || rel == "" {
		return fd, nil
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && mkdirs {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err == nil {
					w.chown(next)
				}
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, openErr(rel, err)
		}
		fd = next
	}
	return fd, nil
}

// chown gives a file the runner created to the workspace owner, so the
// sandbox (which runs as that owner) can change it.
func (w *Workspace) chown(fd int) {
	if os.Geteuid() == 0 && w.uid >= 0 {
		_ = unix.Fchown(fd, w.uid, w.gid)
	}
}

func openErr(rel string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: %s: %v", ErrPathChanged, rel, err)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
	}
	return fmt.Errorf("%s: %w", rel, err)
}

func splitRel(rel string) (dir, name string) {
	dir, name = path.Split(rel)
	if dir == "" {
		dir = "."
	}
	return strings.TrimSuffix(dir, "/"), name
}

// ReadFile reads up to limit bytes of the regular file rel; it reports the
// file's full size.
func (w *Workspace) ReadFile(rel string, limit int64) (data []byte, size int64, err error) {
	if rel == "." {
		return nil, 0, fmt.Errorf("runner: %s is a directory", SandboxWorkspace)
	}
	dir, name := splitRel(rel)
	dfd, err := w.openDir(dir, false)
	if err != nil {
		return nil, 0, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, openErr(rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("runner: %s is not a regular file", rel)
	}
	data, err = io.ReadAll(io.LimitReader(f, limit))
	return data, fi.Size(), err
}

// WriteFile replaces (or creates) the regular file rel with data. New
// files and directories belong to the workspace owner. An existing file
// with more than one hard link is ErrHardLink; the link count is read from
// the descriptor that is written, and the file is truncated only after
// that check, so a refused file keeps its content.
func (w *Workspace) WriteFile(rel string, data []byte, mkdirs bool) error {
	if rel == "." {
		return fmt.Errorf("runner: %s is a directory", SandboxWorkspace)
	}
	dir, name := splitRel(rel)
	dfd, err := w.openDir(dir, mkdirs)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	created := true
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if errors.Is(err, unix.EEXIST) {
		created = false
		// No O_TRUNC: the file is checked before anything is changed.
		fd, err = unix.Openat(dfd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	}
	if err != nil {
		return openErr(rel, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("runner: %s is not a regular file", rel)
	}
	switch {
	case created:
		w.chown(fd)
	case st.Nlink > 1:
		return fmt.Errorf("%w: %s has %d links", ErrHardLink, rel, st.Nlink)
	default:
		if err := unix.Ftruncate(fd, 0); err != nil {
			return fmt.Errorf("runner: truncate %s: %w", rel, err)
		}
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Close()
}

// Entry is one listed file.
type Entry struct {
	Path string `json:"path"` // relative to the workspace
	Type string `json:"type"` // file, dir, symlink, other
	Size int64  `json:"size"`
}

// List lists the directory rel, descending into subdirectories (never
// through symlinks) when recursive, up to limit entries. It reports
// whether the listing was cut at the limit.
func (w *Workspace) List(rel string, recursive bool, limit int) ([]Entry, bool, error) {
	fd, err := w.openDir(rel, false)
	if err != nil {
		return nil, false, err
	}
	var out []Entry
	truncated := false
	var walk func(fd int, prefix string, depth int) error
	walk = func(fd int, prefix string, depth int) error {
		dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(dfd), prefix)
		defer f.Close()
		ents, err := f.ReadDir(-1)
		if err != nil {
			return err
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		for _, e := range ents {
			if len(out) >= limit {
				truncated = true
				return nil
			}
			p := path.Join(prefix, e.Name())
			ent := Entry{Path: p, Type: "other"}
			switch {
			case e.Type()&fs.ModeSymlink != 0:
				ent.Type = "symlink"
			case e.IsDir():
				ent.Type = "dir"
			case e.Type().IsRegular():
				ent.Type = "file"
				var st unix.Stat_t
				if unix.Fstatat(dfd, e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
					ent.Size = st.Size
				}
			}
			out = append(out, ent)
			if recursive && ent.Type == "dir" && depth < 32 {
				sub, err := unix.Openat(dfd, e.Name(), unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					continue // gone or replaced by a symlink since ReadDir
				}
				err = walk(sub, p, depth+1)
				unix.Close(sub)
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	prefix := rel
	if prefix == "." {
		prefix = ""
	}
	err = walk(fd, prefix, 0)
	unix.Close(fd)
	if err != nil {
		return nil, false, err
	}
	return out, truncated, nil
}
