// Package sandbox runs tool calls inside rootless Podman containers.
//
// A [Profile] (YAML, strict, validated) describes the confinement; [Client.Start]
// turns it into one long-lived container per session and [Session.Exec] runs
// each tool call in it. Every container has no network, a read-only root
// (without Podman's extra tmpfs on /run and /var/tmp), no capabilities,
// no-new-privileges, the default seccomp profile, a keep-id user namespace,
// the workspace bind-mounted read-write, protected paths inside it
// bind-mounted read-only on top, a sized tmpfs on /tmp, explicit rlimits
// (nofile, nproc, as, cpu, fsize), only the profile's environment, and
// labels that tie it to its session and runner.
//
// Why rlimits and not cgroups: rootless Podman on cgroup v1 ignores memory
// and pids limits, so processes are bounded by nproc, memory by the
// address-space rlimit, and disk by the tmpfs size and fsize.
//
// Protected paths and their limits. Protected paths are globs in package
// glob's dialect, relative to the workspace as in policy files: one
// without a slash matches at any depth (".env*" finds sub/.env.local), a
// leading "/" anchors it at the workspace root. Each protected glob is
// expanded against the host workspace when the session starts, walking
// only the directories where it may match (all of them for a glob without
// a slash; a symlinked directory once per target), and every match is
// mounted read-only over the workspace bind; every directory between the workspace
// root and a match is bind-mounted onto itself as well, so it is a mount
// point inside the container and cannot be renamed or removed to get the
// protected path out of the way. A literal path (no glob characters) that is
// missing is created as an empty placeholder when its parent directory
// exists (a trailing "/" makes it a directory), so `.git/hooks/` and
// `.git/config` stay protected in a repository that lacks them. What the
// container cannot protect, by construction:
//   - a file that first appears during the session (`.env.local` created by
//     a command, a repository created by `git init`) is writable until the
//     next session; the runner's file tools must check their paths against
//     the tool-call policy as well;
//   - a protected path that is a symlink is replaced by what it resolves to
//     when that stays inside the workspace, and skipped otherwise (the
//     container cannot reach the host target anyway);
//   - nested repositories (`sub/.git/hooks`) are protected only when a glob
//     names them (`**/.git/hooks/`).
//
// Exec time-outs. The bindings' ExecStartAndAttach ignores context
// cancellation, so Exec runs it in a goroutine and a watchdog kills the
// exec's process group when the time-out or the context ends: runc makes
// every exec a session leader, so the host PID from ExecInspect is also its
// process group id. The kill is sent from the host (the runner runs on the
// Podman host as root or as the Podman user); when that is refused it is
// sent from a second exec inside the container, and when the exec still
// has not ended after a grace period every process of the container but
// its init is killed.
package sandbox
