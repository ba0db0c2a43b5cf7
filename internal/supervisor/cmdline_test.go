package supervisor

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReadCmdline(t *testing.T) {
	argv, trunc := readCmdline(os.Getpid())
	if trunc {
		t.Error("own command line reported truncated")
	}
	if diff := cmp.Diff(os.Args, argv); diff != "" {
		t.Errorf("own argv (-want +got):\n%s", diff)
	}

	// Three arguments of 100 KiB: more than maxCmdline in all.
	big := strings.Repeat("x", 100<<10)
	cmd := exec.Command("/bin/sh", "-c", "sleep 10", "sh", big, big, big)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Start returns once the exec is past its point of no return, a moment
	// before the new image's arguments are in place (the tracer reads them
	// at the exec stop, after that): wait for them.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if argv, trunc = readCmdline(cmd.Process.Pid); len(argv) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if !trunc {
		t.Error("a command line past the limit is not reported truncated")
	}
	if n := len(strings.Join(argv, "\x00")); n != maxCmdline {
		t.Errorf("kept %d bytes, want %d", n, maxCmdline)
	}
	if len(argv) < 5 {
		t.Fatalf("argv %d long", len(argv))
	}
	if argv[0] != "/bin/sh" || argv[3] != "sh" || argv[4] != big {
		t.Errorf("argv starts %q", argv[:4])
	}

	if argv, _ := readCmdline(1 << 30); argv != nil {
		t.Errorf("no such process: %q", argv)
	}
}
