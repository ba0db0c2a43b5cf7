package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The test binary doubles as the supervisor: run with this variable set it
// serves the socket it names and exits.
const envSocket = "AGENTAUDIT_TEST_SUPERVISOR_SOCKET"

func TestMain(m *testing.M) {
	Doorbell()
	if done := os.Getenv(envArgvAttack); done != "" {
		argvAttack(done)
	}
	if sock := os.Getenv(envSocket); sock != "" {
		if d, err := time.ParseDuration(os.Getenv(envPinIdle)); err == nil {
			pinIdle = d
		}
		if err := Run(context.Background(), Config{Socket: sock}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// checkLog records every check and answers with rule.
type checkLog struct {
	mu     sync.Mutex
	checks []Check
	rule   func(c *Check) Verdict
}

func (l *checkLog) CheckExec(ctx context.Context, c *Check) Verdict {
	l.mu.Lock()
	l.checks = append(l.checks, *c)
	rule := l.rule
	l.mu.Unlock()
	if rule == nil {
		return Verdict{Allow: true}
	}
	return rule(c)
}

// RecordExecs implements Recorder: reused verdicts' execs.
func (l *checkLog) RecordExecs(_ context.Context, cs []*Check) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		l.checks = append(l.checks, *c)
	}
}

// all returns the checks so far, copied under the lock (the connection's
// goroutines append to them).
func (l *checkLog) all() []Check {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Check(nil), l.checks...)
}

func (l *checkLog) argvs() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]string
	for _, c := range l.checks {
		out = append(out, c.Argv)
	}
	return out
}

type harness struct {
	conn    *Conn
	checks  *checkLog
	cmd     *exec.Cmd
	notices chan Notice
}

// startSupervisor runs the supervisor as a child process of the test and
// connects to it.
func startSupervisor(t testing.TB, rule func(c *Check) Verdict) *harness {
	t.Helper()
	return startSupervisorWith(t, rule)
}

func startSupervisorWith(t testing.TB, rule func(c *Check) Verdict, opts ...ConnOption) *harness {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sup")
	ln, err := Listen(dir, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envSocket+"="+filepath.Join(dir, SocketName))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &harness{checks: &checkLog{rule: rule}, cmd: cmd, notices: make(chan Notice, 16)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.conn, err = ln.Accept(ctx, func() int { return cmd.Process.Pid }, h.checks,
		append([]ConnOption{WithLogger(slog.New(slog.NewTextHandler(testWriter{t}, nil))),
			WithNoticeHandler(func(n Notice) { h.notices <- n })}, opts...)...)
	if err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.conn.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Errorf("supervisor did not exit after the runner closed its socket")
		}
	})
	return h
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func run(t *testing.T, h *harness, req Request) *Result {
	t.Helper()
	if req.OutputLimit == 0 {
		req.OutputLimit = 1 << 16
	}
	if req.Timeout == 0 {
		req.Timeout = 20 * time.Second
	}
	if req.Cwd == "" {
		req.Cwd = t.TempDir()
	}
	r, err := h.conn.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunOutputAndExit(t *testing.T) {
	h := startSupervisor(t, nil)
	r := run(t, h, Request{Argv: []string{"bash", "-c", "echo out; echo err >&2; exit 3"}})
	if got := string(r.Stdout) + "|" + string(r.Stderr); got != "out\n|err\n" {
		t.Errorf("output %q", got)
	}
	if r.ExitCode != 3 || r.lengthOut() != 4 {
		t.Errorf("exit %+v", r.Exit)
	}
	if diff := cmp.Diff([][]string{{"bash", "-c", "echo out; echo err >&2; exit 3"}}, h.checks.argvs()); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}
}

func (r *Result) lengthOut() int64 { return r.Exit.Stdout.Length }

