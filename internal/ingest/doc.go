// Package ingest loads audit events from Kafka into ClickHouse.
//
// Run joins a consumer group over the events and approvals topics and
// moves every record through four stages:
//
//  1. poll: records are fetched in polls of up to Config.BatchRows;
//  2. decode: workers (Config.Workers) re-validate each record with
//     events.Decode, flatten it with store.RowFromEvent and check that its
//     content matches its own hash; these run in parallel;
//  3. batch: in consumption order, valid rows are gathered into a batch
//     that is cut at Config.BatchRows rows, Config.BatchBytes record bytes
//     or Config.BatchWait after its first record, whichever comes first;
//     invalid records (and events that reuse a recently seen event_id
//     with other content) become dead letters. A batch is one INSERT
//     (store.EventStream): its rows are streamed to ClickHouse in blocks
//     while it fills, and the server makes one part of them;
//  4. flush: one batch at a time, in order, while the next one streams:
//     the batch's insert completes; the dead letters are produced to the DLQ topic (acks=all)
//     and inserted into dlq_events; parked chain events and suspects are
//     settled against storage and breaks inserted into chain_breaks; only
//     then are the batch's offsets committed. (The batcher feeds each
//     chunk's chain links to the checker as the batch streams; what needs
//     storage, and the breaks found, wait for the batch's insert.)
//
// Fetching a topic pauses while its records are more than a second
// (record time) ahead of the other topic's still-lagging partitions, so a
// chain's events from both topics arrive close together.
//
// A batch keeps no records: each is given back to the Kafka client once
// its row is in the insert. When an events insert fails, the session ends
// and, after a back-off, a new one (a new client and chain checker) reads
// again from the committed offsets, as a restarted process would; the
// attempts are counted as retries of insert_events and /healthz answers
// 503 until an insert is accepted. Every other ClickHouse or Kafka write
// is retried in place with back-off until it succeeds or the process is
// told to stop. Nothing is committed before the writes it covers were
// accepted, so a crash at any point redelivers
// instead of losing, and redelivered events collapse in ClickHouse
// (ReplacingMergeTree keyed by event_id and hash: query with FINAL).
//
// # Chain checking
//
// A chain (session_id, runner_id) may travel on two topics (a runner's
// approval events go to the approvals topic), so events of one chain do
// not arrive in seq order. The checker therefore parks an event whose
// predecessor has not arrived yet. A parked event is resolved when its
// predecessor arrives, or after Config.ChainGrace once the partition of
// the other topic that carries the chain (the same-numbered one: both
// topics are keyed by session and range-assigned) was read past the
// event's record time, or to its end: then the predecessor (seq-1) is
// looked up in ClickHouse (it is there when an earlier run ingested it),
// and if it is missing a gap is recorded. However far one topic is read
// behind the other, a predecessor on its way is not called missing. (With
// topics of different partition counts the consumer must instead be
// caught up, or ten graces pass.) A chain first seen at seq > 1 (for
// example after a restart) is resumed the same way, from its stored
// predecessor, so a restart does not produce false breaks. Offsets are
// committed only below the oldest parked event of each partition, so
// parked events are redelivered, not forgotten, after a restart. When
// partitions are revoked (a rebalance), everything polled before is
// written and committed, parked events are resumed from storage where
// they can be and otherwise left uncommitted, not called gaps, and the
// checker forgets the partitions' chains: their next owner, this member
// or another, reads the parked events again and resumes the chains from
// storage. The content check (hash = sha256(prev_hash || canonical event))
// runs in the decode workers with events.ComputeHash; the checker keeps
// only (seq, prev_hash, hash, id) per parked event. Kinds recorded:
// gap, reorder, edit, wrong_prev, duplicate_seq, bad_start. An identical
// event delivered twice is a redelivery, counted but not a break.
package ingest
