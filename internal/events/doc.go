// Package events defines the audit event model: the envelope and its typed
// payloads, snowflake event IDs, the canonical encoding, the per-emitter hash
// chain and its verifier, and validation against the embedded JSON Schemas.
//
// An emitter builds an event, stamps it on its chain and encodes its
// canonical bytes:
//
//	env, err := events.New(events.ToolCallRequested{...}, events.WithIDs(ids), ...)
//	err = chain.Stamp(env)          // seq, prev_hash, hash; validates
//	wire, err := events.Marshal(env) // canonical bytes, hash included
//
// A reader decodes and validates bytes with Decode, and checks chains with
// VerifyChain or a Verifier.
//
// The package does no I/O: package eventlog carries events to and from
// Kafka.
package events
