// Package detect evaluates detection rules over the audit event stream.
//
// Rules are YAML documents in a directory (see Load). A stream rule has a
// CEL match over one event, typed from the event schemas so that a misspelt
// field is a load error, and optionally a sliding window (count or distinct
// count per group) or a sequence of matches within a time bound. Matches go
// through dedup, which counts what it suppresses, and become Alerts that an
// AlertSink turns into alert.raised (and session.held) events. SQL rules are
// ClickHouse queries run on a schedule through a Querier; chsql's guard
// checks them at load, and ClickHouseQuerier runs them on a read-only
// connection (readonly=2 forced on an account that could write).
//
// All state (windows, sequences, dedup, chain positions) is keyed by event
// time, never the wall clock, so replays and rule tests are deterministic,
// and it can be exported with Engine.Snapshot and restored with
// Engine.Restore.
//
// Service (`detect run`) runs the rules as a Kafka consumer group on the
// events and approvals topics. Each assigned partition has its own engine;
// rules whose groups are not sessions (Rule.Local is false) see their
// matches re-keyed by group through a repartition topic, so the alerts do
// not depend on how many instances share the work. A partition's state
// and the offset it covers are checkpointed together in one record of a
// compacted state topic; between checkpoints, the alerts a batch decides
// are written ahead of their events as small log records, so that a
// restart (clean or not) replays from the checkpoint without raising an
// alert twice or losing one. Replay (`detect replay`) runs the rules over
// events stored in ClickHouse; Bench (`detect bench`) measures alert
// latency on a real broker.
//
// The guarantee with several instances in one group, any of which may be
// killed: every alert a single instance would raise over the same events
// is written exactly once, as one alert.raised record on the events topic
// (and its session.held or approval.requested once on the approvals
// topic), not merely once after deduplication downstream. Alert event ids
// are snowflakes drawn when the alert is decided, not derived from it;
// what prevents a second copy is, per partition: the checkpoint (state
// and offset in one record), the log record written before a batch's
// alerts (a replay up to its offset raises those alerts again and drops
// them, matched by rule, group, counts, last event and time), and a scan
// of the topics for the outbox events a dead owner may have written
// before writing them again. Re-forwarded matches are dropped by source
// offset on the repartition side. It holds as long as two conditions do:
//   - each instance has its own NodeID (ids drawn from the runner id
//     collide one time in twenty per pair, and then two alerts share an
//     event id; set --node-id per instance, as for --instance-id);
//   - a partition has one writer at a time: an instance that lost its
//     partitions without dying (paused past its session timeout) is not
//     fenced and may still write what it had decided; a killed one writes
//     nothing more.
//
// With InstanceID (static membership) a restarted instance gets its
// partitions back at once; without it, or when it does not come back, the
// others take them once SessionTimeout passes, and alerts due on them wait
// that long. internal/detect's TestServiceScaleOutJoin and
// TestServiceKillOneOfTwo, and internal/faults' TestFaultDetectKillOneOfTwo
// (SIGKILL of the real binary), check this on six-partition topics.
//
// WithOverrides tunes a loaded rule set from an override file (switch a
// rule on or off, change its numbers, add exceptions) without copying the
// rules; ImportSigmaCommand converts Sigma rules into rules with generated
// tests, refusing by name what it cannot convert faithfully; and
// RuleReference renders the rule language reference from the loader's own
// types (`detect docs`, docs/rules.md).
package detect
