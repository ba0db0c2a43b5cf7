// Command agent-hook runs inside an agent's sandbox: the managed hooks of
// Codex and Claude Code call it, and it asks the runner over the
// session's hook socket (see internal/hook).
//
//	agent-hook hook --agent codex|claude --event EVENT [--timeout D]
//	agent-hook attach -- PROGRAM ARGS…
//
// hook reads the hook's JSON from stdin, forwards it, prints the runner's
// answer and exits with its code. It fails closed: on every error (no
// socket, no answer within the time-out, the runner gone, a malformed
// answer) it prints the reason on stderr and exits 2, which both agents
// treat as "do not run the tool".
//
// attach receives the runner's stdin, stdout and stderr and executes
// PROGRAM with them in its place, so the agent runs as the sandbox call's
// own process, traced by the supervisor.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/agentaudit/agentaudit/internal/hook"
	"golang.org/x/sys/unix"
)

// denyExit is the exit code both agents read as a refusal.
const denyExit = 2

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "agentaudit: agent-hook: usage: agent-hook hook --agent A --event E | attach -- PROGRAM ARGS…")
		return denyExit
	}
	switch args[0] {
	case "hook":
		return hookCmd(args[1:], stdin, stdout, stderr)
	case "attach":
		return attachCmd(args[1:], stderr)
	}
	fmt.Fprintf(stderr, "agentaudit: agent-hook: unknown command %q\n", args[0])
	return denyExit
}

func hookCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent-hook hook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	agent := fs.String("agent", "", "codex or claude")
	event := fs.String("event", "", "hook event name")
	socket := fs.String("socket", hook.ContainerSocket, "the runner's hook socket")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up (and refuse) after this long")
	if err := fs.Parse(args); err != nil {
		return denyExit
	}
	fail := func(format string, a ...any) int {
		if *event == "Stop" || *event == "SubagentStop" {
			// Refusing a stop (exit 2) would keep the agent working
			// unchecked; failing closed here is letting it stop.
			fmt.Fprintf(stderr, "agentaudit: the policy check failed; the agent stops: "+format+"\n", a...)
			return 0
		}
		fmt.Fprintf(stderr, "agentaudit: the tool call was refused because the policy check failed: "+format+"\n", a...)
		return denyExit
	}
	in, err := io.ReadAll(io.LimitReader(stdin, hook.MaxFrame))
	if err != nil {
		return fail("reading the hook input: %v", err)
	}
	if len(in) == 0 {
		in = []byte("{}")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := hook.Call(ctx, *socket, hook.Request{Agent: *agent, Event: *event, Input: in})
	if err != nil {
		return fail("%v", err)
	}
	if resp.ExitCode < 0 || resp.ExitCode > 255 {
		return fail("the runner answered exit code %d", resp.ExitCode)
	}
	if _, err := io.WriteString(stdout, resp.Stdout); err != nil {
		return fail("writing the answer: %v", err)
	}
	io.WriteString(stderr, resp.Stderr)
	return resp.ExitCode
}

func attachCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent-hook attach", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", hook.ContainerSocket, "the runner's hook socket")
	var mkdirs []string
	fs.Func("mkdir", "create this directory (mode 0700) first; repeatable (the agent's home on the sandbox's tmpfs)", func(d string) error {
		mkdirs = append(mkdirs, d)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return denyExit
	}
	for _, d := range mkdirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			fmt.Fprintf(stderr, "agentaudit: agent-hook attach: %v\n", err)
			return denyExit
		}
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fmt.Fprintln(stderr, "agentaudit: agent-hook attach: no program")
		return denyExit
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files, _, err := hook.Attach(ctx, *socket)
	if err != nil {
		fmt.Fprintf(stderr, "agentaudit: agent-hook attach: %v\n", err)
		return denyExit
	}
	for i, f := range files {
		if err := unix.Dup3(int(f.Fd()), i, 0); err != nil {
			fmt.Fprintf(stderr, "agentaudit: agent-hook attach: dup2: %v\n", err)
			return denyExit
		}
		f.Close()
	}
	prog, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "agentaudit: agent-hook attach: %v\n", err)
		return 127
	}
	err = syscall.Exec(prog, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "agentaudit: agent-hook attach: exec %s: %v\n", prog, err)
	return 126
}
