package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// GrantWorkspace lets the sandbox user uid read and write a workspace it
// does not own, without taking it from its owner: a workspace owned by
// root (a root runner's checkout) or by the person who runs the agent
// otherwise fails every write inside the sandbox with "Permission
// denied", and chowning it to the sandbox user (PrepareWorkspace) would
// lock its owner out. Every directory and regular file under dir that uid
// does not own gets a POSIX ACL entry for uid (rwx on directories, rw and
// the owner's x on files), and every directory a default ACL, so what
// either side creates later stays open to both: the sandbox user, and the
// workspace's owner for what the sandbox creates. Directories above dir
// that uid cannot search get a search-only entry. Symlinks are not
// followed. It needs a file system with POSIX ACLs (ext4, xfs, btrfs,
// tmpfs); it returns an error naming the path where one is missing.
func GrantWorkspace(dir string, uid int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWorkspace, err)
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWorkspace, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrWorkspace, abs)
	}
	owner := int(st.Uid)
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if searchable(d, uid, -1) != nil {
			if err := addACL(d, uid, 1, false, -1); err != nil {
				return fmt.Errorf("%w: let %d search %s: %w", ErrWorkspace, uid, d, err)
			}
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) == uid && !d.IsDir() {
			return nil
		}
		perm := uint16(6)
		if d.IsDir() || fi.Mode().Perm()&0o100 != 0 {
			perm = 7
		}
		if int(st.Uid) != uid {
			if err := addACL(p, uid, perm, false, -1); err != nil {
				return err
			}
		}
		if d.IsDir() {
			// New entries inherit both: the sandbox user and the
			// workspace's owner keep access to what the other creates.
			return addACL(p, uid, 7, true, owner)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: grant %d access to %s: %w", ErrWorkspace, uid, abs, err)
	}
	return nil
}

// POSIX ACL extended attributes (linux/posix_acl_xattr.h).
const (
	aclAccess  = "system.posix_acl_access"
	aclDefault = "system.posix_acl_default"
	aclVersion = 2

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
	aclNoID     = 0xffffffff
)

type aclEntry struct {
	tag  uint16
	perm uint16
	id   uint32
}

// addACL adds (or widens) the named-user entries for uid with perm, and
// for also when also >= 0, to path's access or default ACL, keeping every
// other entry; the mask covers the group class.
func addACL(path string, uid int, perm uint16, def bool, also int) error {
	name := aclAccess
	if def {
		name = aclDefault
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	mode := uint16(fi.Mode().Perm())
	entries, err := getACL(path, name)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		// The ACL equivalent of the mode bits.
		entries = []aclEntry{{aclUserObj, mode >> 6 & 7, aclNoID}, {aclGroupObj, mode >> 3 & 7, aclNoID}, {aclOther, mode & 7, aclNoID}}
		if def {
			entries[0].perm = 7 // the creator of a new entry keeps full access
		}
	}
	put := func(id int, p uint16) {
		for i := range entries {
			if entries[i].tag == aclUser && entries[i].id == uint32(id) {
				entries[i].perm |= p
				return
			}
		}
		entries = append(entries, aclEntry{aclUser, p, uint32(id)})
	}
	put(uid, perm)
	if also >= 0 && also != uid {
		put(also, 7)
	}
	var mask uint16
	hasMask := false
	for _, e := range entries {
		switch e.tag {
		case aclUser, aclGroupObj, aclGroup:
			mask |= e.perm
		case aclMask:
			hasMask = true
		}
	}
	if !hasMask {
		entries = append(entries, aclEntry{aclMask, 0, aclNoID})
	}
	for i := range entries {
		if entries[i].tag == aclMask {
			entries[i].perm = mask
		}
	}
	slices.SortFunc(entries, func(a, b aclEntry) int {
		if a.tag != b.tag {
			return int(a.tag) - int(b.tag)
		}
		return int(int64(a.id) - int64(b.id))
	})
	buf := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range entries {
		buf = binary.LittleEndian.AppendUint16(buf, e.tag)
		buf = binary.LittleEndian.AppendUint16(buf, e.perm)
		buf = binary.LittleEndian.AppendUint32(buf, e.id)
	}
	if err := unix.Lsetxattr(path, name, buf, 0); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return fmt.Errorf("%s: the file system has no POSIX ACLs: %w", path, err)
		}
		return fmt.Errorf("%s: set %s: %w", path, name, err)
	}
	return nil
}

func getACL(path, name string) ([]aclEntry, error) {
	buf := make([]byte, 4+8*32)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		switch {
		case errors.Is(err, unix.ENODATA):
			return nil, nil
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, len(buf)*4)
			continue
		case err != nil:
			return nil, fmt.Errorf("%s: read %s: %w", path, name, err)
		}
		buf = buf[:n]
		if len(buf) < 4 || binary.LittleEndian.Uint32(buf) != aclVersion || (len(buf)-4)%8 != 0 {
			return nil, fmt.Errorf("%s: %s: unknown ACL format", path, name)
		}
		var out []aclEntry
		for b := buf[4:]; len(b) >= 8; b = b[8:] {
			out = append(out, aclEntry{binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint32(b[4:])})
		}
		return out, nil
	}
}
