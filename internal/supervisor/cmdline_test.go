package supervisor

import (
	"os"
	"os/exec"
	"strings"
	"testing"

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
	argv, trunc = readCmdline(cmd.Process.Pid)
	if !trunc {
		t.Error("a command line past the limit is not reported truncated")
	}
	if n := len(strings.Join(argv, "\x00")); n != maxCmdline {
		t.Errorf("kept %d bytes, want %d", n, maxCmdline)
	}
	if argv[0] != "/bin/sh" || argv[3] != "sh" || argv[4] != big {
		t.Errorf("argv starts %q", argv[:4])
	}

	if argv, _ := readCmdline(1 << 30); argv != nil {
		t.Errorf("no such process: %q", argv)
	}
}
