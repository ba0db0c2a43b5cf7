package query

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
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

// stored is one row: the columns as read, then what check found in its
// raw. Only what the chain walk needs is kept once raw is checked.
type stored struct {
	id        uint64 // event_id column
	seq       uint64
	key       events.ChainKey
	tenant    string
	hash      string // the row's hash column
	raw       []byte // as read, dropped once checked
	prevHash  string
	find      *Finding  // what check found wrong with the row's content
	rawSum    [2]uint64 // keyed hash of raw: tells identical rows apart
	contentOK bool      // raw decodes, its hash recomputes and the columns agree
}

func (r *stored) eventID() string { return strconv.FormatUint(r.id, 10) }

// Verify recomputes every chain in scope from the stored canonical events:
// each row's raw is decoded and validated, its hash recomputed and compared
// with the raw's own hash and the hash column, and each chain (session,
// emitter) is walked in seq order for gaps, wrong links and duplicates.
// Identical rows (a redelivery not yet merged) count once.
//
// It streams with bounded memory: the sessions in scope are read in
// batches of whole sessions adjacent in id order (see verifySource.read). Rows are
// checked on every core in chunks as they arrive and keep only what the
// walk needs; a batch is walked once its last row is checked, while the
// next is read. An event id stored in two chains (the only duplicate a
// batch cannot see whole) is found by the server while the first batches
// are read, and its rows are kept until the end.
func (db *DB) Verify(ctx context.Context, scope VerifyScope) (*VerifyReport, error) {
	start := time.Now()
	// The toDate bounds (a day wider, whatever the server's time zone) let
	// 18.16 use the sorting key's day: it does not derive them from
	// event_time, and reads every day otherwise.
	where := func(table string) string {
		return "session_id IN (SELECT session_id FROM " + table + " WHERE event_time >= @from AND event_time < @to" +
			" AND toDate(event_time) >= toDate(@from) - 1 AND toDate(event_time) <= toDate(@to) + 1)"
	}
	params := []Param{{"from", scope.Period.From.UTC()}, {"to", scope.Period.To.UTC()}}
	if scope.SessionID != "" {
		where, params = func(string) string { return "session_id = @session" }, []Param{{"session", scope.SessionID}}
	}
	// The ids stored in two chains are looked up while the sessions are,
	// and while the first batches are read: only the walk needs them. On a
	// cluster through the Distributed table: the two chains may lie on two
	// shards.
	crossIDs := map[uint64]bool{}
	crossErr := make(chan error, 1)
	go func() {
		crossErr <- db.stream(ctx, "SELECT event_id FROM events WHERE "+where("events")+" GROUP BY event_id"+
			" HAVING min(cityHash64(session_id, runner_id)) != max(cityHash64(session_id, runner_id))", params,
			func(rows driver.Rows, _ func()) error {
				for rows.Next() {
					var id uint64
					if err := rows.Scan(&id); err != nil {
						return err
					}
					crossIDs[id] = true
				}
				return rows.Err()
			})
	}()
	srcs := []*verifySource{{db: db, table: "events"}}
	if db.cfg.Cluster != "" && scope.SessionID == "" {
		var err error
		if srcs, err = db.shardSources(ctx); err != nil {
			return nil, errors.Join(err, <-crossErr)
		}
		defer func() {
			for _, src := range srcs {
				src.db.Close()
			}
		}()
	}
	for _, src := range srcs {
		if err := src.listSessions(ctx, where(src.table), params); err != nil {
			return nil, errors.Join(err, <-crossErr)
		}
	}
	read := func(ctx context.Context, f *feeder) error {
		for _, src := range srcs {
			s := &src.sessions
			for i := 0; i < s.len(); {
				j, size, n := i, 0, uint64(0)
				for j < s.len() && j-i < verifyBatch && size < verifyBatchBytes && n < verifyBatchRows {
					size += len(s.id(j)) + 4
					n += uint64(s.rows[j])
					j++
				}
				if err := src.read(ctx, i, j, f); err != nil {
					return err
				}
				if err := f.endBatch(); err != nil {
					return err
				}
				i = j
			}
		}
		return nil
	}
	rep, err := verifyRows(ctx, read, func() (map[uint64]bool, error) { return crossIDs, <-crossErr })
	if err != nil {
		return nil, err
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// verifySource is where verify reads sessions from: the database's events
// table, or on a cluster one shard's local table on one of its replicas.
type verifySource struct {
	db       *DB
	table    string
	sessions verifySessions
}

// listSessions reads the sessions in scope with their time range and
// count, in id order.
func (src *verifySource) listSessions(ctx context.Context, where string, params []Param) error {
	return src.db.stream(ctx, "SELECT session_id, toUInt32(min(event_time)), toUInt32(max(event_time)), count() FROM "+src.table+" WHERE "+where+
		" GROUP BY session_id ORDER BY session_id", params, func(rows driver.Rows, _ func()) error {
		var id string
		var first, last uint32
		var n uint64
		for rows.Next() {
			if err := rows.Scan(&id, &first, &last, &n); err != nil {
				return err
			}
			src.sessions.add(id, first, last, n)
		}
		return rows.Err()
	})
}

// shardSources connects, for each shard of the cluster the database is on
// (Config.Cluster), to the first of its replicas in system.clusters order
// that answers, to read the shard's local events table there.
//
// Through the Distributed table every batch went to the initiator, which
// asked both shards and relayed one shard's rows: on the 2×2 bench cluster
// a day's verify cost the servers 1.7 s of CPU, against 1.0 s on one
// server for the same rows. A session's events live on one shard (the
// tables are sharded by session), so a shard's sessions are whole on it.
// The replica read is the one an 18.16 Distributed read with
// load_balancing in_order picks, so it sees what the reports see.
func (db *DB) shardSources(ctx context.Context) ([]*verifySource, error) {
	lctx, cancel := context.WithTimeout(ctx, db.cfg.Timeout)
	shards, err := store.ClusterServers(lctx, db.conn, db.cfg.Cluster)
	cancel()
	if err != nil {
		return nil, serverError(err)
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("%w: cluster %q is not in system.clusters of %s", ErrConfig, db.cfg.Cluster, db.cfg.Addr)
	}
	var srcs []*verifySource
	for i, replicas := range shards {
		var errs []error
		for _, addr := range replicas {
			cfg := db.cfg
			cfg.Addr = addr
			c, err := Open(ctx, cfg)
			if err != nil {
				errs = append(errs, err)
				db.cfg.Logger.Warn("verify: replica does not answer; trying the next", "shard", i+1, "addr", addr, "err", err)
				continue
			}
			srcs = append(srcs, &verifySource{db: c, table: "events" + chschema.LocalSuffix})
			break
		}
		if len(srcs) != i+1 {
			for _, src := range srcs {
				src.db.Close()
			}
			return nil, fmt.Errorf("query: verify: shard %d of cluster %s: no replica answers: %w", i+1, db.cfg.Cluster, errors.Join(errs...))
		}
	}
	return srcs, nil
}

// Verify reads whole sessions per batch until it holds this many rows or
// sessions, or this many bytes of session ids in one statement (under the
// server's max_query_size). A batch is what the walk holds at once, about
// 250 bytes a row without its raw. Larger batches cost the server less:
// each reads the granules at its edges again (a day of 10M events in 7
// batches of 50k rows took the server 1.5 times the CPU of 3 batches).
// (Variables so a test can make every batch small.)
var (
	verifyBatchRows  uint64 = 100_000
	verifyBatch             = 5000
	verifyBatchBytes        = 128 << 10
)

// verifySessions are the sessions in scope in id order, with the time
// range and count of their events; packed, at about 30 bytes a session,
// as a month holds hundreds of thousands.
type verifySessions struct {
	ids         []byte
	ends        []uint32 // ids[ends[i-1]:ends[i]] is session i
	first, last []uint32 // DateTime seconds
	rows        []uint32
}

func (s *verifySessions) add(id string, first, last uint32, n uint64) {
	s.ids = append(s.ids, id...)
	s.ends = append(s.ends, uint32(len(s.ids)))
	s.first, s.last = append(s.first, first), append(s.last, last)
	s.rows = append(s.rows, uint32(min(n, math.MaxUint32)))
}

func (s *verifySessions) len() int { return len(s.ends) }

func (s *verifySessions) id(i int) string {
	lo := uint32(0)
	if i > 0 {
		lo = s.ends[i-1]
	}
	return string(s.ids[lo:s.ends[i]])
}

// read reads every row of sessions [i, j), adjacent in session id
// order, into f. Within each (event type, day) of the sorting key rows are
// ordered by session, so the id range lets the primary key read each
// granule for about one batch only, and the time range skips the days the
// batch has no events in.
func (src *verifySource) read(ctx context.Context, i, j int, f *feeder) error {
	s := &src.sessions
	ids := make([]any, 0, j-i)
	from, to := s.first[i], s.last[i]
	for k := i; k < j; k++ {
		ids = append(ids, s.id(k))
		from, to = min(from, s.first[k]), max(to, s.last[k])
	}
	// PREWHERE: the server reads raw only where the batch's sessions are;
	// left to itself it prewhere-filters on event_time and reads the raw
	// of every granule the key range touches (20 times as many bytes).
	return src.db.stream(ctx, "SELECT event_id, tenant, session_id, runner_id, seq, hash, raw FROM "+src.table+
		" PREWHERE session_id >= @lo AND session_id <= @hi AND session_id IN @sessions"+
		" WHERE event_time >= @from AND event_time <= @to"+
		" AND toDate(event_time) >= toDate(@from) - 1 AND toDate(event_time) <= toDate(@to) + 1",
		[]Param{{"from", time.Unix(int64(from), 0).UTC()}, {"to", time.Unix(int64(to), 0).UTC()},
			{"lo", ids[0]}, {"hi", ids[len(ids)-1]}, {"sessions", clickhouse.GroupSet{Value: ids}}},
		func(rows driver.Rows, _ func()) error {
			for rows.Next() {
				r, err := f.next()
				if err != nil {
					return err
				}
				if err := rows.Scan(&r.id, &r.tenant, &r.key.SessionID, &r.key.RunnerID, &r.seq, &r.hash, &r.raw); err != nil {
					return err
				}
			}
			return rows.Err()
		})
}

// chunkRows rows are scanned, checked and handed to the walk together.
const chunkRows = 512

// chunk is rows in read order; done is closed once they are checked.
type chunk struct {
	rows []stored
	end  bool // the last chunk of a batch
	done chan struct{}
}

// feeder hands the rows read to the checkers and, in read order, to the
// walk, a chunk at a time. At most a few chunks are in flight: the reader
// waits for the checkers and the walk.
type feeder struct {
	ctx         context.Context
	cur         *chunk
	work, order chan<- *chunk
	free        <-chan *chunk // chunks the walk is done with
}

// next returns the slot for the next row.
func (f *feeder) next() (*stored, error) {
	if f.cur != nil && len(f.cur.rows) == chunkRows {
		if err := f.send(); err != nil {
			return nil, err
		}
	}
	if f.cur == nil {
		select {
		case f.cur = <-f.free:
		default:
			f.cur = &chunk{rows: make([]stored, 0, chunkRows)}
		}
		f.cur.done = make(chan struct{})
	}
	f.cur.rows = append(f.cur.rows, stored{})
	return &f.cur.rows[len(f.cur.rows)-1], nil
}

// endBatch marks the rows so far as the end of a batch of whole sessions.
func (f *feeder) endBatch() error {
	if f.cur == nil {
		f.cur = &chunk{done: make(chan struct{})}
	}
	f.cur.end = true
	return f.send()
}

func (f *feeder) send() error {
	c := f.cur
	f.cur = nil
	// Checkers first: the walk waits on done, which only a checker closes.
	select {
	case f.work <- c:
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
	select {
	case f.order <- c:
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
	return nil
}

// verifyRows is verify's client half. read feeds the rows of each batch
// of whole sessions and ends each batch; they are checked on every core
// and walked per batch. cross returns the ids stored in two chains; it is
// first called when the first batch is walked.
func verifyRows(ctx context.Context, read func(context.Context, *feeder) error, cross func() (map[uint64]bool, error)) (*VerifyReport, error) {
	workers := runtime.GOMAXPROCS(0)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *chunk, workers)
	order := make(chan *chunk, 2*workers+2)
	free := make(chan *chunk, cap(order)+workers+2)
	for range workers {
		go func() {
			var env events.Envelope // reused: DecodeInto does not allocate
			h := newHasher()
			for c := range work {
				for i := range c.rows {
					r := &c.rows[i]
					r.find = check(&env, h, r)
					r.raw = nil
				}
				close(c.done)
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		err := read(rctx, &feeder{ctx: rctx, work: work, order: order, free: free})
		close(work)
		close(order)
		readErr <- err
	}()
	w := walker{rep: &VerifyReport{}, byID: map[uint64]int32{}, chainOf: map[events.ChainKey]int32{}}
	var crossErr error
	crossKnown := false
	for c := range order {
		<-c.done
		w.add(c.rows)
		if c.end {
			if !crossKnown {
				w.crossIDs, crossErr = cross()
				crossKnown = true
				if crossErr != nil {
					cancel()
				}
			}
			if crossErr == nil {
				w.walk()
			}
		}
		clear(c.rows) // drop the strings the chunk points to
		c.rows, c.end = c.rows[:0], false
		select {
		case free <- c:
		default:
		}
	}
	err := <-readErr
	if !crossKnown {
		_, crossErr = cross()
	}
	if crossErr != nil {
		return nil, crossErr // the read was stopped for it
	}
	if err != nil {
		return nil, err
	}
	finds := append(w.finds, duplicateIDs(w.cross, w.rep)...)
	slices.SortStableFunc(finds, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.SessionID, b.SessionID),
			cmp.Compare(a.RunnerID, b.RunnerID), cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.EventID, b.EventID))
	})
	w.rep.Findings = finds
	return w.rep, nil
}

// check verifies one row's content: the raw decodes and validates, its
// recomputed hash is its own hash, and the typed columns say the same. It
// fills in what the walk needs and returns what is wrong, if anything.
func check(env *events.Envelope, h *hasher, r *stored) *Finding {
	bad := func(kind, detail string) *Finding {
		return &Finding{Kind: kind, Tenant: r.tenant, SessionID: r.key.SessionID, RunnerID: r.key.RunnerID, Seq: r.seq,
			EventID: r.eventID(), Detail: detail}
	}
	if err := events.DecodeInto(env, r.raw); err != nil {
		r.rawSum = sum(r.raw)
		return bad(BreakUndecodable, fmt.Sprintf("stored raw does not decode: %v", err))
	}
	r.prevHash = strings.Clone(env.PrevHash) // env's strings may point into raw
	r.rawSum = sum(r.raw)
	// The raw as stored, its hash member cut out, is what the emitter
	// hashed when the event is intact: then no re-encoding is needed.
	// Otherwise the event's own canonical encoding decides (a raw written
	// another way with the same content is intact too).
	if !h.rawMatches(env, r.raw) {
		got, err := h.compute(env)
		if err != nil {
			return bad(BreakUndecodable, fmt.Sprintf("hash cannot be computed: %v", err))
		}
		if string(got[:]) != env.Hash {
			return bad(string(events.BreakEdit), fmt.Sprintf("content hashes to %s, the event says %s", short(string(got[:])), short(env.Hash)))
		}
	}
	var idBuf [20]byte
	if string(strconv.AppendUint(idBuf[:0], r.id, 10)) != env.EventID || r.hash != env.Hash || r.seq != env.Seq ||
		r.key.SessionID != env.SessionID || r.key.RunnerID != env.RunnerID || r.tenant != env.Tenant {
		var diffs []string
		for _, d := range []struct{ name, col, raw string }{
			{"event_id", r.eventID(), env.EventID},
			{"hash", r.hash, env.Hash},
			{"seq", strconv.FormatUint(r.seq, 10), strconv.FormatUint(env.Seq, 10)},
			{"session_id", r.key.SessionID, env.SessionID},
			{"runner_id", r.key.RunnerID, env.RunnerID},
			{"tenant", r.tenant, env.Tenant},
		} {
			if d.col != d.raw {
				diffs = append(diffs, fmt.Sprintf("%s column %q, raw %q", d.name, short(d.col), short(d.raw)))
			}
		}
		return bad(BreakColumnMismatch, fmt.Sprint(diffs))
	}
	r.contentOK = true
	return nil
}

// hasher computes what events.ComputeHash does, with buffers reused from
// row to row: it encodes the event with its hash (events.AppendMarshal)
// and hashes that without the hash member, which is the same encoding
// ComputeHash hashes. ComputeHash allocated a kilobyte or more a row,
// which was most of what verify allocated.
type hasher struct {
	wire    []byte
	encoded bool // wire is the encoding of the event last hashed
	sha     hash.Hash
	sum     [sha256.Size]byte
}

func newHasher() *hasher { return &hasher{wire: make([]byte, 0, 4096), sha: sha256.New()} }

// hashMember is how the hash member begins in the canonical encoding.
// Only actor, agent, approval_id, event_id, event_time and event_type
// precede it, with no key named hash, and a quote inside a string is
// escaped: its first occurrence is the member.
var hashMember = []byte(`,"hash":"`)

// rawMatches reports whether raw, the bytes env was decoded from, hashes
// to env.Hash with its hash member cut out. That proves the content
// intact without encoding it again: the bytes left are exactly what the
// emitter hashed (SHA-256 has no second preimage), so they decode to the
// content it hashed, and the member cut out is the top-level hash (a
// member anywhere else would leave env.Hash empty, which never matches).
func (h *hasher) rawMatches(env *events.Envelope, raw []byte) bool {
	hx, ok := h.hashCut(env, raw)
	return ok && string(hx[:]) == env.Hash
}

func (h *hasher) compute(env *events.Envelope) (hx [64]byte, err error) {
	h.encoded = false
	slow := func() ([64]byte, error) {
		got, err := events.ComputeHash(env)
		copy(hx[:], got)
		if err == nil && len(got) != len(hx) {
			err = fmt.Errorf("hash of %d characters", len(got)) // never: ComputeHash returns hex SHA-256
		}
		return hx, err
	}
	h.wire, err = events.AppendMarshal(h.wire[:0], env)
	if err != nil {
		return slow() // for ComputeHash's own error
	}
	hx, ok := h.hashCut(env, h.wire)
	if !ok {
		return slow()
	}
	h.encoded = true
	return hx, nil
}

// hashCut hashes env's previous hash and the encoding b with its hash
// member cut out: the member as written must be env.Hash between quotes,
// unescaped (else, a hash that is not 64 plain characters, ok is false).
func (h *hasher) hashCut(env *events.Envelope, b []byte) (hx [64]byte, ok bool) {
	i := bytes.Index(b, hashMember)
	end := i + len(hashMember) + len(hx)
	if i < 0 || end >= len(b) || string(b[i+len(hashMember):end]) != env.Hash || b[end] != '"' {
		return hx, false
	}
	h.sha.Reset()
	h.sha.Write([]byte(env.PrevHash))
	h.sha.Write(b[:i])
	h.sha.Write(b[end+1:])
	hex.Encode(hx[:], h.sha.Sum(h.sum[:0]))
	return hx, true
}

// walker holds one batch's rows (identical rows once), in a compact
// form, and what verify has found so far. Its maps and slices are reused
// from batch to batch.
type walker struct {
	rep      *VerifyReport
	crossIDs map[uint64]bool
	finds    []Finding
	cross    []stored // rows of crossIDs, from every batch

	rows    []wrow
	byID    map[uint64]int32 // the first kept row of each id
	chainOf map[events.ChainKey]int32
	keys    []events.ChainKey // by chain
	tenant  string            // the last tenant seen, shared by the rows that have it
	starts  []int32           // where each chain begins in order
	order   []int32           // rows by chain, then seq
	place   []int32           // placeBySeq's: 1 + the row at each seq
}

// wrow is a kept row as the walk needs it: its chain by number, and the
// strings it needs for its findings.
type wrow struct {
	id, seq        uint64
	hash, prevHash string
	tenant         string
	rawSum         [2]uint64
	chain          int32
	// Kept rows of one event id form a list in read order: first marks
	// its head, next is the following row (-1 at the end).
	next      int32
	first     bool
	contentOK bool
}

func (r *wrow) eventID() string { return strconv.FormatUint(r.id, 10) }

// add takes a chunk's checked rows in read order. Identical rows (same id,
// hash column and raw) count once: the first is kept.
func (w *walker) add(rs []stored) {
	w.rep.Rows += len(rs)
	for j := range rs {
		r := &rs[j]
		i := int32(len(w.rows))
		first := true
		if k, ok := w.byID[r.id]; ok {
			dup := false
			for {
				o := &w.rows[k]
				if o.hash == r.hash && o.rawSum == r.rawSum {
					dup = true
					break
				}
				if o.next < 0 {
					break
				}
				k = o.next
			}
			if dup {
				continue
			}
			w.rows[k].next = i
			first = false
		} else {
			w.byID[r.id] = i
		}
		if r.find != nil {
			w.finds = append(w.finds, *r.find)
		}
		c, ok := w.chainOf[r.key]
		if !ok {
			c = int32(len(w.keys))
			w.chainOf[r.key] = c
			w.keys = append(w.keys, r.key)
		}
		if r.tenant == w.tenant {
			r.tenant = w.tenant
		} else {
			w.tenant = r.tenant
		}
		w.rows = append(w.rows, wrow{id: r.id, seq: r.seq, hash: r.hash, prevHash: r.prevHash, tenant: r.tenant,
			rawSum: r.rawSum, chain: c, next: -1, first: first, contentOK: r.contentOK})
	}
}

// stored returns kept row i in full, for the rows kept to the end.
func (w *walker) stored(i int32) stored {
	r := &w.rows[i]
	return stored{id: r.id, seq: r.seq, key: w.keys[r.chain], tenant: r.tenant, hash: r.hash}
}

// walk checks the batch: ids with two contents, then each chain's
// sequence and links. Rows are grouped by chain and seq; one event per seq
// continues the chain (the one whose content is good and whose prev_hash
// links, when there is a choice).
func (w *walker) walk() {
	rows := w.rows
	for i := range rows {
		r := &rows[i]
		if len(w.crossIDs) > 0 && w.crossIDs[r.id] {
			w.cross = append(w.cross, w.stored(int32(i)))
		}
		if !r.first || w.crossIDs[r.id] {
			continue // counted and reported by duplicateIDs
		}
		w.rep.Events++
		if r.next < 0 {
			continue
		}
		var dups []stored
		for k := int32(i); k >= 0; k = rows[k].next {
			dups = append(dups, w.stored(k))
		}
		w.finds = append(w.finds, duplicateID(dups))
	}

	// Order the rows by chain (a counting sort), then each chain by seq.
	chains := len(w.keys)
	w.rep.Chains += chains
	w.starts = slices.Grow(w.starts[:0], chains+1)[:chains+1]
	clear(w.starts)
	for i := range rows {
		w.starts[rows[i].chain+1]++
	}
	for c := 1; c <= chains; c++ {
		w.starts[c] += w.starts[c-1]
	}
	w.order = slices.Grow(w.order[:0], len(rows))[:len(rows)]
	pos := slices.Clone(w.starts[:chains]) // small: one int32 a chain
	for i := range rows {
		c := rows[i].chain
		w.order[pos[c]] = int32(i)
		pos[c]++
	}
	for c := 0; c < chains; c++ {
		idx := w.order[w.starts[c]:w.starts[c+1]]
		if !w.placeBySeq(idx) {
			slices.SortFunc(idx, func(a, b int32) int {
				return cmp.Or(cmp.Compare(rows[a].seq, rows[b].seq), compareDecimal(rows[a].id, rows[b].id))
			})
		}
		w.walkChain(w.keys[c], idx)
	}

	clear(w.rows) // drop the strings the rows point to
	w.rows, w.keys = w.rows[:0], w.keys[:0]
	clear(w.byID)
	clear(w.chainOf)
}

// placeBySeq sorts a chain whose rows hold each seq of a range once (the
// usual case) by putting each row at its place, and reports whether it
// did; rows read in no order made sorting by comparison a tenth of
// verify's time.
func (w *walker) placeBySeq(idx []int32) bool {
	lo := w.rows[idx[0]].seq
	for _, i := range idx {
		lo = min(lo, w.rows[i].seq)
	}
	w.place = slices.Grow(w.place[:0], len(idx))[:len(idx)]
	clear(w.place)
	for _, i := range idx {
		d := w.rows[i].seq - lo
		if d >= uint64(len(idx)) || w.place[d] != 0 {
			return false // a gap or a seq twice
		}
		w.place[d] = i + 1
	}
	for d, i := range w.place {
		idx[d] = i - 1
	}
	return true
}

// walkChain checks one chain's rows, idx in seq order.
func (w *walker) walkChain(key events.ChainKey, idx []int32) {
	rows := w.rows
	finding := func(kind string, r *wrow, other, detail string) {
		w.finds = append(w.finds, Finding{Kind: kind, Tenant: r.tenant, SessionID: key.SessionID, RunnerID: key.RunnerID,
			Seq: r.seq, EventID: r.eventID(), OtherEventID: other, Detail: detail})
	}
	var prev *wrow
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && rows[idx[j]].seq == rows[idx[i]].seq {
			j++
		}
		group := idx[i:j]
		k := j
		for k < len(idx) && rows[idx[k]].seq == rows[idx[j]].seq {
			k++
		}
		next := idx[j:k]
		i = j
		cur := &rows[w.pick(group, prev, next)]
		if len(group) > 1 {
			if ids := w.distinctIDs(group); len(ids) > 1 {
				finding(BreakDuplicateSeq, cur, "", fmt.Sprintf("events %v all have seq %d", ids, cur.seq))
			}
		}
		want := uint64(1)
		if prev != nil {
			want = prev.seq + 1
		}
		switch {
		case cur.seq > want:
			other := ""
			if prev != nil {
				other = prev.eventID()
			}
			finding(string(events.BreakGap), cur, other, fmt.Sprintf("seq %s missing before this event", seqRange(want, cur.seq-1)))
		case cur.seq == 1 && cur.prevHash != events.GenesisHash && cur.contentOK:
			finding(string(events.BreakBadStart), cur, "", "seq 1 does not start from the genesis hash")
		case prev != nil && cur.contentOK && prev.contentOK && cur.prevHash != prev.hash:
			finding(string(events.BreakWrongPrev), cur, prev.eventID(),
				fmt.Sprintf("prev_hash %s is not the hash %s of seq %d", short(cur.prevHash), short(prev.hash), prev.seq))
		}
		prev = cur
	}
}

