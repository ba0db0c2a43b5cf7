package netpol

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// SocketName is the proxy socket's file name inside the session's
// socket directory.
const SocketName = "proxy.sock"

// ErrSocketDir means the session's socket directory is unsafe to use: a
// symlink, not a directory, or owned by someone else.
var ErrSocketDir = errors.New("netpol: unsafe socket directory")

// PrepareSocketDir creates dir, private to one session: mode 0700, owned
// by uid:gid, the host ids the sandbox's processes run as (for rootless
// Podman with keep-id, the Podman user's uid; the container's root maps to
// it as well). uid < 0 leaves ownership alone, for a runner that already
// runs as that user. The directory is bind-mounted into the container, so
// only that user, and root, can reach the socket. Every ancestor of dir
// must be searchable (x) by uid, or Podman cannot mount it.
//
// An existing dir is accepted only if it is a real directory (not a
// symlink); its mode and owner are then reset.
func PrepareSocketDir(dir string, uid, gid int) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("netpol: socket dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("netpol: socket dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is a %v", ErrSocketDir, dir, fi.Mode().Type())
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("netpol: socket dir: %w", err)
	}
	if uid >= 0 {
		if err := os.Lchown(dir, uid, gid); err != nil {
			return fmt.Errorf("netpol: socket dir owner: %w", err)
		}
	}
	return nil
}

// ListenUnix prepares dir (see PrepareSocketDir) and listens on
// dir/proxy.sock, a socket of mode 0600 owned by uid:gid. A stale socket
// from an earlier run is replaced; any other file there is an error.
func ListenUnix(dir string, uid, gid int) (*net.UnixListener, error) {
	if err := PrepareSocketDir(dir, uid, gid); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, SocketName)
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%w: %s exists and is not a socket", ErrSocketDir, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("netpol: remove stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("netpol: listen: %w", err)
	}
	// Close removes the socket file; the directory stays for the caller.
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("netpol: socket mode: %w", err)
	}
	if uid >= 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("netpol: socket owner: %w", err)
		}
	}
	return ln, nil
}
