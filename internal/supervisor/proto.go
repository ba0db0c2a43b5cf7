package supervisor

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ProtocolVersion is the version of the runner–supervisor protocol. The
// supervisor states it in its hello; a runner refuses any other.
const ProtocolVersion = 1

// MaxFrame bounds one frame on the wire: a peer that announces more is
// broken or hostile, and the connection is closed.
const MaxFrame = 4 << 20

// Message types. The supervisor sends hello, out, exit, check, notice and
// held; the runner sends welcome, exec, cancel, verdict, hold and release.
const (
	MsgHello   = "hello"
	MsgWelcome = "welcome"
	MsgExec    = "exec"
	MsgOut     = "out"
	MsgExit    = "exit"
	MsgCancel  = "cancel"
	MsgCheck   = "check"
	MsgVerdict = "verdict"
	MsgNotice  = "notice"
	MsgHold    = "hold"
	MsgHeld    = "held"
	MsgRelease = "release"
)

// Msg is one frame: a type and the body that type carries. Frames are a
// 4-byte big-endian length followed by that many bytes of JSON.
type Msg struct {
	Type    string   `json:"t"`
	Hello   *Hello   `json:"hello,omitempty"`
	Welcome *Welcome `json:"welcome,omitempty"`
	Exec    *Exec    `json:"exec,omitempty"`
	Out     *Out     `json:"out,omitempty"`
	Exit    *Exit    `json:"exit,omitempty"`
	Cancel  *Cancel  `json:"cancel,omitempty"`
	Check   *Check   `json:"check,omitempty"`
	Verdict *Verdict `json:"verdict,omitempty"`
	Notice  *Notice  `json:"notice,omitempty"`
	Held    *Held    `json:"held,omitempty"`
}

// Hello is the supervisor's first frame.
type Hello struct {
	Version int `json:"version"`
	PID     int `json:"pid"` // in the sandbox: 1
	UID     int `json:"uid"`
}

// Welcome answers Hello; until it arrives the supervisor runs nothing.
type Welcome struct {
	Version int `json:"version"`
	// NProc is the sandbox's process limit, so the supervisor can report
	// a call that reached it.
	NProc int `json:"nproc,omitempty"`
	// Identify names programs (git, curl, python3, …) whose copies the
	// supervisor must recognise: it hashes each as found on the sandbox's
	// PATH (and git's exec path) at start, and an exec of a file on a
	// writable file system with the same content is reported under the
	// program's name (Check.Identity).
	Identify []string `json:"identify,omitempty"`
}

// Exec asks the supervisor to run one tool call's command.
type Exec struct {
	ID     uint64   `json:"id"`
	CallID string   `json:"call_id,omitempty"`
	Argv   []string `json:"argv"`
	Cwd    string   `json:"cwd"`
	// Env is added to the sandbox's own environment (KEY=VALUE).
	Env      []string `json:"env,omitempty"`
	Stdin    []byte   `json:"stdin,omitempty"`
	HasStdin bool     `json:"has_stdin,omitempty"`
	// TimeoutMS kills the call's whole process tree when it runs longer.
	TimeoutMS int64 `json:"timeout_ms"`
	// OutputLimit is how many bytes of each stream come back; the length
	// and sha256 of the whole stream always do.
	OutputLimit int `json:"output_limit"`
	// CPUSeconds is the call's RLIMIT_CPU (0: none); the sandbox's own is
	// unlimited so the supervisor is not bound by it.
	CPUSeconds uint64 `json:"cpu_seconds,omitempty"`
	// Background lets processes outlive the call; they stay traced and
	// their execs keep the call's id. Otherwise they are killed when the
	// call's first process exits.
	Background bool `json:"background,omitempty"`
	// Untraced runs the command without ptrace: nothing it starts is
	// checked. It exists only to measure the price of tracing; the runner
	// never sets it.
	Untraced bool `json:"untraced,omitempty"`
	// PtraceOnly follows every process and stops at every exec, as a
	// traced call does, but lets each run at once without reading or
	// checking anything: the kernel's share of the price of tracing.
	// Benchmarks only, like Untraced.
	PtraceOnly bool `json:"ptrace_only,omitempty"`
}

// Out is a piece of a call's output, within its OutputLimit.
type Out struct {
	ID     uint64 `json:"id"`
	Stream int    `json:"stream"` // 1 stdout, 2 stderr
	Data   []byte `json:"data"`
}

// Exit is how a call ended.
type Exit struct {
	ID       uint64 `json:"id"`
	ExitCode int    `json:"exit_code"` // 128+n after signal n; -1 when none
	Signal   int    `json:"signal,omitempty"`
	// DurationUS is from the fork to the first process's exit.
	DurationUS int64 `json:"duration_us"`
	UserUS     int64 `json:"user_us"`
	SystemUS   int64 `json:"system_us"`
	MaxRSSKB   int64 `json:"max_rss_kb"`
	// Killed says why the supervisor killed the call: timeout, cancelled,
	// exec_denied; empty when it ended by itself.
	Killed string `json:"killed,omitempty"`
	// Leftovers is how many processes were killed because they outlived
	// the call.
	Leftovers int `json:"leftovers,omitempty"`
	// PidsLimit is set when the call's processes reached the sandbox's
	// process limit.
	PidsLimit bool         `json:"pids_limit,omitempty"`
	Stdout    StreamSum    `json:"stdout"`
	Stderr    StreamSum    `json:"stderr"`
	Denied    []DeniedExec `json:"denied,omitempty"`
	// Error is set when the command could not be started at all.
	Error string `json:"error,omitempty"`
}

