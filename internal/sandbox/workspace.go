package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// PrepareWorkspace makes dir usable as a workspace by the Podman user uid:gid
// (keep-id maps that user to itself inside the container): it chowns dir
// and everything under it, without following symlinks, adds search
// permission for others to every directory in it (runc sets up the
// read-only mounts of protected paths as a user that is not the owner; see
// Start), and checks that every directory above dir lets others search it. Use it for workspaces
// the runner creates as root (tests, fresh checkouts); in production the
// runner runs as the Podman user and its workspaces are already its own.
func PrepareWorkspace(dir string, uid, gid int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWorkspace, err)
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWorkspace, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrWorkspace, abs)
	}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		if d.IsDir() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			return os.Chmod(p, fi.Mode().Perm()|0o001)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: chown %s to %d:%d: %w", ErrWorkspace, abs, uid, gid, err)
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if err := searchable(d, uid, gid); err != nil {
			return fmt.Errorf("%w: %w", ErrWorkspace, err)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// searchable reports whether uid:gid may traverse directory d (by its mode
// bits only; ACLs are not consulted).
func searchable(d string, uid, gid int) error {
	fi, err := os.Stat(d)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	m := fi.Mode().Perm()
	switch {
	case int(st.Uid) == uid && m&0o100 != 0,
		int(st.Gid) == gid && m&0o010 != 0,
		m&0o001 != 0:
		return nil
	}
	return fmt.Errorf("%s (mode %v, owner %d:%d) cannot be searched by %d:%d", d, m, st.Uid, st.Gid, uid, gid)
}

// checkMountable reports a directory on the way to a protected path that
// others cannot search. With keep-id, runc mounts the protected paths as a
// user the workspace owner's mode bits do not cover, and fails with a bare
// "permission denied" otherwise.
func checkMountable(ws string, ps protectedSet) error {
	dirs := []string{ws}
	for _, d := range ps.parents {
		dirs = append(dirs, filepath.Join(ws, filepath.FromSlash(d)))
	}
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %v) must be searchable by others (o+x) for its protected paths to be mounted read-only; PrepareWorkspace does that", d, fi.Mode().Perm())
		}
	}
	return nil
}
