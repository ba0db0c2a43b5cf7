package ingest

import (
	"encoding/json"
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
)

// Reason codes of dead letters that are not schema validation codes
// (those are events.Code*: syntax, type, required, unknown_event_type,
// unsupported_schema_version, too_large, …).
const (
	// ReasonDuplicateID: the event reuses an event_id seen within the
	// dedup window with other content. The first one seen is kept.
	ReasonDuplicateID = "duplicate_event_id"
	// ReasonUnmappable: valid against the schema but not mappable to a row
	// (for example a malformed id in the payload).
	ReasonUnmappable = "unmappable"
	// ReasonOutOfRange: a time the events table cannot hold (after 2105).
	ReasonOutOfRange = "out_of_range"
)

// item is one record after decoding: a row in its chunk's block with its
// chain link, or a dead letter.
type item struct {
	rec      *kgo.Record
	blockRow int // row in the chunk's block; -1 for a dead letter
	eventID  uint64
	typ      string
	link     link
	fp       uint64 // fingerprint of the raw bytes, for the dedup window
	dead     *dead
}

// dead is a record that goes to the DLQ topic and table.
type dead struct {
	rec *kgo.Record
	row store.DLQRow
}

var fpSeed = maphash.MakeSeed()

// maxTime is the last second a DateTime column holds (2106-02-07), less a
// day of margin.
var maxTime = time.Unix(1<<32-1-86400, 0)

func (in *ingester) decode(c *chunk) {
	defer close(c.done)
	c.block = getBlock(len(c.recs))
	// One row for the chunk: Append copies it, and a row per record
	// (it escapes through Append) was a kilobyte of garbage each.
	var row store.EventRow
	// One envelope for the chunk: DecodeInto fills it with strings that
	// point into the record, so nothing below may keep one of them
	// without copying it (the block, the link and dead letters copy).
	env := new(events.Envelope)
	for i, r := range c.recs {
		it := &c.items[i]
		it.rec, it.blockRow = r, -1
		err := events.DecodeInto(env, r.Value)
		if err != nil {
			it.dead = deadFromErr(r, err)
			continue
		}
		src := store.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
		row, err = store.RowFromEvent(env, r.Value, src)
		if err != nil {
			own := ownRecord(r)
			it.dead = &dead{rec: own, row: dlqRow(own, strings.Clone(env.EventType), strings.Clone(env.EventID), ReasonUnmappable, "", err.Error())}
			continue
		}
		if p, ok := outOfRange(&row); !ok {
			own := ownRecord(r)
			it.dead = &dead{rec: own, row: dlqRow(own, strings.Clone(env.EventType), strings.Clone(env.EventID), ReasonOutOfRange, p, p+" is after 2105; the events table cannot hold it")}
			continue
		}
		c.block.Append(&row)
		it.blockRow = c.block.Len() - 1
		it.eventID = row.EventID
		it.typ = eventTypes[env.EventType]
		it.fp = maphash.Bytes(fpSeed, r.Value)
		// One copy of the link's strings: the decoded strings share the
		// whole record, which a link must not keep alive, and one
		// allocation instead of five is less for the collector.
		var sb strings.Builder
		sb.Grow(len(env.SessionID) + len(env.RunnerID) + len(env.PrevHash) + len(env.Hash) + len(env.Tenant))
		for _, s := range []string{env.SessionID, env.RunnerID, env.PrevHash, env.Hash, env.Tenant} {
			sb.WriteString(s)
		}
		all := sb.String()
		cut := func(n int) string { s := all[:n]; all = all[n:]; return s }
		it.link = link{
			key:     events.ChainKey{SessionID: cut(len(env.SessionID)), RunnerID: cut(len(env.RunnerID))},
			seq:     env.Seq,
			prev:    cut(len(env.PrevHash)),
			hash:    cut(len(env.Hash)),
			eventID: row.EventID,
			tenant:  cut(len(env.Tenant)),
			time:    env.EventTime,
			rts:     r.Timestamp.UnixMilli(),
			src:     src,
			editOK:  contentOK(r.Value, env),
		}
	}
}

// blocks recycles chunk blocks: their buffers are sized to a chunk of
// rows after the first few, so reuse spares the allocator and the
// collector most of the decode stage's garbage.
var blocks sync.Pool

func getBlock(rows int) *store.EventBlock {
	if b, ok := blocks.Get().(*store.EventBlock); ok {
		return b
	}
	return store.NewEventBlock(rows)
}

func putBlock(b *store.EventBlock) {
	b.Reset()
	blocks.Put(b)
}

// eventTypes interns event type names (a valid event has one of these).
var eventTypes = func() map[string]string {
	m := map[string]string{}
	for _, t := range events.EventTypes {
		m[t] = t
	}
	return m
}()

// outOfRange reports the first time of row a DateTime cannot hold.
func outOfRange(r *store.EventRow) (string, bool) {
	for _, t := range []struct {
		ptr string
		at  time.Time
	}{{"/event_time", r.EventTime}, {"/payload/expires_at", r.ExpiresAt}, {"/payload/decided_at", r.DecidedAt},
		{"/payload/first_seen", r.FirstSeen}, {"/payload/last_seen", r.LastSeen}} {
		if t.at.After(maxTime) {
			return t.ptr, false
		}
	}
	return "", true
}

func deadFromErr(r *kgo.Record, err error) *dead {
	r = ownRecord(r)
	code, ptr := "invalid", ""
	var ve *events.ValidationError
	if errors.As(err, &ve) {
		code, ptr = ve.Code, ve.Pointer
	}
	id, typ := peekIDs(r.Value)
	return &dead{rec: r, row: dlqRow(r, typ, id, code, ptr, err.Error())}
}

// peekIDs reads event_id and event_type from an invalid record as far as
// they can be read, for the DLQ row. Best effort: errors mean "unknown".
func peekIDs(b []byte) (id, typ string) {
	if len(b) > 64<<10 {
		return "", ""
	}
	var v struct {
		EventID   any `json:"event_id"`
		EventType any `json:"event_type"`
	}
	if json.Unmarshal(b, &v) != nil {
		return "", ""
	}
	s, _ := v.EventID.(string)
	t, _ := v.EventType.(string)
	return bound(s, 64), bound(t, 64)
}

func bound(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func dlqRow(r *kgo.Record, eventType, eventID, code, ptr, reason string) store.DLQRow {
	return store.DLQRow{
		ReceivedAt: time.Now().UTC(),
		Topic:      r.Topic, Partition: r.Partition, Offset: r.Offset,
		Key:       bound(string(r.Key), 256),
		EventID:   eventID,
		EventType: eventType,
		Reason:    bound(reason, 1024), ReasonCode: code, ErrorPointer: bound(ptr, 256),
		Raw: r.Value,
	}
}
