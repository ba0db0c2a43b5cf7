package fsguard

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Revert puts the baseline back for each change, parents before children:
// a created path is removed (a directory with everything in it), a
// deleted one recreated, a modified file rewritten with its baseline
// content and mode, a changed type restored, a symlink planted on the way
// to a protected path removed, and names a hard link added to a protected
// file removed. It returns the changes it could not undo, and an error
// that says why for each (wrapping ErrUnrevertable where the baseline
// content was not kept). Run Check again to confirm.
func (g *Guard) Revert(cs []Change) ([]Change, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.base == nil {
		return cs, ErrNoBaseline
	}
	cs = slices.Clone(cs)
	slices.SortStableFunc(cs, func(a, b Change) int { return cmp.Compare(a.Path, b.Path) })
	root, err := unix.Open(g.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return cs, fmt.Errorf("fsguard: open workspace: %w", err)
	}
	defer unix.Close(root)
	var failed []Change
	var errs []error
	for _, c := range cs {
		if err := g.revert(root, c); err != nil {
			failed = append(failed, c)
			errs = append(errs, fmt.Errorf("fsguard: revert %s (%s): %w", c.Path, c.Kind, err))
			continue
		}
		delete(g.seen, c.Path)
	}
	return failed, errors.Join(errs...)
}

func (g *Guard) revert(root int, c Change) error {
	if !cleanRel(c.Path) {
		return ErrBadPath
	}
	for _, l := range c.Links {
		if !cleanRel(l) {
			return fmt.Errorf("%w: link %q", ErrBadPath, l)
		}
	}
	b, inBase := g.base[c.Path]
	if _, inSeen := g.seen[c.Path]; !inBase && !inSeen {
		return ErrBadPath
	}
	switch {
	case b == nil:
		return g.remove(root, c.Path)
	case b.heldDir():
		return g.unplant(root, c.Path)
	case b.mode.IsDir():
		return g.restoreDir(root, c.Path, b)
	case b.mode.Type() == 0:
		return g.restoreFile(root, c, b)
	case b.mode&fs.ModeSymlink != 0:
		return g.restoreSymlink(root, c.Path, b)
	}
	return fmt.Errorf("%w: a %v cannot be recreated", ErrUnrevertable, b.mode.Type())
}

// openParent opens the directory that holds rel, one component at a time
// beneath root without following symlinks, and returns it with rel's last
// component. With repair, a missing directory is created and anything
// else in a directory's place (a symlink planted in the path) is removed
// first; without, a path that is not there through directories is
// unix.ENOENT.
func (g *Guard) openParent(root int, rel string, repair bool) (int, string, error) {
	dir, name := splitRel(rel)
	fd, err := unix.Openat(root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	if dir == "" {
		return fd, name, nil
	}
	at := ""
	for c := range strings.SplitSeq(dir, "/") {
		at = join(at, c)
		next, err := g.openDir(fd, c, at, repair)
		unix.Close(fd)
		if err != nil {
			return -1, "", err
		}
		fd = next
	}
	return fd, name, nil
}

func (g *Guard) openDir(fd int, name, rel string, repair bool) (int, error) {
	for range 3 {
		sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			return sub, nil
		case !repair && (errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)):
			return -1, unix.ENOENT
		case !repair:
			return -1, err
		case errors.Is(err, unix.ENOENT):
			if err := g.mkdir(fd, name, rel); err != nil {
				return -1, err
			}
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
			if err := unix.Unlinkat(fd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return -1, fmt.Errorf("remove %s planted in the path: %w", rel, err)
			}
		default:
			return -1, err
		}
	}
	return -1, fmt.Errorf("%w: %s", ErrUnstable, rel)
}

// mkdir makes the directory rel with its baseline mode and owner, or the
// workspace root's owner and 0755 when the baseline does not know it.
func (g *Guard) mkdir(fd int, name, rel string) error {
	perm, uid, gid := uint32(0o755), g.uid, g.gid
	if b := g.base[rel]; b != nil && b.mode.IsDir() && !b.held {
		perm, uid, gid = unixPerm(b.mode), int(b.uid), int(b.gid)
	}
	if err := unix.Mkdirat(fd, name, 0o700); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		return fmt.Errorf("create directory %s: %w", rel, err)
	}
	sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil // replaced at once; the caller looks again
	}
	defer unix.Close(sub)
	if g.euid0 && uid >= 0 {
		_ = unix.Fchown(sub, uid, gid)
	}
	return unix.Fchmod(sub, perm)
}

