package runner

import (
	"context"
	"time"
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
	// Command, when set, is the sandbox's main process (PID 1): the
	// egress bridge. It must stay up for the session and reap orphans.
	Command []string
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
}

// ExecRequest is one command in the sandbox.
type ExecRequest struct {
	Argv    []string
	Cwd     string // absolute path inside the sandbox
	Env     map[string]string
	Timeout time.Duration // zero: the sandbox's default
}

// ExecResult is how a command ended.
type ExecResult struct {
	ExitCode int // -1 when the process produced none
	Stdout   Stream
	Stderr   Stream
	Duration time.Duration
	TimedOut bool
	// Killed says why the sandbox killed the process ("timeout", "cpu_limit",
	// "output_limit"); empty when it exited by itself.
	Killed string
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
