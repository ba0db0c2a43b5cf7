// Package supervisor runs and watches every process inside a sandbox.
//
// The supervisor is the sandbox container's PID 1: a static binary from
// this repository (cmd/sandbox-supervisor), mounted read-only. At start it
// connects to the runner over a per-session Unix socket bind-mounted into
// the container, says hello, and waits for the runner's welcome. From then
// on the runner sends it tool calls (argv, cwd, env, stdin, time-out,
// output limit) and it runs them; there is no podman exec per call.
//
// Every process a call starts is traced with ptrace (TRACEEXEC, TRACEFORK,
// TRACEVFORK, TRACECLONE and EXITKILL). At each exec the new program is
// stopped before its first instruction and the supervisor asks the runner
// for a verdict on the real argv, executable and cwd read from /proc: allow
// resumes it, deny kills it, and an ask keeps it stopped until the runner
// has a signed decision. A call's time-out or cancellation kills every
// process of its tree, wherever setsid or a double fork put it; when the
// call's first process exits its leftovers are killed too, unless the call
// allows background processes, which then stay traced under its id. A hold
// stops every traced process until the release.
//
// Speed: the tracer keeps one CPU and resumes the processes it stops on
// it, so a stop costs a switch on one CPU rather than two cross-CPU
// wake-ups; a process that stops stopping gets its CPUs back (affinity.go).
//
// Fail closed: the supervisor is not dumpable, so nothing in the sandbox
// can ptrace it or read its memory; as PID 1 of the container's PID
// namespace it ignores signals from inside; when the runner's end of the
// socket closes it kills every process and exits, which stops the
// container; and when it dies, EXITKILL kills every process it traced.
//
// The wire protocol (see Msg) is versioned frames of JSON, each a 4-byte
// big-endian length and the body. The same package holds the runner's end
// (Listen, Conn) so both sides share one definition.
package supervisor
