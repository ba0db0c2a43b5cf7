package fsguard

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// scan is one walk of the workspace.
type scan struct {
	g       *Guard
	base    map[string]*entry // nil for Snapshot: every file's content is a candidate to keep
	out     map[string]*entry
	kept    int64 // content bytes kept in out
	entries int
	start   int64                // ns, when the walk began
	cache   map[string]*dirCache // the listings this walk may hand to the next
}

func (g *Guard) newScan(base map[string]*entry) *scan {
	return &scan{g: g, base: base, out: map[string]*entry{}, cache: map[string]*dirCache{}}
}

func (g *Guard) match(rel string) bool {
	return builtinMatch(rel) || g.m != nil && g.m.Match(rel)
}

func (g *Guard) holds(rel string) bool {
	return builtinHolds(rel) || g.h != nil && g.h.Holds(rel)
}

// run walks the workspace, then, when a protected file has more than one
// link (rare), walks it again to find the file's other names.
func (s *scan) run() error {
	fd, err := unix.Open(s.g.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsguard: open workspace: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fsguard: stat workspace: %w", err)
	}
	s.start = time.Now().UnixNano()
	if err := s.dir(fd, "", &st, false, false, 0); err != nil {
		s.g.cache = nil
		return err
	}
	s.g.cache = s.cache
	want := map[[2]uint64][]*entry{} // two protected paths may be one file
	for p, e := range s.out {
		if !e.mode.IsRegular() || e.nlink < 2 {
			continue
		}
		// A file created or retyped is removed or replaced whole by a
		// revert: its other names do not matter. Any other is searched
		// even when its count did not grow, since a name the baseline
		// knew may have been swapped for a new one.
		if b := s.base[p]; s.base != nil && (b == nil || !b.mode.IsRegular()) {
			continue
		}
		k := [2]uint64{e.dev, e.ino}
		want[k] = append(want[k], e)
	}
	if len(want) == 0 {
		return nil
	}
	s.entries = 0
	if _, err := unix.Seek(fd, 0, 0); err != nil { // the walk listed fd to its end
		return fmt.Errorf("fsguard: rewind workspace: %w", err)
	}
	if err := s.findLinks(fd, "", want, 0); err != nil {
		return err
	}
	for _, es := range want {
		for _, e := range es {
			slices.Sort(e.links)
		}
	}
	return nil
}

// buf returns the getdents buffer of a directory depth.
func (s *scan) buf(depth int) []byte {
	for len(s.g.bufs) <= depth {
		s.g.bufs = append(s.g.bufs, nil)
	}
	if s.g.bufs[depth] == nil {
		s.g.bufs[depth] = make([]byte, 16<<10)
	}
	return s.g.bufs[depth]
}

// readDir calls fn for every entry of the directory fd but "." and "..",
// with the entry's d_type. It lists with getdents, so nothing is stat'ed.
func (s *scan) readDir(fd int, rel string, depth int, fn func(name string, typ uint8) error) error {
	buf := s.buf(depth)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("fsguard: list %s: %w", show(rel), err)
		}
		if n <= 0 {
			return nil
		}
		for b := buf[:n]; len(b) > 0; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			if len(b) < 19 {
				return fmt.Errorf("fsguard: list %s: short directory entry", show(rel))
			}
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return fmt.Errorf("fsguard: list %s: bad directory entry length %d", show(rel), reclen)
			}
			typ, nb := b[18], b[19:reclen]
			b = b[reclen:]
			if i := bytes.IndexByte(nb, 0); i >= 0 {
				nb = nb[:i]
			}
			if len(nb) == 0 || nb[0] == '.' && (len(nb) == 1 || len(nb) == 2 && nb[1] == '.') {
				continue
			}
			if err := fn(string(nb), typ); err != nil {
				return err
			}
		}
	}
}

func show(rel string) string {
	if rel == "" {
		return "the workspace root"
	}
	return rel
}

// dirCache is what a walk needs of one directory's listing: its entry
// count and the entries it must visit again (subdirectories to descend,
// protected and holding entries to stat). It stands for the listing while
// the directory's device, inode and ctime are the same: adding, removing
// or renaming an entry updates the ctime, and nothing but the kernel sets
// it.
type dirCache struct {
	dev, ino uint64
	ctime    int64
	n        int
	kids     []kid
}

type kid struct {
	name string
	typ  uint8
}

