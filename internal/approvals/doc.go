// Package approvals is the approvals service: it decides who may answer an approval request, records the answer as a signed decision, and serves the inbox where approvers give it.
//
// Its parts:
//
//   - State (state.go) is the approval state machine, a fold over the
//     audit.approvals topic: approval.requested opens a request,
//     approval.decided answers it (first valid decision wins; later ones are
//     kept in the request's history with the reason they were rejected),
//     session.held and session.released track holds. The service rebuilds
//     its State from the topic on start; nothing else is the source of truth.
//   - Authenticator (auth.go) turns a bearer token (or a client
//     certificate) into an Approver, rate-limits failed attempts per remote
//     address, and authorizes an approver for a request: group policies,
//     no self-approval, and an optional two-person rule.
//   - Service (service.go, http.go, sse.go) is what `approve serve` runs: it
//     folds audit.approvals from the start with a plain consumer (no group,
//     so every instance rebuilds the whole state) and keeps following it;
//     answers requests with approval.decided events signed by package
//     signing, releases holds with session.released, and returns only once
//     its own fold has applied the event it wrote; expires unanswered
//     requests with signed "expired" decisions (never one answered with a
//     key it does not trust); follows audit.events from a window back for
//     alerts, the events requests are about, and each session's operator,
//     agent, tool calls and last actions, so a card shows what led to it;
//     and serves the JSON API, a server-sent event stream and the web inbox
//     (web/, embedded, no build step).
//   - TriageState (triage.go) folds analysts' alert triage and rule
//     suppressions; FollowTriage keeps one current for detect.
//   - Client (client.go) is the CLI's side of the API, and table.go its
//     tables.
//
// Signing and verifying decisions is package signing's job, so that a
// runner can verify one without linking this package; refusals here are
// *signing.Error values with this package's codes (errors.go) or signing's.
//
// Failed authentications are logged and counted
// (approvals_auth_failures_total) but are not events: no event type
// records them yet.
//
// # Several instances
//
// Any number of `approve serve` instances may run at once on the same
// topics, each with its own node id, emitter id and spool. They share
// nothing but Kafka, and need nothing else to agree:
//
//   - The log decides. audit.approvals is keyed by session, so a request's
//     approval.requested and every approval.decided for it are in one
//     partition, in one order. The first final decision in that order is
//     the effective one: every instance's fold (State.judge:
//     already_decided), a rebuild, the runner (its ReplayGuard claims the
//     first decision that verifies; the feed reads a partition in order)
//     and the approvals and unapproved_actions reports (first by
//     source_offset) take the same one. decided_at does
//     not decide: two instances sign on two clocks.
//   - Two clicks on two instances (or one approver in two tabs) can both
//     pass Authorize, each against its own fold, and both be written.
//     Decide answers only once its own event has come back through its
//     fold: 200 when it took effect, 409 already_decided naming the
//     winning decision when it lost. The losing event stays in the log and
//     in the request's history as a rejected attempt; it is a record, not
//     a decision. The inbox shows the refusal as a notice, and the request
//     under its final status with both attempts.
//   - Audit before answer: a 200 means Kafka acknowledged the decision
//     with acks=all, so killing the instance that gave it loses nothing;
//     the other instances fold it like any event. (When Kafka does not
//     acknowledge in time the answer is 503 and the event waits in that
//     instance's spool, sent by the next start on the same spool, and
//     effective only if nothing won meanwhile.) Requests live in the log,
//     not in an instance, so a dead instance's pending requests are
//     pending, and answerable, everywhere else.
//   - Expiry may run on every instance. Each writes a signed "expired"
//     decision for an overdue request its fold still has open; when two
//     do, or a decision signed before the deadline reaches the log after
//     an expiry, the first in the partition wins as above, everywhere.
//     The runner stops waiting at the deadline by its own clock whatever
//     the log says later.
//
// # Two-person approvals in events
//
// The event schema has one approver per approval.decided, so a request that
// needs two approvers is answered by two events:
//
//   - the first approver's approval is an approval.decided with decision
//     "approved" and reason_code "needs_approval" (a partial approval): it is
//     signed like any decision, but signing.KeySet.Verify rejects it with
//     signing.ErrPartial, so a runner never acts on it; the state stays
//     pending;
//   - the second, distinct approver's approval is the final approval.decided
//     with reason_code "approved" (scope once) or "approved_for_session"
//     (scope session). Its scope is never wider than any partial approval's.
//
// Because reason_code is covered by the signature, a partial approval cannot
// be turned into a final one without the service's key. A single denial by
// any authorized approver denies the request.
package approvals