// remove removes rel, a directory with everything beneath it.
func (g *Guard) remove(root int, rel string) error {
	dfd, name, err := g.openParent(root, rel, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return removeAll(dfd, name, 0)
}

// unplant removes what stands where the baseline has a directory that
// holds protected paths, unless it is a directory.
func (g *Guard) unplant(root int, rel string) error {
	dfd, name, err := g.openParent(root, rel, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	return removeAll(dfd, name, 0)
}

func (g *Guard) restoreDir(root int, rel string, b *entry) error {
	dfd, name, err := g.openParent(root, rel, true)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	for range 3 {
		sub, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			var st unix.Stat_t
			err := unix.Fstat(sub, &st)
			if err == nil && modeOf(st.Mode) != b.mode {
				err = unix.Fchmod(sub, unixPerm(b.mode))
			}
			unix.Close(sub)
			return err
		case errors.Is(err, unix.ENOENT):
			if err := g.mkdir(dfd, name, rel); err != nil {
				return err
			}
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
			if err := removeAll(dfd, name, 0); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return fmt.Errorf("%w: %s", ErrUnstable, rel)
}

func (g *Guard) restoreSymlink(root int, rel string, b *entry) error {
	dfd, name, err := g.openParent(root, rel, true)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	for range 3 {
		var st unix.Stat_t
		err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK:
			if t, err := readlinkat(dfd, name); err == nil && t == b.target {
				return nil
			}
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
			if err := removeAll(dfd, name, 0); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, unix.ENOENT):
			return err
		}
		tmp := tmpName()
		if err := unix.Symlinkat(b.target, dfd, tmp); err != nil {
			return err
		}
		if g.euid0 {
			_ = unix.Fchownat(dfd, tmp, int(b.uid), int(b.gid), unix.AT_SYMLINK_NOFOLLOW)
		}
		err = unix.Renameat(dfd, tmp, dfd, name)
		if err == nil {
			return nil
		}
		_ = unix.Unlinkat(dfd, tmp, 0)
		if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	return fmt.Errorf("%w: %s", ErrUnstable, rel)
}

// restoreFile puts back a regular file. While the path still holds the
// baseline's inode (the one the sandbox may have mounted read-only), the
// file is rewritten in place; otherwise a fresh copy is renamed over it.
func (g *Guard) restoreFile(root int, c Change, b *entry) error {
	dfd, name, err := g.openParent(root, c.Path, true)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if cur := g.seen[c.Path]; cur != nil && cur.mode.IsRegular() {
		for _, l := range c.Links {
			if err := g.unlinkAlias(root, l, cur); err != nil {
				return err
			}
		}
	}
	for range 3 {
		var st unix.Stat_t
		err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG &&
			uint64(st.Dev) == b.dev && st.Ino == b.ino && uint64(st.Nlink) <= max(b.nlink, 1):
			err := g.fileInPlace(dfd, name, c, b)
			if !errors.Is(err, errMoved) {
				return err
			}
			continue
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
			if err := removeAll(dfd, name, 0); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, unix.ENOENT):
			return err
		}
		err = g.fileFresh(dfd, name, c, b)
		if !errors.Is(err, errMoved) {
			return err
		}
	}
	return fmt.Errorf("%w: %s", ErrUnstable, c.Path)
}

// errMoved: the path changed under a restore; look again.
var errMoved = errors.New("fsguard: path changed during restore")

// unlinkAlias removes the name l of the protected file cur, unless l is a
// path of the baseline.
func (g *Guard) unlinkAlias(root int, l string, cur *entry) error {
	if _, ok := g.base[l]; ok {
		return nil
	}
	dfd, name, err := g.openParent(root, l, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || uint64(st.Dev) != cur.dev || st.Ino != cur.ino {
		return nil
	}
	if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove hard link %s: %w", l, err)
	}
	return nil
}

// fileInPlace rewrites the file name, still the baseline's inode, with
// its baseline content and mode.
func (g *Guard) fileInPlace(dfd int, name string, c Change, b *entry) error {
	fd, err := unix.Openat(dfd, name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EACCES) {
		fd, err = reopenWritable(dfd, name, b)
	}
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENXIO):
		return errMoved
	case err != nil:
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Dev) != b.dev || st.Ino != b.ino {
		return errMoved
	}
	sum, err := hashFd(fd)
	if err != nil {
		return err
	}
	// A baseline the guard could not read is compared by inode and ctime:
	// only a change Check called a modification needs its content back.
	if b.unread && c.Kind == KindModified || !b.unread && sum != b.sum {
		if !b.kept {
			return fmt.Errorf("%w: content over the limit (kept by hash only)", ErrUnrevertable)
		}
		if err := unix.Ftruncate(fd, 0); err != nil {
			return err
		}
		if err := pwriteAll(fd, b.data); err != nil {
			return err
		}
	}
	if modeOf(st.Mode) != b.mode {
		if err := unix.Fchmod(fd, unixPerm(b.mode)); err != nil {
			return err
		}
	}
	return g.rebase(fd, c.Path, b)
}

