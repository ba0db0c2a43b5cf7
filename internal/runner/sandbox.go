package runner

import (
	"context"
	"time"

	"github.com/agentaudit/agentaudit/internal/supervisor"
)

// Sandbox starts one confined environment per session. internal/sandbox
// provides the Podman implementation (see NewPodmanSandbox); tests use a
// fake.
type Sandbox interface {
	Start(ctx context.Context, sessionID string, spec SandboxSpec) (SandboxSession, error)
}

// SandboxSpec is what a session asks of its sandbox beyond the profile the
// Sandbox was built with.
type SandboxSpec struct {
	// Workspace is the host directory mounted read-write at /workspace.
	Workspace string
	// Mounts and Env come from the session's egress component (for
	// example the proxy's Unix socket and the variables that point at it).
	Mounts []Mount
	Env    map[string]string
	// EgressSocket, when set, is the proxy's socket inside the sandbox:
	// the supervisor serves the egress bridge to it.
	EgressSocket string
	// OTLPSocket, when set, is the runner's telemetry receiver inside the
	// sandbox: the supervisor relays the sandbox's OTLP port to it.
	OTLPSocket string
	// Checker rules on every exec inside the sandbox; OnNotice hears what
	// the supervisor did on its own (leftover processes killed).
	Checker  supervisor.Checker
	OnNotice func(supervisor.Notice)
	// Identify names the programs whose copies the sandbox must
	// recognise by content, so a renamed copy of git is still git.
	Identify []string
}

// Mount is an extra bind mount into the sandbox.
type Mount struct {
	Source      string // host path
	Destination string // path in the sandbox
	ReadOnly    bool
}

// SandboxSession is one running sandbox.
type SandboxSession interface {
	Exec(ctx context.Context, req ExecRequest) (ExecResult, error)
	// Hold stops every process in the sandbox until Release.
	Hold(ctx context.Context) error
	Release() error
	// Done is closed when the sandbox died (its supervisor is gone).
	Done() <-chan struct{}
	// Info describes the confinement, for session.started.
	Info() SandboxInfo
	Close(ctx context.Context) error
}

// SandboxInfo pins what a session runs in.
type SandboxInfo struct {
	Profile       string // profile name
	ProfileSHA256 string // sha256 of the profile as applied
	Image         string // image reference
	ImageID       string // local image id, when known
	// Background: a call's processes may outlive it (they stay traced).
	Background bool
	// Protected are the profile's protected globs (relative to the
	// workspace); the session guards them with the policy's.
	Protected []string
	// InitPID is the host pid of the sandbox's PID 1 (0 when unknown):
	// its PID namespace is the sandbox's.
	InitPID int
}

// ExecRequest is one command in the sandbox.
type ExecRequest struct {
	// CallID is the tool call the command belongs to; every exec in its
	// process tree is checked under it.
	CallID  string
	Argv    []string
	Cwd     string // absolute path inside the sandbox
	Env     map[string]string
	Timeout time.Duration // zero: the sandbox's default
	// Background lets the command's processes outlive it.
	Background bool
}

// ExecResult is how a command ended.
type ExecResult struct {
	ExitCode int // -1 when the process produced none
	Stdout   Stream
	Stderr   Stream
	Duration time.Duration
	TimedOut bool
	// Killed says why the sandbox killed the process ("timeout",
	// "cancelled", "exec_denied"); empty when it exited by itself.
	Killed string
	// Signal ended the command's first process (0: it exited).
	Signal int
	// UserTime, SystemTime and MaxRSSKB are its rusage.
	UserTime, SystemTime time.Duration
	MaxRSSKB             int64
	// Leftovers were killed because they outlived the command.
	Leftovers int
	// PidsLimit: the command reached the sandbox's process limit.
	PidsLimit bool
	// Denied are the programs the exec check refused.
	Denied []DeniedExec
}

// DeniedExec is a program killed before its first instruction.
type DeniedExec struct {
	PID    int
	Argv   []string
	Reason string
}

// Stream is one captured output stream: the first bytes, and the full
// length and sha256 of everything the process wrote.
type Stream struct {
	Data   []byte
	Length uint64
	SHA256 string
}

// Truncated reports whether Data is shorter than the stream.
func (s Stream) Truncated() bool { return uint64(len(s.Data)) < s.Length }
