package query

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Break kinds verify reports beyond the chain breaks of package events
// (gap, edit, wrong_prev, bad_start).
const (
	// BreakUndecodable: the stored raw is not a valid event.
	BreakUndecodable = "undecodable"
	// BreakColumnMismatch: a typed column (event_id, hash, seq, session,
	// runner) disagrees with the stored raw: the row was edited.
	BreakColumnMismatch = "column_mismatch"
	// BreakDuplicateID: one event id with two different contents.
	BreakDuplicateID = "duplicate_id"
	// BreakDuplicateSeq: two different events with one seq in a chain.
	BreakDuplicateSeq = "duplicate_seq"
)

// Finding is one break verify found.
type Finding struct {
	Kind      string `json:"kind"`
	Tenant    string `json:"tenant"`
	SessionID string `json:"session_id"`
	RunnerID  string `json:"runner_id"`
	Seq       uint64 `json:"seq"`
	// EventID is the event at which the break shows; OtherEventID the
	// last good event before it, or the event it collides with.
	EventID      string `json:"event_id"`
	OtherEventID string `json:"other_event_id,omitempty"`
	Detail       string `json:"detail"`
}

// VerifyScope is what verify reads: one session, or every session with
// events in a period (whole sessions, so a chain is checked from seq 1).
type VerifyScope struct {
	SessionID string
	Period    Period
}

// VerifyReport is verify's result.
type VerifyReport struct {
	Rows     int // rows read
	Events   int // distinct events
	Chains   int
	Findings []Finding
	Elapsed  time.Duration
}

// stored is one row, checked for content when read; only what the chain
// walk needs is kept.
type stored struct {
	key       events.ChainKey
	tenant    string
	eventID   string
	seq       uint64
	prevHash  string
	hash      string // the row's hash column
	contentOK bool   // raw decodes, its hash recomputes and the columns agree
	rawSum    [32]byte
}