// reopenWritable opens a file its mode keeps the runner from writing: it
// is chmod'ed, by a descriptor that cannot follow a symlink, to a mode
// that lets its owner read and write it; fileInPlace sets the baseline
// mode after.
func reopenWritable(dfd int, name string, b *entry) (int, error) {
	pfd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Dev) != b.dev || st.Ino != b.ino {
		return -1, unix.ENOENT
	}
	// /proc/self/fd/N names exactly the inode pfd holds, not a path.
	proc := "/proc/self/fd/" + strconv.Itoa(pfd)
	if err := unix.Fchmodat(unix.AT_FDCWD, proc, (st.Mode&0o7777)|0o600, 0); err != nil {
		return -1, err
	}
	return unix.Open(proc, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
}

// fileFresh writes the baseline file beside name and renames it over
// name. Without kept content, the current file is copied when its content
// is still the baseline's (only its links or mode changed).
func (g *Guard) fileFresh(dfd int, name string, c Change, b *entry) error {
	src := -1
	if !b.kept {
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%w: content over the limit (kept by hash only) and the file is gone", ErrUnrevertable)
		}
		defer unix.Close(fd)
		src = fd
	}
	tmp := tmpName()
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = func() error {
		if src < 0 {
			return pwriteAll(fd, b.data)
		}
		sum, err := copyFd(fd, src)
		if err != nil {
			return err
		}
		if b.unread || sum != b.sum {
			return fmt.Errorf("%w: content over the limit (kept by hash only)", ErrUnrevertable)
		}
		return nil
	}()
	if err == nil && g.euid0 {
		err = unix.Fchown(fd, int(b.uid), int(b.gid))
	}
	if err == nil {
		err = unix.Fchmod(fd, unixPerm(b.mode))
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name)
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			err = errMoved // a directory appeared there
		}
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return err
	}
	return g.rebase(fd, c.Path, b)
}

// rebase records the restored file's inode in the baseline, so that the
// next restore of it is in place.
func (g *Guard) rebase(fd int, rel string, b *entry) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	nb := *b
	nb.dev, nb.ino, nb.nlink, nb.ctime, nb.size = uint64(st.Dev), st.Ino, uint64(st.Nlink), st.Ctim.Nano(), st.Size
	g.base[rel] = &nb
	return nil
}

func tmpName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return ".fsguard-" + hex.EncodeToString(b[:])
}

func hashFd(fd int) ([32]byte, error) {
	return copyFd(-1, fd)
}

// copyFd copies src from its start to dst (none when dst < 0) and
// returns the sha256 of what it read.
func copyFd(dst, src int) ([32]byte, error) {
	var sum [32]byte
	h := sha256.New()
	buf := make([]byte, 32<<10)
	for off := int64(0); ; {
		n, err := unix.Pread(src, buf, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return sum, err
		}
		if n == 0 {
			break
		}
		h.Write(buf[:n])
		if dst >= 0 {
			if err := pwriteAt(dst, buf[:n], off); err != nil {
				return sum, err
			}
		}
		off += int64(n)
	}
	h.Sum(sum[:0])
	return sum, nil
}

func pwriteAll(fd int, b []byte) error { return pwriteAt(fd, b, 0) }

func pwriteAt(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// removeAll removes name from the directory dfd, and when it is a
// directory everything beneath it first, never following a symlink.
func removeAll(dfd int, name string, depth int) error {
	if depth >= maxDepth {
		return fmt.Errorf("%w: more than %d directories deep", ErrLimit, maxDepth)
	}
	for range 3 {
		err := unix.Unlinkat(dfd, name, 0)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
			return err
		}
		sub, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
			continue // no longer a directory: unlink it
		case err != nil:
			return err
		}
		err = func() error {
			defer unix.Close(sub)
			names, err := listNames(sub)
			if err != nil {
				return err
			}
			for _, n := range names {
				if err := removeAll(sub, n, depth+1); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
		err = unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTDIR) {
			return err
		}
	}
	return fmt.Errorf("%w: %s kept changing while it was removed", ErrUnstable, name)
}

func listNames(fd int) ([]string, error) {
	var names []string
	buf := make([]byte, 16<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
