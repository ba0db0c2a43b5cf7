package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxRunnerIDSuffix bounds the suffixes a defaulted runner id tries.
const maxRunnerIDSuffix = 64

// claimRunnerID takes the runner id for this process: an exclusive lock on
// a file named after it in dir (RUNNER_LOCK_DIR, one per host), held until
// the returned file is closed or the process ends.
//
// Two live runners on a host never share an id, so the leftover cleanup,
// which removes every sandbox labelled with the id, only ever removes the
// sandboxes of a runner that is gone, and the audit trail tells runners
// apart. A defaulted id (runner-<host>) that a live runner holds gets the
// first free suffix (-2, -3, …); a runner restarted alone gets its old id
// back and recovers the sessions its previous run lost. An id set
// explicitly (RUNNER_ID) that a live runner holds is an error naming it.
func claimRunnerID(dir, id string, defaulted bool) (*os.File, string, error) {
	for n := 1; n <= maxRunnerIDSuffix; n++ {
		try := id
		if n > 1 {
			try = id + "-" + strconv.Itoa(n)
		}
		f, holder, err := lockRunnerID(dir, try)
		if err == nil {
			return f, try, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, "", fmt.Errorf("%w: runner id lock: %w", ErrConfig, err)
		}
		if !defaulted {
			return nil, "", fmt.Errorf("%w: RUNNER_ID %q is in use by a running runner (%s); give each runner its own", ErrConfig, try, holder)
		}
	}
	return nil, "", fmt.Errorf("%w: runner ids %s to %s-%d are all in use", ErrConfig, id, id, maxRunnerIDSuffix)
}

// lockRunnerID locks dir/runner-<sha256 of id>.lock; when a live process
// holds it, the error wraps EWOULDBLOCK and holder says who.
func lockRunnerID(dir, id string) (*os.File, string, error) {
	sum := sha256.Sum256([]byte(id))
	p := filepath.Join(dir, "runner-"+hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, "", err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 256)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		return nil, strings.TrimSpace(string(b[:n])), err
	}
	// Who holds it, for the error a second runner gets.
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d, id %s\n", os.Getpid(), id)
	}
	return f, "", nil
}