// Verify recomputes every chain in scope from the stored canonical events:
// each row's raw is decoded and validated, its hash recomputed and compared
// with the raw's own hash and the hash column, and each chain (session,
// emitter) is walked in seq order for gaps, wrong links and duplicates.
// Identical rows (a redelivery not yet merged) count once.
func (db *DB) Verify(ctx context.Context, scope VerifyScope) (*VerifyReport, error) {
	start := time.Now()
	sql := "SELECT event_id, tenant, session_id, runner_id, seq, hash, raw FROM events WHERE "
	var params []Param
	if scope.SessionID != "" {
		sql += "session_id = @session"
		params = []Param{{"session", scope.SessionID}}
	} else {
		sql += "session_id IN (SELECT session_id FROM events WHERE event_time >= @from AND event_time < @to)"
		params = []Param{{"from", scope.Period.From.UTC()}, {"to", scope.Period.To.UTC()}}
	}
	rep := &VerifyReport{}
	var recs []stored
	seen := map[[2]string]bool{} // (event_id, raw sha) already read
	var finds []Finding
	err := db.stream(ctx, sql, params, func(rows driver.Rows, _ func()) error {
		var (
			id                                    uint64
			tenant, session, runner, hash, rawStr string
			seq                                   uint64
		)
		for rows.Next() {
			if err := rows.Scan(&id, &tenant, &session, &runner, &seq, &hash, &rawStr); err != nil {
				return err
			}
			rep.Rows++
			r, f := check(id, tenant, session, runner, seq, hash, []byte(rawStr))
			k := [2]string{r.eventID + "/" + r.hash, string(r.rawSum[:])}
			if seen[k] {
				continue
			}
			seen[k] = true
			finds = append(finds, f...)
			recs = append(recs, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	finds = append(finds, walk(recs, rep)...)
	slices.SortStableFunc(finds, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.SessionID, b.SessionID),
			cmp.Compare(a.RunnerID, b.RunnerID), cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.EventID, b.EventID))
	})
	rep.Findings = finds
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// check verifies one row's content: the raw decodes and validates, its
// recomputed hash is its own hash, and the typed columns say the same.
func check(id uint64, tenant, session, runner string, seq uint64, hash string, raw []byte) (stored, []Finding) {
	r := stored{
		key: events.ChainKey{SessionID: session, RunnerID: runner}, tenant: tenant,
		eventID: strconv.FormatUint(id, 10), seq: seq, hash: hash,
	}
	r.rawSum = sum(raw)
	bad := func(kind, detail string) []Finding {
		return []Finding{{Kind: kind, Tenant: tenant, SessionID: session, RunnerID: runner, Seq: seq,
			EventID: r.eventID, Detail: detail}}
	}
	env, err := events.Decode(raw)
	if err != nil {
		return r, bad(BreakUndecodable, fmt.Sprintf("stored raw does not decode: %v", err))
	}
	r.prevHash = env.PrevHash
	got, err := events.ComputeHash(env)
	if err != nil {
		return r, bad(BreakUndecodable, fmt.Sprintf("hash cannot be computed: %v", err))
	}
	if got != env.Hash {
		return r, bad(string(events.BreakEdit), fmt.Sprintf("content hashes to %s, the event says %s", short(got), short(env.Hash)))
	}
	var diffs []string
	for _, d := range []struct{ name, col, raw string }{
		{"event_id", r.eventID, env.EventID},
		{"hash", hash, env.Hash},
		{"seq", strconv.FormatUint(seq, 10), strconv.FormatUint(env.Seq, 10)},
		{"session_id", session, env.SessionID},
		{"runner_id", runner, env.RunnerID},
		{"tenant", tenant, env.Tenant},
	} {
		if d.col != d.raw {
			diffs = append(diffs, fmt.Sprintf("%s column %q, raw %q", d.name, short(d.col), short(d.raw)))
		}
	}
	if len(diffs) > 0 {
		return r, bad(BreakColumnMismatch, fmt.Sprint(diffs))
	}
	r.contentOK = true
	return r, nil
}

// walk checks each chain's sequence and links. Rows are grouped by chain
// and seq; one event per seq continues the chain (the one whose content is
// good and whose prev_hash links, when there is a choice).
func walk(recs []stored, rep *VerifyReport) []Finding {
	var out []Finding
	byID := map[string][]int{}
	for i, r := range recs {
		byID[r.eventID] = append(byID[r.eventID], i)
	}
	rep.Events = len(byID)
	for id, idx := range byID {
		if len(idx) < 2 {
			continue
		}
		r := recs[idx[0]]
		var hashes []string
		for _, i := range idx {
			hashes = append(hashes, short(recs[i].hash))
		}
		out = append(out, Finding{Kind: BreakDuplicateID, Tenant: r.tenant, SessionID: r.key.SessionID,
			RunnerID: r.key.RunnerID, Seq: r.seq, EventID: id,
			Detail: fmt.Sprintf("%d rows with different content (hashes %v)", len(idx), hashes)})
	}

	chains := map[events.ChainKey][]stored{}
	for _, r := range recs {
		chains[r.key] = append(chains[r.key], r)
	}
	rep.Chains = len(chains)
	for key, rs := range chains {
		slices.SortFunc(rs, func(a, b stored) int {
			return cmp.Or(cmp.Compare(a.seq, b.seq), cmp.Compare(a.eventID, b.eventID))
		})
		finding := func(kind string, r stored, other, detail string) {
			out = append(out, Finding{Kind: kind, Tenant: r.tenant, SessionID: key.SessionID, RunnerID: key.RunnerID,
				Seq: r.seq, EventID: r.eventID, OtherEventID: other, Detail: detail})
		}
		var prev *stored
		for i := 0; i < len(rs); {
			j := i
			for j < len(rs) && rs[j].seq == rs[i].seq {
				j++
			}
			group := rs[i:j]
			k := j
			for k < len(rs) && rs[k].seq == rs[j].seq {
				k++
			}
			next := rs[j:k]
			i = j
			cur := pick(group, prev, next)
			if ids := distinctIDs(group); len(ids) > 1 {
				finding(BreakDuplicateSeq, cur, "", fmt.Sprintf("events %v all have seq %d", ids, cur.seq))
			}
			want := uint64(1)
			if prev != nil {
				want = prev.seq + 1
			}
			switch {
			case cur.seq > want:
				other := ""
				if prev != nil {
					other = prev.eventID
				}
				finding(string(events.BreakGap), cur, other, fmt.Sprintf("seq %s missing before this event", seqRange(want, cur.seq-1)))
			case cur.seq == 1 && cur.prevHash != events.GenesisHash && cur.contentOK:
				finding(string(events.BreakBadStart), cur, "", "seq 1 does not start from the genesis hash")
			case prev != nil && cur.contentOK && prev.contentOK && cur.prevHash != prev.hash:
				finding(string(events.BreakWrongPrev), cur, prev.eventID,
					fmt.Sprintf("prev_hash %s is not the hash %s of seq %d", short(cur.prevHash), short(prev.hash), prev.seq))
			}
			c := cur
			prev = &c
		}
	}
	return out
}

// pick chooses the event that continues the chain among rows sharing a
// seq: good content, linked to prev and linked to by the next seq's events
// (a forged copy with a recomputed hash links back but not forward).
func pick(group []stored, prev *stored, next []stored) stored {
	if len(group) == 1 {
		return group[0]
	}
	for _, r := range group {
		if r.contentOK && (prev == nil || r.prevHash == prev.hash) && slices.ContainsFunc(next, func(n stored) bool { return n.prevHash == r.hash }) {
			return r
		}
	}
	for _, r := range group {
		if r.contentOK && (prev == nil || r.prevHash == prev.hash) {
			return r
		}
	}
	for _, r := range group {
		if r.contentOK {
			return r
		}
	}
	return group[0]
}

func distinctIDs(group []stored) []string {
	var ids []string
	for _, r := range group {
		if !slices.Contains(ids, r.eventID) {
			ids = append(ids, r.eventID)
		}
	}
	return ids
}

func seqRange(a, b uint64) string {
	if a == b {
		return strconv.FormatUint(a, 10)
	}
	return fmt.Sprintf("%d-%d", a, b)
}

func short(h string) string {
	if len(h) > 16 {
		return h[:12] + "…"
	}
	return h
}

// FindingsResult renders findings as a Result for the output formats.
func FindingsResult(fs []Finding) *Result {
	res := &Result{Rows: [][]any{}}
	for _, n := range []string{"kind", "tenant", "session_id", "runner_id", "seq", "event_id", "other_event_id", "detail"} {
		t := "String"
		if n == "seq" {
			t = "UInt64"
		}
		res.Columns = append(res.Columns, Column{Name: n, Type: t})
	}
	for _, f := range fs {
		res.Rows = append(res.Rows, []any{f.Kind, f.Tenant, f.SessionID, f.RunnerID, f.Seq, f.EventID, f.OtherEventID, f.Detail})
	}
	return res
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }
