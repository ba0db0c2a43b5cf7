package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/agentaudit/agentaudit/internal/netpol"
	"github.com/agentaudit/agentaudit/internal/supervisor"
)

// modulePath is this project's Go module, whose cmd/sandbox-supervisor the
// runner builds when no supervisor binary is installed.
const modulePath = "github.com/agentaudit/agentaudit"

// openEgress loads the egress policy and prepares what every session's
// proxy needs: the socket root. The bridge in the sandbox is the
// supervisor's.
func openEgress(ctx context.Context, cfg Config) (*NetpolEgress, error) {
	pol, err := netpol.LoadFile(cfg.EgressPolicy)
	if err != nil {
		return nil, fmt.Errorf("%w: --egress-policy: %w", ErrConfig, err)
	}
	if err := prepareSocketRoot(cfg.EgressSocketRoot, cfg.uid); err != nil {
		return nil, fmt.Errorf("%w: EGRESS_SOCKET_ROOT: %w", ErrConfig, err)
	}
	dopts := []netpol.Option{netpol.WithLogger(cfg.Logger)}
	if cfg.EgressResolver != nil {
		dopts = append(dopts, netpol.WithResolver(cfg.EgressResolver))
	}
	cfg.Logger.Info("egress on", "policy", pol.ID, "policy_sha256", pol.SHA256, "socket_root", cfg.EgressSocketRoot,
		"sandbox_uid", cfg.uid)
	var popts []netpol.ProxyOption
	if len(cfg.EgressCredentials) > 0 {
		popts = append(popts, netpol.WithCredentials(cfg.EgressCredentials...))
	}
	return &NetpolEgress{
		Decider: netpol.NewDecider(pol, dopts...), SocketRoot: cfg.EgressSocketRoot,
		UID: cfg.uid, GID: cfg.gid, ApprovalTimeout: cfg.ApprovalTimeout, Options: popts,
	}, nil
}

// prepareSocketRoot creates root and its missing parents with mode 0711
// (the Podman user must traverse them to bind-mount its session's
// directory, and must not list the other sessions'), and checks that
// existing ancestors are searchable when the sandbox runs as another user.
func prepareSocketRoot(root string, uid int) error {
	var missing []string
	for d, exists := root, false; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !exists:
			missing = append(missing, d)
		case err != nil:
			return err
		default:
			exists = true
			if uid >= 0 && uid != os.Geteuid() && fi.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("%s (mode %v) is not searchable by the sandbox user %d; make it 0711", d, fi.Mode().Perm(), uid)
			}
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Chmod(missing[i], 0o711); err != nil {
			return err
		}
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", root)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		// Others could replace a session's directory or socket.
		return fmt.Errorf("%s is writable by group or others (mode %v)", root, fi.Mode().Perm())
	}
	return nil
}

// findSupervisor returns SANDBOX_SUPERVISOR, else sandbox-supervisor next
// to the running binary, else builds one from this module's source into
// the socket root's .bin (a directory the sandbox user can reach; the Go
// build cache makes a rebuild after a reboot cheap).
func findSupervisor(ctx context.Context, cfg Config) (string, error) {
	if cfg.Supervisor != "" {
		return filepath.Abs(cfg.Supervisor)
	}
	exe, exeErr := os.Executable()
	if exeErr == nil {
		if exe, exeErr = filepath.EvalSymlinks(exe); exeErr == nil {
			p := filepath.Join(filepath.Dir(exe), "sandbox-supervisor")
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	wd, _ := os.Getwd()
	var mod string
	for _, start := range []string{wd, filepath.Dir(exe)} {
		if mod = moduleRoot(start); mod != "" {
			break
		}
	}
	if mod == "" {
		return "", fmt.Errorf("no sandbox-supervisor next to the runner binary and no %s source above %s to build one from; set SANDBOX_SUPERVISOR (make build puts it in bin/)", modulePath, wd)
	}
	dir := filepath.Join(cfg.SocketRoot, ".bin")
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	// Build beside the target and rename, so a runner starting at the
	// same time never mounts a half-written binary.
	tmp, err := os.CreateTemp(dir, "sandbox-supervisor-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cfg.Logger.Info("building sandbox-supervisor", "module", mod, "out", dir)
	if err := supervisor.Build(ctx, mod, tmp.Name()); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "sandbox-supervisor")
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}

// moduleRoot returns the directory at or above dir whose go.mod declares
// this module, or "".
func moduleRoot(dir string) string {
	for dir != "" {
		b, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
		for _, line := range bytes.Split(b, []byte("\n")) {
			if string(bytes.TrimSpace(line)) == "module "+modulePath {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	return ""
}
