// Package hook carries a sandboxed agent's hook calls to the runner.
//
// Codex and Claude Code run inside the session's sandbox with managed
// hooks that call cmd/agent-hook, a static binary mounted read-only. It
// reads the hook's JSON from stdin, sends it over the session's hook
// socket (a Unix socket in a directory private to the session,
// bind-mounted at ContainerDir) and prints the runner's answer. Every
// failure on the way (no socket, no answer in time, the runner gone) is
// an exit 2 with the reason, which both agents treat as a refusal: a
// hook that fails must never let the tool run.
//
// The same socket hands the agent its terminal: `agent-hook attach`
// receives the runner's stdin, stdout and stderr descriptors
// (SCM_RIGHTS) and becomes the agent with them, so the agent runs under
// the sandbox supervisor like any tool call while a person can still
// type to it.
//
// Frames are a 4-byte big-endian length and that many bytes of JSON. The
// runner accepts only processes of its session's sandbox (their PID
// namespace is the sandbox's), see Server.
package hook

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Paths inside the sandbox.
const (
	ContainerDir    = "/agentaudit/hooks"
	SocketName      = "hook.sock"
	ContainerSocket = ContainerDir + "/" + SocketName
	ContainerBinary = "/agentaudit/agent-hook"
)

// Request kinds.
const (
	KindHook   = "hook"   // one hook call: answer with a Response
	KindAttach = "attach" // the agent's wrapper asks for its stdio descriptors
)

// MaxFrame bounds one frame. A hook's input carries a tool's whole input
// (a file an agent writes) or output; more than this is refused, which
// fails closed.
const MaxFrame = 16 << 20

// Request is what the hook binary sends.
type Request struct {
	Kind  string `json:"kind"`
	Agent string `json:"agent,omitempty"` // codex or claude
	// Event is the hook event (PreToolUse, PostToolUse, …) as configured.
	Event string `json:"event,omitempty"`
	// Input is the hook's stdin, exactly as the agent wrote it.
	Input json.RawMessage `json:"input,omitempty"`
}

// Response is what the hook binary prints and how it exits.
type Response struct {
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout,omitempty"`
	Stderr   string `json:"stderr,omitempty"`
	// FDs is how many descriptors come with an attach answer (in the same
	// message, SCM_RIGHTS): stdin, stdout, stderr.
	FDs int `json:"fds,omitempty"`
	// TTY says the descriptors are a terminal.
	TTY bool `json:"tty,omitempty"`
}

// ErrFrame: a frame was malformed or too large.
var ErrFrame = errors.New("hook: bad frame")

// encode returns v as one frame.
func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes to send, at most %d", ErrFrame, len(b), MaxFrame)
	}
	f := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(f, uint32(len(b)))
	copy(f[4:], b)
	return f, nil
}

// readFrame reads one frame into v.
func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxFrame {
		return fmt.Errorf("%w: length %d", ErrFrame, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %w", ErrFrame, err)
	}
	return nil
}
