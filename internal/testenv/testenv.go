// Package testenv gives integration tests the addresses of the real services
// that testenv/up starts, and fails them loudly when a service is missing.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
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

// Start starts one testenv service and waits until it is healthy.
func Start(t testing.TB, service string) {
	t.Helper()
	runLib(t, service, service+"_up")
}

func runLib(t testing.TB, service, call string) {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("source testenv/lib/common.sh && source testenv/lib/%s.sh && %s", service, call)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	t.Logf("%s: %s", call, strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("%s: %v", call, err)
	}
}