func TestOutputCappedWithWholeLengthAndHash(t *testing.T) {
	h := startSupervisor(t, nil)
	r := run(t, h, Request{Argv: []string{"bash", "-c", "head -c 100000 /dev/zero"}, OutputLimit: 1000})
	if len(r.Stdout) != 1000 || r.lengthOut() != 100000 {
		t.Fatalf("kept %d of %d", len(r.Stdout), r.lengthOut())
	}
	zero := sha256.Sum256(make([]byte, 100000))
	if want := hex.EncodeToString(zero[:]); r.Exit.Stdout.SHA256 != want {
		t.Errorf("sha256 %q, want %q", r.Exit.Stdout.SHA256, want)
	}
}

func TestEveryExecIsChecked(t *testing.T) {
	h := startSupervisor(t, nil)
	r := run(t, h, Request{Argv: []string{"bash", "-c", "/bin/true; ls / >/dev/null; (sh -c 'env true') ; exit 0"}})
	if r.ExitCode != 0 {
		t.Fatalf("exit %+v %s", r.Exit, r.Stderr)
	}
	var names []string
	for _, a := range h.checks.argvs() {
		names = append(names, filepath.Base(a[0]))
	}
	want := []string{"bash", "true", "ls", "sh", "env", "true"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("execs (-want +got):\n%s", diff)
	}
}

func TestDeniedExecNeverRuns(t *testing.T) {
	dir := t.TempDir()
	h := startSupervisor(t, func(c *Check) Verdict {
		if filepath.Base(c.Exe) == "touch" {
			return Verdict{Allow: false, Reason: "denied_by_rule"}
		}
		return Verdict{Allow: true}
	})
	r := run(t, h, Request{Argv: []string{"bash", "-c", "touch pwned; setsid -f touch pwned2; sleep 0.3; echo after"}, Cwd: dir})
	for _, f := range []string{"pwned", "pwned2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s exists: a denied exec ran", f)
		}
	}
	if string(r.Stdout) != "after\n" {
		t.Errorf("stdout %q", r.Stdout)
	}
	if len(r.Denied) != 2 || r.Denied[0].Reason != "denied_by_rule" {
		t.Errorf("denied %+v", r.Denied)
	}
}

func TestTimeoutKillsWholeTree(t *testing.T) {
	dir := t.TempDir()
	h := startSupervisor(t, nil)
	start := time.Now()
	r := run(t, h, Request{Argv: []string{"bash", "-c", "setsid bash -c 'sleep 1; touch late' & sleep 30"}, Cwd: dir, Timeout: 300 * time.Millisecond})
	if r.Killed != killTimeout || time.Since(start) > 5*time.Second {
		t.Fatalf("killed %q after %v", r.Killed, time.Since(start))
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(dir, "late")); err == nil {
		t.Errorf("a process of the timed-out call kept running")
	}
}

func TestLeftoversKilledUnlessBackground(t *testing.T) {
	for _, bg := range []bool{false, true} {
		t.Run(fmt.Sprint("background=", bg), func(t *testing.T) {
			dir := t.TempDir()
			h := startSupervisor(t, nil)
			r := run(t, h, Request{Argv: []string{"bash", "-c", "setsid bash -c 'sleep 0.5; touch late' >/dev/null 2>&1 </dev/null & echo started"},
				Cwd: dir, Background: bg})
			if string(r.Stdout) != "started\n" {
				t.Fatalf("stdout %q", r.Stdout)
			}
			time.Sleep(1200 * time.Millisecond)
			_, err := os.Stat(filepath.Join(dir, "late"))
			if ran := err == nil; ran != bg {
				t.Errorf("leftover ran: %v, want %v (leftovers reported %d)", ran, bg, r.Leftovers)
			}
			if !bg && r.Leftovers == 0 {
				t.Errorf("no leftovers reported")
			}
			if bg {
				// The background process's own execs are still checked.
				found := false
				for _, c := range h.checks.all() {
					if filepath.Base(c.Exe) == "touch" && c.Background {
						found = true
					}
				}
				if !found {
					t.Errorf("background exec not checked: %+v", h.checks.all())
				}
			}
		})
	}
}

