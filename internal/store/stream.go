package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Stream sizes: a data block is sent when this many rows or bytes are
// pending. The server squashes the blocks of one INSERT into parts of up
// to min_insert_block_size_rows/bytes (1M rows, 256 MiB by default), so
// one stream makes one part however small its blocks are, while the
// client holds only one block's columns at a time. The block size is the
// client's memory (about 1.4 KB a row, twice that while a column grows):
// the server's CPU for one insert of 300k rows was the same in blocks of
// 4096 and of 100k rows.
const (
	streamBlockRows  = 2048
	streamBlockBytes = 4 << 20
)

// EventStream is one INSERT into events whose rows are sent block by
// block as they are written. The rows become visible, and are accepted,
// only when Close returns nil: an INSERT that fails or is aborted part way
// writes nothing (its blocks are below the server's squashing size), and
// a retry writes them again (redeliveries collapse under FINAL anyway).
//
// One part per stream instead of one per small batch: on 18.16 a part of
// this wide table costs the server about 0.1 CPU-second to write and
// merge, so 10k-row inserts spent three times the server CPU of 100k-row
// ones for the same rows.
type EventStream struct {
	batch   driver.Batch
	rows    int // accepted by Write, dropped rows excluded
	pending int // rows appended since the last block was sent
	bytes   int // bytes appended since the last block was sent
	now     time.Time
	views   []string
	err     error
}

// OpenEventStream starts an INSERT into events. ctx bounds the whole
// stream, up to Close.
func (s *Store) OpenEventStream(ctx context.Context) (*EventStream, error) {
	q := "INSERT INTO " + s.db + ".events (" + strings.Join(eventColumns, ", ") + ")"
	batch, err := s.conn.PrepareBatch(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("store: insert events: %w", err)
	}
	return &EventStream{batch: batch, now: time.Now().UTC()}, nil
}

// Rows returns the rows written so far.
func (w *EventStream) Rows() int { return w.rows }

// Write appends b's kept rows to the stream; a block is sent to the
// server when enough rows are pending. b may be reused once Write
// returns. After an error the stream is aborted and every later call
// returns that error.
func (w *EventStream) Write(b *EventBlock) error {
	if w.err != nil {
		return w.err
	}
	if b.Rows() == 0 {
		return nil
	}
	if bs := b.n; bs > 0 {
		for ci, d := range eventColDefs {
			if d.kind == kString {
				bytesPerRow[ci].Store(int64(len(b.cols[ci].buf) / bs))
			}
		}
	}
	for ci := range eventColDefs {
		if err := w.batch.Column(ci).Append(b.column(ci, w.now, &w.views)); err != nil {
			return w.fail(fmt.Errorf("store: insert events column %s: %w", eventColumns[ci], err))
		}
	}
	w.rows += b.Rows()
	w.pending += b.Rows()
	w.bytes += b.Bytes()
	if w.pending >= streamBlockRows || w.bytes >= streamBlockBytes {
		if err := w.batch.Flush(); err != nil {
			return w.fail(fmt.Errorf("store: insert events: %w", err))
		}
		w.pending, w.bytes = 0, 0
	}
	return nil
}

// Close sends what is pending and ends the INSERT; nil means the server
// accepted every row written.
func (w *EventStream) Close() error {
	if w.err != nil {
		return w.err
	}
	if err := w.batch.Send(); err != nil {
		w.err = fmt.Errorf("store: insert events: %w", err)
		return w.err
	}
	w.err = errStreamClosed
	return nil
}

// Abort ends the INSERT without writing anything not yet accepted.
func (w *EventStream) Abort() {
	if w.err == nil {
		w.fail(errStreamClosed)
	}
}

var errStreamClosed = fmt.Errorf("store: insert events: stream closed")

func (w *EventStream) fail(err error) error {
	w.err = err
	w.batch.Abort()
	return err
}
