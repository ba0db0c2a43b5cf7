// Package approvals decides who may answer an approval request and proves the answer with a signature.
//
// The package has three parts, each usable on its own:
//
//   - State (state.go) is the approval state machine, a fold over the
//     audit.approvals topic: approval.requested opens a request,
//     approval.decided answers it (first valid decision wins; later ones are
//     kept in the request's history with the reason they were rejected),
//     session.held and session.released track holds. The service rebuilds
//     its State from the topic on start; nothing else is the source of truth.
//   - Signer, KeySet and ReplayGuard (sign.go, keys.go) sign a decision with
//     the service's Ed25519 key and verify it where it is acted on: the
//     signature covers the decision and the request it answers (approval id,
//     session, request event, rule, expiry), so write access to Kafka is not
//     enough to forge, move or replay an approval.
//   - Authenticator (auth.go) turns a bearer token (or a client
//     certificate) into an Approver, rate-limits failed attempts per remote
//     address, and authorizes an approver for a request: group policies,
//     no self-approval, and an optional two-person rule.
//
// On top of them, Service (service.go, http.go, sse.go) is the approvals
// service behind `approve serve`: it folds audit.approvals from the start
// with a plain consumer (no group, so every instance rebuilds the whole
// state) and keeps following it; answers requests with signed
// approval.decided events, releases holds with session.released, and
// returns only once its own fold has applied the event it wrote; expires
// unanswered requests with signed "expired" decisions (never one answered
// with a key it does not trust); follows audit.events from a window back
// for alerts, the events requests are about, and each session's operator,
// agent, tool calls and last actions, so a card shows what led to it
// (preview.go builds the content and diff of a file write, which only the
// runner can read); and serves the JSON API, a server-sent event stream and the web
// inbox (web/, embedded, no build step). Client (client.go) is the CLI's
// side of the API.
//
// Failed authentications are logged and counted
// (approvals_auth_failures_total) but are not events: no event type
// records them yet.
//
// # Two-person approvals in events
//
// The event schema has one approver per approval.decided, so a request that
// needs two approvers is answered by two events:
//
//   - the first approver's approval is an approval.decided with decision
//     "approved" and reason_code "needs_approval" (a partial approval): it is
//     signed like any decision, but KeySet.Verify rejects it with
//     ErrPartial, so a runner never acts on it; the state stays pending;
//   - the second, distinct approver's approval is the final approval.decided
//     with reason_code "approved" (scope once) or "approved_for_session"
//     (scope session). Its scope is never wider than any partial approval's.
//
// Because reason_code is covered by the signature, a partial approval cannot
// be turned into a final one without the service's key. A single denial by
// any authorized approver denies the request.
package approvals
