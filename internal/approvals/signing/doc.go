// Package signing proves what the approvals service decided: it signs approval decisions and triage events with the service's Ed25519 key and verifies them where they are acted on.
//
// The signature over an approval.decided covers the decision and the request
// it answers (approval id, session, request event, rule, expiry), so write
// access to Kafka is not enough to forge, move or replay an approval.
// KeySet.Verify checks one decision; a ReplayGuard lets a runner act on each
// approval at most once. Keys live in files (LoadKeySet, LoadSigner,
// WriteKeyFiles) so a runner trusts the service's public keys without
// talking to it.
//
// A partial approval of a two-person request is signed like any decision,
// but Verify refuses it with ErrPartial, so a runner never acts on it.
//
// Every refusal is an *Error carrying a Code and unwrapping to that code's
// sentinel error (errors.Is); the approvals service declares its own codes
// and sentinels with NewSentinel, so one CodeOf reads them all.
// This package does not import the service, its inbox or its client: a
// runner links only what it needs to check a decision.
package signing
