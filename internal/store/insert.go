package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// MaxDLQRaw bounds the raw bytes kept per dead-lettered record; its full
// length and sha256 are kept beside the cut copy.
const MaxDLQRaw = 64 << 10

// DLQRow is one record the ingester could not accept.
type DLQRow struct {
	ReceivedAt time.Time // zero: the insert time
	Topic      string
	Partition  int32
	Offset     int64
	Key        string
	// EventID and EventType as far as they could be read; may be empty.
	EventID   string
	EventType string
	// Reason says what was wrong; ReasonCode is machine-readable
	// (for example a validation error code).
	Reason     string
	ReasonCode string
	// ErrorPointer is the JSON pointer of the offending field, if known.
	ErrorPointer string
	// Raw is the whole record value; InsertDLQ stores at most MaxDLQRaw
	// bytes of it plus its full length and sha256.
	Raw []byte
}

// Break kinds of chain_breaks.kind.
const (
	BreakGap          = "gap"           // seq skipped ahead
	BreakReorder      = "reorder"       // seq went back
	BreakEdit         = "edit"          // hash does not match the content
	BreakWrongPrev    = "wrong_prev"    // prev_hash is not the previous hash
	BreakDuplicateSeq = "duplicate_seq" // a second, different event with a seen seq
)

// ChainBreak is one anomaly in a session's hash chain found at ingest.
type ChainBreak struct {
	DetectedAt       time.Time // zero: the insert time
	EventTime        time.Time // the offending event's time; partitions the row
	Tenant           string
	SessionID        string
	RunnerID         string
	Kind             string
	EventID          uint64
	ExpectedSeq      uint64
	GotSeq           uint64
	ExpectedPrevHash string
	GotPrevHash      string
	Detail           string
	Source           Source
}

// InsertEvents writes rows in one batch. Redelivered events collapse into
// one row at merge time (query with FINAL).
func (s *Store) InsertEvents(ctx context.Context, rows []EventRow) error {
	if len(rows) == 0 {
		return nil
	}
	b := NewEventBlock(len(rows))
	for i := range rows {
		b.Append(&rows[i])
	}
	return s.InsertEventBlocks(ctx, b)
}

var dlqColumns = []string{
	"received_at", "topic", "partition", "offset", "key", "event_id", "event_type",
	"reason", "reason_code", "error_pointer", "raw", "raw_length", "raw_sha256",
}

// InsertDLQ writes dead-lettered records in one batch.
func (s *Store) InsertDLQ(ctx context.Context, rows []DLQRow) error {
	if len(rows) == 0 {
		return nil
	}
	now := time.Now().UTC()
	return s.insert(ctx, "dlq_events", dlqColumns, len(rows), func(i int) []any {
		r := &rows[i]
		at := r.ReceivedAt
		if at.IsZero() {
			at = now
		}
		sum := sha256.Sum256(r.Raw)
		raw := bound(string(r.Raw), MaxDLQRaw)
		return []any{dt(at), r.Topic, r.Partition, r.Offset, r.Key, r.EventID, r.EventType,
			r.Reason, r.ReasonCode, r.ErrorPointer, raw, uint64(len(r.Raw)), hex.EncodeToString(sum[:])}
	})
}

var chainBreakColumns = []string{
	"detected_at", "event_time", "tenant", "session_id", "runner_id", "kind", "event_id",
	"expected_seq", "got_seq", "expected_prev_hash", "got_prev_hash", "detail",
	"source_topic", "source_partition", "source_offset",
}

// InsertChainBreaks writes chain anomalies in one batch.
func (s *Store) InsertChainBreaks(ctx context.Context, rows []ChainBreak) error {
	if len(rows) == 0 {
		return nil
	}
	now := time.Now().UTC()
	return s.insert(ctx, "chain_breaks", chainBreakColumns, len(rows), func(i int) []any {
		r := &rows[i]
		at := r.DetectedAt
		if at.IsZero() {
			at = now
		}
		return []any{dt(at), dt(r.EventTime), r.Tenant, r.SessionID, r.RunnerID, r.Kind, r.EventID,
			r.ExpectedSeq, r.GotSeq, r.ExpectedPrevHash, r.GotPrevHash, r.Detail,
			r.Source.Topic, r.Source.Partition, r.Source.Offset}
	})
}

// insert sends n rows through PrepareBatch with an explicit column list:
// against 18.16 an INSERT … VALUES through Exec hangs.
func (s *Store) insert(ctx context.Context, table string, cols []string, n int, row func(int) []any) error {
	q := "INSERT INTO " + s.db + "." + table + " (" + strings.Join(cols, ", ") + ")"
	b, err := s.conn.PrepareBatch(ctx, q)
	if err != nil {
		return fmt.Errorf("store: insert %s: %w", table, err)
	}
	for i := 0; i < n; i++ {
		if err := b.Append(row(i)...); err != nil {
			b.Abort()
			return fmt.Errorf("store: insert %s row %d: %w", table, i, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("store: insert %s: %w", table, err)
	}
	return nil
}