// StreamSum is a whole output stream's length and sha256.
type StreamSum struct {
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
}

// DeniedExec is an exec the runner refused during a call.
type DeniedExec struct {
	PID    int      `json:"pid"`
	Argv   []string `json:"argv"`
	Reason string   `json:"reason"`
}

// Cancel kills a running call's process tree.
type Cancel struct {
	ID uint64 `json:"id"`
}

// Check asks the runner to rule on one exec. The process is stopped at the
// exec, before its first instruction, until the verdict arrives.
type Check struct {
	ID     uint64   `json:"id"`
	ExecID uint64   `json:"exec_id"` // the call (Exec.ID) the process belongs to
	CallID string   `json:"call_id,omitempty"`
	PID    int      `json:"pid"`
	PPID   int      `json:"ppid"`
	Argv   []string `json:"argv"`
	// ArgvTruncated: the command line was longer than the supervisor reads.
	ArgvTruncated bool   `json:"argv_truncated,omitempty"`
	Exe           string `json:"exe"`
	Cwd           string `json:"cwd"`
	// Identity is the program an executable on a writable file system is
	// a byte-for-byte copy of (see Welcome.Identify); "" when none. An
	// executable on the read-only image is what its path says.
	Identity string `json:"identity,omitempty"`
	// Recorded: the same exec (argv, executable, cwd) was allowed earlier
	// in this call with a verdict the runner marked reusable, so the
	// program runs at once; the runner only records it and does not
	// answer. Reason and Rule are that verdict's.
	Recorded bool   `json:"recorded,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Rule     string `json:"rule,omitempty"`
	// Root is the call's own first program; Background a process that
	// outlived its call.
	Root       bool `json:"root,omitempty"`
	Background bool `json:"background,omitempty"`
}

// Verdict answers a Check: run the program, or kill it before it runs.
type Verdict struct {
	ID     uint64 `json:"id"`
	Allow  bool   `json:"allow"`
	Reason string `json:"reason,omitempty"`
	Rule   string `json:"rule,omitempty"`
	// Reuse: the policy alone allowed this exact exec (no approval, no
	// session state), so the same argv, executable and cwd may run again
	// in this call without asking; it is still recorded (Check.Recorded).
	Reuse bool `json:"reuse,omitempty"`
}

// Notice kinds.
const (
	NoticeLeftover   = "leftover"   // processes killed when their call ended
	NoticeSupervisor = "supervisor" // the supervisor hit an internal failure
)

// Notice tells the runner of something it did not ask about.
type Notice struct {
	Kind   string   `json:"kind"`
	ExecID uint64   `json:"exec_id,omitempty"`
	CallID string   `json:"call_id,omitempty"`
	PID    int      `json:"pid,omitempty"`
	Argv   []string `json:"argv,omitempty"`
	Count  int      `json:"count,omitempty"`
	Detail string   `json:"detail"`
}

// Held answers hold: how many processes are frozen.
type Held struct {
	Frozen int `json:"frozen"`
}

// ErrFrame: a frame was malformed or too large.
var ErrFrame = errors.New("supervisor: bad frame")

// wire reads and writes frames; writes are serialized.
type wire struct {
	r   *bufio.Reader
	wmu sync.Mutex
	w   io.Writer
	buf []byte
}

func newWire(rw io.ReadWriter) *wire {
	return &wire{r: bufio.NewReaderSize(rw, 64<<10), w: rw}
}

// read returns the next frame.
func (w *wire) read() (*Msg, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(w.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxFrame {
		return nil, fmt.Errorf("%w: length %d", ErrFrame, n)
	}
	if cap(w.buf) < int(n) {
		w.buf = make([]byte, n)
	}
	b := w.buf[:n]
	if _, err := io.ReadFull(w.r, b); err != nil {
		return nil, err
	}
	m := new(Msg)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFrame, err)
	}
	if m.Type == "" {
		return nil, fmt.Errorf("%w: no type", ErrFrame)
	}
	return m, nil
}

// write sends one frame.
func (w *wire) write(m *Msg) error { return w.writeBatch([]*Msg{m}) }

// writeBatch sends frames in one write, in order.
func (w *wire) writeBatch(ms []*Msg) error {
	var out []byte
	for _, m := range ms {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if len(b) > MaxFrame {
			return fmt.Errorf("%w: %d bytes to send", ErrFrame, len(b))
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	w.wmu.Lock()
	defer w.wmu.Unlock()
	_, err := w.w.Write(out)
	return err
}
