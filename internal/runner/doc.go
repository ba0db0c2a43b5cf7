// Package runner is the gateway between an agent and its sandbox: every tool call is recorded, decided, approved if it must be, and only then run.
//
// A Runner is one per process: it holds the audit producer (one chain per
// session under the runner's id), the tool-call policy, the sandbox client,
// the approval keys and the subscriber of the audit.approvals topic, which
// dispatches signed decisions to waiting calls by approval id and holds to
// sessions by session id.
//
// A Session owns one sandbox session. Session.Call runs one tool call:
//
//	tool_call.requested  Emit: acknowledged by Kafka before anything else
//	policy.decision      Emit: allow, ask or deny with a reason code
//	approval.requested   Emit on audit.approvals when the policy asks; the
//	                     call waits for a signed approval.decided (verified
//	                     with signing.KeySet and a ReplayGuard) or expires
//	policy.decision      Emit: the outcome of the approval (approved,
//	                     approved_for_session, approval_denied, approval_expired)
//	(exec in the sandbox)
//	tool_call.completed  EmitAfter: spooled if Kafka is down, never dropped
//
// When an Emit is not acknowledged the call is denied as audit_unavailable
// and nothing runs. A denial is a *DeniedError carrying the reason code; the
// MCP layer turns it into a tool error for the agent.
//
// Egress (NetpolEgress, on when the runner has an egress policy): each
// session gets an internal/netpol proxy on a Unix socket in a directory of
// its own; the sandbox's main process (PID 1) is the egress bridge, which
// forwards 127.0.0.1:3128 inside the container to that socket. Its
// net.egress events share the session's chain; an ask destination raises
// approval.requested (kind egress, under the egress policy) and waits for
// a signed approval.decided like a tool call, and a session-scoped approval
// is reused by the proxy for the same host and port only. Without an
// egress policy the sandbox has no network at all.
//
// The package declares what it needs from its neighbours as small
// interfaces (Emitter, Sandbox, Egress), so it can be tested with fakes and
// wired to internal/eventlog, internal/sandbox and internal/netpol.
package runner