func TestHoldFreezesEverything(t *testing.T) {
	dir := t.TempDir()
	h := startSupervisor(t, nil)
	done := make(chan *Result, 1)
	go func() {
		r, _ := h.conn.Run(context.Background(), Request{Argv: []string{"bash", "-c", "for i in $(seq 1 40); do echo $i >> count; sleep 0.05; done"},
			Cwd: dir, Timeout: 30 * time.Second, OutputLimit: 100})
		done <- r
	}()
	time.Sleep(300 * time.Millisecond)
	n, err := h.conn.Hold(context.Background())
	if err != nil || n == 0 {
		t.Fatalf("hold: %d %v", n, err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "count"))
	time.Sleep(500 * time.Millisecond)
	after, _ := os.ReadFile(filepath.Join(dir, "count"))
	if string(before) != string(after) {
		t.Errorf("work went on while held: %d → %d bytes", len(before), len(after))
	}
	if err := h.conn.Release(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r == nil || r.ExitCode != 0 {
			t.Errorf("after release: %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("call did not finish after release")
	}
}

func TestRunnerGoneKillsEverything(t *testing.T) {
	dir := t.TempDir()
	h := startSupervisor(t, nil)
	go h.conn.Run(context.Background(), Request{Argv: []string{"bash", "-c", "setsid bash -c 'sleep 1; touch late' & sleep 1; touch late2"},
		Cwd: dir, Timeout: 30 * time.Second, OutputLimit: 100})
	time.Sleep(300 * time.Millisecond)
	h.conn.uc.Close() // the runner's end goes away
	waited := make(chan error, 1)
	go func() { waited <- h.cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("supervisor still running after its runner left")
	}
	time.Sleep(1500 * time.Millisecond)
	for _, f := range []string{"late", "late2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s: a process ran on after the runner left", f)
		}
	}
}

func TestSecondConnectionRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sup")
	ln, err := Listen(dir, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// An impostor connects first: its pid is not the sandbox's PID 1.
	go func() {
		c, err := netDial(filepath.Join(dir, SocketName))
		if err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = ln.Accept(ctx, func() int { return 999999 }, nil)
	if err == nil || !strings.Contains(err.Error(), "unexpected peer") {
		t.Fatalf("accept: %v, want ErrPeer", err)
	}
}

func netDial(path string) (interface{ Close() error }, error) {
	return net.Dial("unix", path)
}

func TestCopyOfAKnownProgramIsIdentified(t *testing.T) {
	dir := t.TempDir()
	h := startSupervisorWith(t, nil, WithIdentify([]string{"true", "ls"}))
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, h, Request{Argv: []string{"bash", "-c", "cp " + trueBin + " ./renamed && ./renamed && " + trueBin}, Cwd: dir})
	if r.ExitCode != 0 {
		t.Fatalf("exit %+v %s", r.Exit, r.Stderr)
	}
	got := map[string]string{}
	for _, c := range h.checks.all() {
		got[filepath.Base(c.Exe)] = c.Identity
	}
	// The copy on a writable file system is named for what it is; the
	// test's own temporary directory is writable, and so may be /usr here,
	// so only the copy is asserted.
	if got["renamed"] != "true" {
		t.Errorf("identities %v: the copy of true was not recognised", got)
	}
}

func TestReusableVerdictsAreRecordedNotAsked(t *testing.T) {
	h := startSupervisor(t, func(c *Check) Verdict {
		// Allowed for reuse, except touch, which is asked each time.
		return Verdict{Allow: true, Reuse: filepath.Base(c.Exe) != "touch"}
	})
	dir := t.TempDir()
	r := run(t, h, Request{Argv: []string{"bash", "-c", "for i in 1 2 3 4; do /bin/true; touch x; done; /bin/true --other"}, Cwd: dir})
	if r.ExitCode != 0 {
		t.Fatalf("exit %+v %s", r.Exit, r.Stderr)
	}
	type row struct {
		Prog     string
		Recorded bool
	}
	var got []row
	for _, c := range h.checks.all() {
		got = append(got, row{filepath.Base(c.Argv[0]), c.Recorded})
	}
	want := []row{{"bash", false}, {"true", false}, {"touch", false}, {"true", true}, {"touch", false},
		{"true", true}, {"touch", false}, {"true", true}, {"touch", false}, {"true", false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}
}
