// Package testenv gives integration tests the addresses of the real services
// that testenv/up starts, and fails them loudly when a service is missing.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/testenv/envfile"
)

// StartCommand is what a developer runs to start every service.
const StartCommand = "testenv/up"

var (
	loadOnce sync.Once
	loaded   map[string]string
	loadErr  error
)

// Root returns the repository root: the nearest parent holding go.mod.
func Root() (string, error) {
	root, err := envfile.Root()
	if err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	return root, nil
}

// Env returns the variables written by testenv/up into .testenv/env,
// overridden by the process environment where both name a variable.
func Env() (map[string]string, error) {
	loadOnce.Do(func() {
		loaded = map[string]string{}
		root, err := Root()
		if err != nil {
			loadErr = err
			return
		}
		env, err := envfile.Load(envfile.Path(root))
		if err != nil {
			loadErr = fmt.Errorf("testenv: %w (run %s)", err, StartCommand)
			return
		}
		loaded = env
	})
	// The process environment is read again on every call: a test may set
	// a variable after the file was loaded.
	out := make(map[string]string, len(loaded))
	for k, v := range loaded {
		out[k] = v
	}
	for k := range out {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			out[k] = v
		}
	}
	return out, loadErr
}

// Get returns one variable or fails the test, naming the command that
// starts the services. It never skips: a missing service is a failure.
func Get(t testing.TB, name string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	env, err := Env()
	if v := env[name]; v != "" {
		return v
	}
	if err != nil {
		t.Fatalf("%s is not set: %v; start the services with %s", name, err, StartCommand)
	}
	t.Fatalf("%s is not set in .testenv/env; start the services with %s", name, StartCommand)
	return ""
}

// RequireTCP fails the test unless addr accepts a TCP connection within a
// few seconds. service names what is missing in the message.
func RequireTCP(t testing.TB, service, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable at %s: %v; start it with %s", service, addr, err, StartCommand)
	}
	c.Close()
}

// RequireUnix fails the test unless the Unix socket at path accepts a connection.
func RequireUnix(t testing.TB, service, path string) {
	t.Helper()
	path = strings.TrimPrefix(path, "unix://")
	c, err := net.DialTimeout("unix", path, 3*time.Second)
	if err != nil {
		t.Fatalf("%s is not reachable at %s: %v; start it with %s", service, path, err, StartCommand)
	}
	c.Close()
}

// Kafka returns the broker list after checking that the first broker answers.
func Kafka(t testing.TB) []string {
	t.Helper()
	brokers := strings.Split(Get(t, "KAFKA_BROKERS"), ",")
	RequireTCP(t, "Kafka", brokers[0])
	return brokers
}

// ClickHouse returns the native-protocol address after checking it answers.
func ClickHouse(t testing.TB) string {
	t.Helper()
	addr := Get(t, "CLICKHOUSE_ADDR")
	RequireTCP(t, "ClickHouse", addr)
	return addr
}

// Podman returns the API socket URI (unix://…) after checking it answers.
func Podman(t testing.TB) string {
	t.Helper()
	sock := Get(t, "PODMAN_SOCKET")
	RequireUnix(t, "Podman API service", sock)
	if !strings.HasPrefix(sock, "unix://") {
		sock = "unix://" + sock
	}
	return sock
}

// Stop stops one testenv service (kafka, clickhouse or podman) through its
// testenv library, keeping its data. Fault tests use it; they run in the
// serial fault phase of `make test`, never beside other integration tests.
func Stop(t testing.TB, service string) {
	t.Helper()
	runLib(t, service, service+"_down 0")
}

// Start starts one testenv service and waits until it is healthy, for up
// to StartTimeout: a broker with many partitions recovers their logs
// before it answers, which can outlast the start script's own wait.
func Start(t testing.TB, service string) {
	t.Helper()
	StartWithin(t, service, StartTimeout)
}

// StartTimeout bounds Start.
const StartTimeout = 5 * time.Minute

// Kill SIGKILLs one testenv service (kafka or clickhouse), as a crash or
// an OOM kill would, waits until the process is gone and removes its PID
// file, so Start brings it up again without first waiting on a corpse.
// It returns the PID it killed.
func Kill(t testing.TB, service string) int {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	return killPidfile(t, service, filepath.Join(root, ".testenv", "run", service+".pid"), StartCommand)
}

// killPidfile SIGKILLs the process pidfile names, waits until it is gone
// and removes the file; startCmd is what starts it, for the message when
// nothing runs.
func killPidfile(t testing.TB, service, pidfile, startCmd string) int {
	t.Helper()
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("kill %s: %v; is it running? start it with %s", service, err, startCmd)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("kill %s: bad PID file %s: %q", service, pidfile, b)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill %s (pid %d): %v", service, pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still alive 30s after SIGKILL", service, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Remove(pidfile)
	t.Logf("%s: SIGKILLed pid %d", service, pid)
	return pid
}

// keepInheritedFilesFromServices marks every descriptor this process
// inherited (Go opens its own close-on-exec) close-on-exec, so a service
// restarted by a test does not inherit them: run under
// `flock /tmp/agentaudit-fault.lock go test …`, a restarted broker would
// otherwise hold the lock for as long as it runs.
func keepInheritedFilesFromServices() {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, f := range fds {
		if fd, err := strconv.Atoi(f.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// gone reports whether pid has exited: no such process, or a zombie
// waiting for a parent that is not us.
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z' || stat[i+2] == 'X'
	}
	return false
}

// StartWithin is Start for a service that may take longer than its
// library waits, such as a broker recovering every log after a SIGKILL:
// when the start script gives up while the process it started is still
// alive, StartWithin keeps polling the service's status until timeout.
func StartWithin(t testing.TB, service string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	started := time.Now()
	out, err := lib(service, service+"_up")
	t.Logf("%s_up: %s", service, out)
	if err == nil {
		return
	}
	for time.Now().Before(deadline) {
		if _, err := lib(service, service+"_status"); err == nil {
			t.Logf("%s: healthy %s after the start", service, time.Since(started).Round(time.Second))
			return
		}
		if !pidAlive(service) {
			t.Fatalf("%s_up: %v, and its process is gone", service, err)
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s not healthy %s after the start: %v", service, timeout, err)
}

// pidAlive reports whether the service's PID file names a live process.
func pidAlive(service string) bool {
	root, err := Root()
	if err != nil {
		return false
	}
	return pidfileAlive(filepath.Join(root, ".testenv", "run", service+".pid"))
}

// pidfileAlive reports whether pidfile names a live process.
func pidfileAlive(pidfile string) bool {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && pid > 1 && !gone(pid)
}

func runLib(t testing.TB, service, call string) {
	t.Helper()
	out, err := lib(service, call)
	t.Logf("%s: %s", call, out)
	if err != nil {
		t.Fatalf("%s: %v", call, err)
	}
}

// lib runs one function of testenv/lib/<service>.sh from the repository root.
func lib(service, call string) (string, error) {
	return libScript(fmt.Sprintf("source testenv/lib/common.sh && source testenv/lib/%s.sh && %s", service, call))
}

// libScript runs a bash script that sources testenv/lib files, from the
// repository root.
func libScript(script string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	keepInheritedFilesFromServices()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
