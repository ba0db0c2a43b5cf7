// Package detect evaluates detection rules over the audit event stream.
//
// Rules are YAML documents in a directory (see Load). A stream rule has a
// CEL match over one event, typed from the event schemas so that a misspelt
// field is a load error, and optionally a sliding window (count or distinct
// count per group) or a sequence of matches within a time bound. Matches go
// through dedup, which counts what it suppresses, and become Alerts that an
// AlertSink turns into alert.raised (and session.held) events. SQL rules are
// ClickHouse queries run on a schedule through a Querier.
//
// All state (windows, sequences, dedup, chain positions) is keyed by event
// time, never the wall clock, so replays and rule tests are deterministic,
// and it can be exported with Engine.Snapshot and restored with
// Engine.Restore.
package detect
