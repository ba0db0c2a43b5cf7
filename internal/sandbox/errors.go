package sandbox

import (
	"errors"
	"fmt"
)

// Reason codes an Error carries, from the shared list the events schema
// enumerates.
const (
	ReasonSandboxError         = "sandbox_error"
	ReasonTimeout              = "timeout"
	ReasonInvalidArguments     = "invalid_arguments"
	ReasonPathOutsideWorkspace = "path_outside_workspace"
)

// Kill reasons of ExecResult.KilledReason; they match tool_call.completed's.
const (
	KilledTimeout   = "timeout"
	KilledCancelled = "cancelled"
)

var (
	// ErrInvalidProfile is wrapped by every profile parse or validation error.
	ErrInvalidProfile = errors.New("sandbox: invalid profile")
	// ErrInvalidRequest is wrapped when an ExecRequest is refused before it
	// reaches Podman (empty argv, cwd outside the workspace, env not allowed).
	ErrInvalidRequest = errors.New("sandbox: invalid exec request")
	// ErrPodman is wrapped when the Podman service refuses or fails a call.
	ErrPodman = errors.New("sandbox: podman")
	// ErrClosed is returned by Exec on a session that was closed.
	ErrClosed = errors.New("sandbox: session closed")
	// ErrWorkspace is wrapped when the host workspace cannot be used.
	ErrWorkspace = errors.New("sandbox: workspace")
)

// Error is what the package's operations return: the operation, a
// machine-readable reason code, and the cause.
type Error struct {
	Op     string // "start", "exec", "close", "cleanup", …
	Reason string // a Reason… constant
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("sandbox %s (%s): %v", e.Op, e.Reason, e.Err)
}

// Unwrap exposes the cause to errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason code carried by err: "" for nil, the Reason of
// an *Error in its chain, and sandbox_error for anything else.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Reason != "" {
		return e.Reason
	}
	return ReasonSandboxError
}

func sbxErr(op, reason string, err error) error {
	return &Error{Op: op, Reason: reason, Err: err}
}