func (c *dirCache) valid(st *unix.Stat_t) bool {
	return c != nil && c.dev == uint64(st.Dev) && c.ino == st.Ino && c.ctime == st.Ctim.Nano()
}

// dir walks the directory fd at rel, whose stat is st; prot says rel is
// protected, skip that it lies in a directory the walk enters only for
// the caller's Holder.
func (s *scan) dir(fd int, rel string, st *unix.Stat_t, prot, skip bool, depth int) error {
	if depth >= maxDepth {
		return fmt.Errorf("%w: %s is more than %d directories deep", ErrLimit, rel, maxDepth)
	}
	if c := s.g.cache[rel]; c.valid(st) {
		if err := s.count(c.n); err != nil {
			return err
		}
		s.cache[rel] = c
		for _, k := range c.kids {
			if _, _, err := s.child(fd, rel, k.name, k.typ, prot, skip, depth); err != nil {
				return err
			}
		}
		return nil
	}
	c := &dirCache{dev: uint64(st.Dev), ino: st.Ino, ctime: st.Ctim.Nano()}
	err := s.readDir(fd, rel, depth, func(name string, typ uint8) error {
		if err := s.count(1); err != nil {
			return err
		}
		c.n++
		typ, again, err := s.child(fd, rel, name, typ, prot, skip, depth)
		if again {
			c.kids = append(c.kids, kid{name, typ})
		}
		return err
	})
	if err != nil {
		return err
	}
	// A listing is reused only when the directory's last change is older
	// than the walk by more than the file system's timestamp granularity:
	// a change made just after the listing could otherwise carry the same
	// ctime.
	if c.ctime < s.start-int64(s.g.hot) {
		s.cache[rel] = c
	}
	return nil
}

func (s *scan) count(n int) error {
	if s.entries += n; s.entries > s.g.maxEntries {
		return fmt.Errorf("%w: more than %d entries", ErrLimit, s.g.maxEntries)
	}
	return nil
}

// child visits the entry name of the directory fd at parent. It returns
// the entry's type and whether a later walk must visit it again.
func (s *scan) child(fd int, parent, name string, typ uint8, parentProt, skip bool, depth int) (uint8, bool, error) {
	rel := join(parent, name)
	prot := parentProt || s.g.match(rel)
	var st unix.Stat_t
	haveStat := false
	if typ == unix.DT_UNKNOWN {
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return typ, false, nil // gone since it was listed
		}
		typ, haveStat = dtype(st.Mode), true
	}
	isDir := typ == unix.DT_DIR
	held := s.g.holds(rel)
	switch {
	case prot, !isDir && held:
		e, err := s.stat(fd, name, rel)
		if err != nil || e == nil {
			return typ, false, err // nil, nil: gone since it was listed
		}
		e.held = !prot
		s.out[rel] = e
		if !e.mode.IsDir() {
			return typ, true, nil
		}
		isDir = true
	case isDir && held:
		s.out[rel] = &entry{mode: fs.ModeDir, held: true}
	}
	if !isDir {
		return typ, false, nil
	}
	if skip || skipped(rel, name) {
		if !prot && (s.g.h == nil || !s.g.h.Holds(rel)) {
			return typ, prot || held, nil
		}
		skip = true
	}
	// A directory whose listing is known and holds nothing to visit
	// costs one fstatat: most of a workspace's directories are such.
	if c := s.g.cache[rel]; c != nil && len(c.kids) == 0 {
		if !haveStat && unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			return typ, true, s.replaced(fd, name, rel, prot)
		}
		if c.valid(&st) {
			s.cache[rel] = c
			return typ, true, s.count(c.n)
		}
	}
	sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return typ, true, s.replaced(fd, name, rel, prot)
	case err != nil:
		return typ, true, fmt.Errorf("fsguard: open %s: %w", rel, err)
	}
	defer unix.Close(sub)
	if err := unix.Fstat(sub, &st); err != nil {
		return typ, true, fmt.Errorf("fsguard: stat %s: %w", rel, err)
	}
	return typ, true, s.dir(sub, rel, &st, prot, skip, depth+1)
}

// replaced records again a directory that was gone or replaced when the
// walk went to enter it; nothing beneath it exists any more.
func (s *scan) replaced(fd int, name, rel string, prot bool) error {
	if _, ok := s.out[rel]; !ok {
		return nil
	}
	e, err := s.stat(fd, name, rel)
	switch {
	case err != nil:
		return err
	case e == nil:
		delete(s.out, rel)
	default:
		e.held = !prot
		s.out[rel] = e
	}
	return nil
}

// dtOther is the d_type given to a fifo, socket or device found by stat.
const dtOther = 255

func dtype(mode uint32) uint8 {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return unix.DT_DIR
	case unix.S_IFREG:
		return unix.DT_REG
	case unix.S_IFLNK:
		return unix.DT_LNK
	}
	return dtOther
}

// modeOf converts a stat mode to type and permission bits.
func modeOf(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// unixPerm converts permission bits back for chmod.
func unixPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		p |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		p |= unix.S_ISVTX
	}
	return p
}

func newEntry(st *unix.Stat_t) *entry {
	return &entry{
		mode: modeOf(st.Mode), size: st.Size,
		dev: uint64(st.Dev), ino: st.Ino, nlink: uint64(st.Nlink),
		uid: st.Uid, gid: st.Gid, ctime: st.Ctim.Nano(),
	}
}

// stat records the entry name of the directory fd: type, mode, links,
// a file's content hash (and content, within limits), a symlink's
// target. nil, nil: it does not exist.
func (s *scan) stat(fd int, name, rel string) (*entry, error) {
	for range 3 {
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("fsguard: stat %s: %w", rel, err)
		}
		e := newEntry(&st)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := readlinkat(fd, name)
			if err != nil {
				continue // no longer a symlink
			}
			e.target = target
		case unix.S_IFREG:
			ok, err := s.read(fd, name, rel, e)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		return e, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnstable, rel)
}

func readlinkat(fd int, name string) (string, error) {
	for size := 256; size <= 1<<16; size *= 4 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(fd, name, b)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(b[:n]), nil
		}
	}
	return "", unix.ENAMETOOLONG
}

// read hashes the regular file name and keeps its content when the scan
// may need it: for a Snapshot within the limits, for a Check when it
// differs from the baseline. false: the path is no longer the regular
// file e describes.
func (s *scan) read(dirfd int, name, rel string, e *entry) (bool, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		e.unread = true // compared by inode and ctime instead
		return true, nil
	case err != nil:
		return false, nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, nil
	}
	*e = *newEntry(&st)
	limit := s.g.fileLimit
	if s.base == nil {
		limit = min(limit, s.g.totalLimit-s.kept)
	}
	keep := st.Size <= limit
	var data []byte
	if keep {
		data = s.g.rbuf[:0]
	}
	if s.g.chunk == nil {
		s.g.chunk = make([]byte, 32<<10)
	}
	h := sha256.New()
	for {
		n, err := unix.Read(fd, s.g.chunk)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("fsguard: read %s: %w", rel, err)
		}
		if n == 0 {
			break
		}
		h.Write(s.g.chunk[:n])
		if keep && int64(len(data)+n) > limit {
			keep, data = false, nil // grew past the limit while it was read
		}
		if keep {
			data = append(data, s.g.chunk[:n]...)
		}
	}
	h.Sum(e.sum[:0])
	if keep {
		s.g.rbuf = data[:0]
		if b := s.base[rel]; s.base == nil || b == nil || b.sum != e.sum {
			e.data, e.kept = append([]byte{}, data...), true
			s.kept += int64(len(e.data))
		}
	}
	return true, nil
}

// findLinks walks the workspace again, stat'ing every regular file, to
// find the other names of the files in want.
func (s *scan) findLinks(fd int, rel string, want map[[2]uint64][]*entry, depth int) error {
	if depth >= maxDepth {
		return fmt.Errorf("%w: %s is more than %d directories deep", ErrLimit, rel, maxDepth)
	}
	return s.readDir(fd, rel, depth, func(name string, typ uint8) error {
		if err := s.count(1); err != nil {
			return err
		}
		child := join(rel, name)
		switch typ {
		case unix.DT_DIR:
			if skipped(child, name) && (s.g.h == nil || !s.g.h.Holds(child)) && !s.g.match(child) {
				return nil
			}
			sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil // gone or replaced since it was listed
			}
			defer unix.Close(sub)
			return s.findLinks(sub, child, want, depth+1)
		case unix.DT_REG, unix.DT_UNKNOWN:
			var st unix.Stat_t
			if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Nlink < 2 {
				return nil
			}
			for _, e := range want[[2]uint64{uint64(st.Dev), st.Ino}] {
				if s.out[child] != e {
					e.links = append(e.links, child)
				}
			}
		}
		return nil
	})
}
