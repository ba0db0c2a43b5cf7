// Package events defines the audit event model: the envelope and its typed
// payloads, snowflake event IDs, the canonical encoding, the per-emitter hash
// chain and its verifier, and validation against the embedded JSON Schemas.
//
// A producer builds an event, stamps it on its chain and sends its canonical
// bytes:
//
//	env, err := events.New(events.ToolCallRequested{...}, events.WithIDs(ids), ...)
//	err = chain.Stamp(env)          // seq, prev_hash, hash; validates
//	wire, err := events.Marshal(env) // canonical bytes, hash included
//
// A consumer decodes and validates bytes with Decode, and checks chains with
// VerifyChain or a Verifier.
package events
