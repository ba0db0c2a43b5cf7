package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
)

// PodmanCLI runs the podman command line as the Podman user, with the
// environment a login of that user would have. It exists to compare the
// bindings against `podman exec` in benchmarks and for debugging.
type PodmanCLI struct {
	UID, GID   int
	Home       string
	RuntimeDir string // XDG_RUNTIME_DIR, /run/user/UID
}

// PodmanCLIFor describes the CLI of user name (agentaudit-sbx, say).
func PodmanCLIFor(name string) (PodmanCLI, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return PodmanCLI{}, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return PodmanCLI{}, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return PodmanCLI{}, err
	}
	return PodmanCLI{UID: uid, GID: gid, Home: u.HomeDir, RuntimeDir: "/run/user/" + u.Uid}, nil
}

// Command returns `podman ARGS…` run as the user: through setpriv when
// this process is someone else (root), directly when it is the user.
func (c PodmanCLI) Command(ctx context.Context, args ...string) *exec.Cmd {
	env := []string{
		"HOME=" + c.Home,
		"XDG_RUNTIME_DIR=" + c.RuntimeDir,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	var cmd *exec.Cmd
	if os.Geteuid() == c.UID {
		cmd = exec.CommandContext(ctx, "podman", args...)
	} else {
		// setpriv, not su: no PAM session that would try to reach systemd.
		cmd = exec.CommandContext(ctx, "setpriv", append([]string{
			"--reuid=" + strconv.Itoa(c.UID), "--regid=" + strconv.Itoa(c.GID), "--init-groups",
			"podman"}, args...)...)
	}
	cmd.Env = env
	cmd.Dir = c.Home
	return cmd
}

// Exec runs `podman exec CONTAINER ARGV…` and returns its combined output.
func (c PodmanCLI) Exec(ctx context.Context, container string, argv ...string) ([]byte, error) {
	out, err := c.Command(ctx, append([]string{"exec", container}, argv...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("podman exec %s: %w: %s", container, err, out)
	}
	return out, nil
}