// pick chooses the event that continues the chain among rows sharing a
// seq: good content, linked to prev and linked to by the next seq's events
// (a forged copy with a recomputed hash links back but not forward).
func (w *walker) pick(group []int32, prev *wrow, next []int32) int32 {
	rows := w.rows
	if len(group) == 1 {
		return group[0]
	}
	for _, i := range group {
		r := &rows[i]
		if r.contentOK && (prev == nil || r.prevHash == prev.hash) &&
			slices.ContainsFunc(next, func(n int32) bool { return rows[n].prevHash == r.hash }) {
			return i
		}
	}
	for _, i := range group {
		if r := &rows[i]; r.contentOK && (prev == nil || r.prevHash == prev.hash) {
			return i
		}
	}
	for _, i := range group {
		if rows[i].contentOK {
			return i
		}
	}
	return group[0]
}

func (w *walker) distinctIDs(group []int32) []string {
	var ids []string
	for _, i := range group {
		if id := w.rows[i].eventID(); !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// compareDecimal orders event ids as their decimal strings, as the
// findings show them.
func compareDecimal(a, b uint64) int {
	if a == b {
		return 0
	}
	var x, y [20]byte
	return bytes.Compare(strconv.AppendUint(x[:0], a, 10), strconv.AppendUint(y[:0], b, 10))
}

// duplicateIDs counts the events whose id is stored in two chains and
// reports those ids, as walk does for an id within one batch.
func duplicateIDs(recs []stored, rep *VerifyReport) []Finding {
	byID := map[uint64][]*stored{}
	var order []uint64
	for i := range recs {
		r := &recs[i]
		if byID[r.id] == nil {
			order = append(order, r.id)
		}
		byID[r.id] = append(byID[r.id], r)
	}
	var out []Finding
	for _, id := range order {
		rs := byID[id]
		rep.Events++
		if len(rs) < 2 {
			continue
		}
		dups := make([]stored, len(rs))
		for i, r := range rs {
			dups[i] = *r
		}
		out = append(out, duplicateID(dups))
	}
	return out
}

// duplicateID reports the rows of one event id with different contents.
// The finding names the first row in (tenant, session, runner, seq, hash)
// order and lists the hashes in that order, not in the order the server
// sent the rows, which varies from run to run.
func duplicateID(rs []stored) Finding {
	slices.SortFunc(rs, func(a, b stored) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.key.SessionID, b.key.SessionID),
			cmp.Compare(a.key.RunnerID, b.key.RunnerID), cmp.Compare(a.seq, b.seq), cmp.Compare(a.hash, b.hash))
	})
	var hashes []string
	for _, r := range rs {
		hashes = append(hashes, short(r.hash))
	}
	return Finding{Kind: BreakDuplicateID, Tenant: rs[0].tenant, SessionID: rs[0].key.SessionID,
		RunnerID: rs[0].key.RunnerID, Seq: rs[0].seq, EventID: rs[0].eventID(),
		Detail: fmt.Sprintf("%d rows with different content (hashes %v)", len(rs), hashes)}
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

// rawSeeds key the hash that tells identical rows from edited copies:
// random per process, so no stored row can be made to collide with
// another on purpose. Two 64-bit hashes make an accidental collision
// negligible; sha256 here cost a third of verify's time.
var rawSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func sum(b []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(rawSeeds[0], b), maphash.Bytes(rawSeeds[1], b)}
}
