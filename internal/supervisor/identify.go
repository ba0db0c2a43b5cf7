package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxIdentifySize bounds the executables the supervisor hashes: a bigger
// one is never a copy of a program it was asked to recognise.
const maxIdentifySize = 256 << 20

// identifier recognises copies of known programs by content. Only
// executables on writable file systems need it: what runs from the
// read-only image is what its path says, and a copy cannot be hard-linked
// across file systems.
type identifier struct {
	known map[string]string // sha256 → program name
	sizes map[int64]bool    // sizes of the known programs: most files are skipped on size
	cache map[fileKey]string
}

// fileKey is a file's content as far as stat can tell. ctime is in it
// because mtime is not enough: anyone who can write a file can also set
// its mtime back after rewriting it in place, but not its ctime.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

// newIdentifier hashes each named program found on path (a PATH value) or
// in git's exec path.
func newIdentifier(names []string, path string) *identifier {
	id := &identifier{known: map[string]string{}, sizes: map[int64]bool{}, cache: map[fileKey]string{}}
	dirs := append(filepath.SplitList(path), "/usr/lib/git-core")
	for _, name := range names {
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		for _, d := range dirs {
			p := filepath.Join(d, name)
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxIdentifySize {
				continue
			}
			sum, err := hashFile(p)
			if err != nil {
				continue
			}
			if _, dup := id.known[sum]; !dup {
				id.known[sum] = name
			}
			id.sizes[fi.Size()] = true
			break
		}
	}
	return id
}

// identify returns the known program whose copy the process of exe (its
// /proc/PID/exe) is executing, or "".
func (id *identifier) identify(exe string) string {
	if id == nil || len(id.known) == 0 {
		return ""
	}
	// The size first: it rules out most programs in one syscall, and this
	// runs at every exec.
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil || !id.sizes[st.Size] {
		return ""
	}
	// Asked each time, not cached by st_dev: one file system can be
	// mounted read-only in one place and writable in another (a host's
	// under /workspace and under the supervisor's own mount).
	var sfs unix.Statfs_t
	if err := unix.Statfs(exe, &sfs); err == nil && sfs.Flags&unix.ST_RDONLY != 0 {
		return ""
	}
	k := fileKey{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
	if name, ok := id.cache[k]; ok {
		return name
	}
	// /proc/PID/exe opens the very file the process runs, whatever has
	// been renamed or replaced since.
	sum, err := hashFile(exe)
	if err != nil {
		return ""
	}
	name := id.known[sum]
	id.cache[k] = name
	return name
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, maxIdentifySize+1)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
