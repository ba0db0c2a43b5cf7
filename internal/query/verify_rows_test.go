package query

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/bench/eventgen"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/store"
)

// verifyInput is one row as the server sends it.
type verifyInput struct {
	id                      uint64
	tenant, session, runner string
	seq                     uint64
	hash                    string
	raw                     []byte
}

func inputOf(r store.EventRow) verifyInput {
	return verifyInput{r.EventID, r.Tenant, r.SessionID, r.RunnerID, r.Seq, r.Hash, []byte(r.Raw)}
}

// verifyData is generated sessions with every kind of break planted, in
// batches of whole sessions whose rows come in a shuffled order (as from
// several server threads), and the ids the server finds in two chains.
func verifyData(t testing.TB, sessions, perBatch int, tamper bool) ([][]verifyInput, map[uint64]bool) {
	t.Helper()
	ids, _ := events.NewIDGen(7)
	rng := rand.New(rand.NewPCG(1, 2))
	var all [][]verifyInput
	var strays []verifyInput // rows copied into another session
	for s := 0; s < sessions; s++ {
		rows, err := eventgen.PeriodSession(s, sessions, 3, ids)
		if err != nil {
			t.Fatal(err)
		}
		in := make([]verifyInput, 0, len(rows))
		for _, r := range rows {
			in = append(in, inputOf(r))
		}
		if tamper {
			in = plantBreak(t, s, in, &strays)
		}
		all = append(all, in)
	}
	// A row of session s shows up again, relabelled, in a session of
	// another batch.
	for i, r := range strays {
		s := (i*5 + 3*perBatch) % len(all)
		r.session = all[s][0].session
		all[s] = append(all[s], r)
	}
	chains := map[uint64]map[events.ChainKey]bool{}
	var batches [][]verifyInput
	for i := 0; i < len(all); i += perBatch {
		var b []verifyInput
		for _, s := range all[i:min(i+perBatch, len(all))] {
			b = append(b, s...)
		}
		rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
		for _, r := range b {
			if chains[r.id] == nil {
				chains[r.id] = map[events.ChainKey]bool{}
			}
			chains[r.id][events.ChainKey{SessionID: r.session, RunnerID: r.runner}] = true
		}
		batches = append(batches, b)
	}
	cross := map[uint64]bool{}
	for id, ks := range chains {
		if len(ks) > 1 {
			cross[id] = true
		}
	}
	return batches, cross
}

// plantBreak tampers with session s one way of many.
func plantBreak(t testing.TB, s int, in []verifyInput, strays *[]verifyInput) []verifyInput {
	t.Helper()
	// restamp re-encodes row i with fn applied and its hash recomputed.
	restamp := func(i int, fn func(e *events.Envelope)) verifyInput {
		e, err := events.Decode(in[i].raw)
		if err != nil {
			t.Fatal(err)
		}
		fn(e)
		if e.Hash, err = events.ComputeHash(e); err != nil {
			t.Fatal(err)
		}
		raw, err := events.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		r := in[i]
		r.hash, r.raw = e.Hash, raw
		r.id, _ = strconv.ParseUint(e.EventID, 10, 64)
		return r
	}
	mid := len(in) / 2
	switch s % 16 {
	case 1: // deleted
		return slices.Delete(in, mid, mid+1)
	case 2: // redelivered: identical rows count once
		return append(in, in[mid], in[0])
	case 3: // edited in place, hash column kept
		r := in[mid]
		r.raw = bytes.Replace(r.raw, []byte(`"tenant":"bench"`), []byte(`"tenant":"bench2"`), 1)
		return append(in, r)
	case 4: // forged copy with a recomputed hash
		return append(in, restamp(mid, func(e *events.Envelope) { e.TraceID = strings.Repeat("ab", 16) }))
	case 5: // a column edited
		in[mid].seq += 100
		in[mid+1].runner = "runner-x"
	case 6: // undecodable
		in[mid].raw = in[mid].raw[:len(in[mid].raw)/2]
	case 7: // the first event off the genesis hash
		in[0] = restamp(0, func(e *events.Envelope) { e.PrevHash = strings.Repeat("2", 64) })
	case 8: // a link broken, the hash recomputed
		in[mid] = restamp(mid, func(e *events.Envelope) { e.PrevHash = strings.Repeat("1", 64) })
	case 9: // one id stored in two chains, in two batches
		*strays = append(*strays, in[mid])
	case 10: // one id twice in a chain, at two seqs
		r := restamp(mid, func(e *events.Envelope) { e.Seq += 1000 })
		r.seq += 1000
		return append(in, r)
	case 11: // two events with one seq
		return append(in, restamp(mid, func(e *events.Envelope) { e.EventID = "9" + e.EventID[1:] }))
	case 12: // the same id, hash and raw, but another session column
		r := in[mid]
		r.session += "-copy"
		return append(in, r)
	case 13: // the hash column alone edited
		r := in[mid]
		r.hash = strings.Repeat("f", 64)
		return append(in, r)
	case 15: // two events with one seq, ids of two lengths (ordered as text)
		return append(in, restamp(mid, func(e *events.Envelope) { e.EventID = "9" }))
	case 14: // edited twice, one content
		r := in[mid]
		r.raw = bytes.Replace(r.raw, []byte(`"tenant":"bench"`), []byte(`"tenant":"bench3"`), 1)
		return append(in, r, r)
	}
	return in
}

// errRead is the read failure feedBatches makes.
var errRead = errors.New("read failed")

// feedBatches reads batches into verifyRows as Verify's reader does; with
// failAfter ≥ 0 the read fails with errRead before that batch.
func feedBatches(batches [][]verifyInput, failAfter int) func(context.Context, *feeder) error {
	return func(_ context.Context, f *feeder) error {
		for i, b := range batches {
			if i == failAfter {
				return errRead
			}
			for _, in := range b {
				r, err := f.next()
				if err != nil {
					return err
				}
				*r = stored{id: in.id, tenant: in.tenant, key: events.ChainKey{SessionID: in.session, RunnerID: in.runner},
					seq: in.seq, hash: in.hash, raw: in.raw}
			}
			if err := f.endBatch(); err != nil {
				return err
			}
		}
		return nil
	}
}

// runVerifyRows verifies batches through verifyRows, as Verify does.
func runVerifyRows(t testing.TB, batches [][]verifyInput, cross map[uint64]bool) *VerifyReport {
	t.Helper()
	rep, err := verifyRows(context.Background(), feedBatches(batches, -1), func() (map[uint64]bool, error) { return cross, nil })
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestVerifyRowsMatchesReference holds verify's streaming checks to the
// plain implementation they replaced (refVerify below), on every planted
// break, in batches of one, a few and all sessions.
func TestVerifyRowsMatchesReference(t *testing.T) {
	for _, perBatch := range []int{1, 7, 1000} {
		t.Run(fmt.Sprintf("%d sessions a batch", perBatch), func(t *testing.T) {
			batches, cross := verifyData(t, 160, perBatch, true)
			want := refVerify(batches, cross)
			got := runVerifyRows(t, batches, cross)
			kinds := map[string]int{}
			for _, f := range want.Findings {
				kinds[f.Kind]++
			}
			for _, k := range []string{BreakUndecodable, BreakColumnMismatch, BreakDuplicateID, BreakDuplicateSeq,
				"gap", "edit", "wrong_prev", "bad_start"} {
				if kinds[k] == 0 {
					t.Errorf("no %s finding planted: %v", k, kinds)
				}
			}
			if len(cross) == 0 {
				t.Error("no id planted in two chains")
			}
			// Findings that tie on every sort key (two edited copies of one
			// event) come in read order, which the server does not fix.
			for _, r := range []*VerifyReport{want, got} {
				slices.SortStableFunc(r.Findings, func(a, b Finding) int {
					return cmp.Or(cmp.Compare(a.Detail, b.Detail), cmp.Compare(a.OtherEventID, b.OtherEventID))
				})
				slices.SortStableFunc(r.Findings, compareFindings)
			}
			if diff := gocmp.Diff(want, got, hashOrder); diff != "" {
				t.Errorf("(-reference +verifyRows):\n%s", diff)
			}
		})
	}
}

func compareFindings(a, b Finding) int {
	return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.SessionID, b.SessionID),
		cmp.Compare(a.RunnerID, b.RunnerID), cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.EventID, b.EventID))
}

// BenchmarkVerifyRows is verify's client side (check, dedup, walk) over
// 60k generated events in batches of 2000 sessions, beside the
// implementation it replaced.
func BenchmarkVerifyRows(b *testing.B) {
	batches, cross := verifyData(b, 2000, 2000, false)
	n := 0
	for _, bt := range batches {
		n += len(bt)
	}
	// CPU time per event as well: on a shared machine it varies less than
	// the wall time.
	run := func(b *testing.B, verify func()) {
		cpu0 := cpuTime()
		for b.Loop() {
			verify()
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(n*b.N), "cpu-ns/event")
	}
	b.Run("streaming", func(b *testing.B) { run(b, func() { runVerifyRows(b, batches, cross) }) })
	b.Run("reference", func(b *testing.B) { run(b, func() { refVerify(batches, cross) }) })
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// refVerify is verify's client side as it was before it streamed: whole
// batches checked on every core, then deduplicated and walked with maps.
// It is the reference the streaming version must agree with.
func refVerify(batches [][]verifyInput, crossIn map[uint64]bool) *VerifyReport {
	crossIDs := map[string]bool{}
	for id := range crossIn {
		crossIDs[strconv.FormatUint(id, 10)] = true
	}
	rep := &VerifyReport{}
	var finds []Finding
	var cross []refStored
	for _, b := range batches {
		recs := make([]refStored, len(b))
		for i, in := range b {
			recs[i] = refStored{id: in.id, tenant: in.tenant, key: events.ChainKey{SessionID: in.session, RunnerID: in.runner},
				seq: in.seq, hash: in.hash, raw: in.raw}
		}
		rep.Rows += len(recs)
		refCheckAll(recs)
		seen := make(map[refRowKey]bool, len(recs))
		kept := recs[:0]
		for _, r := range recs {
			k := refRowKey{r.eventID, r.hash, r.rawSum}
			if seen[k] {
				continue
			}
			seen[k] = true
			finds = append(finds, r.finds...)
			r.finds = nil
			if crossIDs[r.eventID] {
				cross = append(cross, r)
			}
			kept = append(kept, r)
		}
		finds = append(finds, refWalk(kept, rep, crossIDs)...)
	}
	finds = append(finds, refDuplicateIDs(cross, rep)...)
	slices.SortStableFunc(finds, compareFindings)
	rep.Findings = finds
	return rep
}

type refStored struct {
	id        uint64
	raw       []byte
	finds     []Finding
	key       events.ChainKey
	tenant    string
	eventID   string
	seq       uint64
	prevHash  string
	hash      string
	contentOK bool
	rawSum    [2]uint64
}

type refRowKey struct {
	id, hash string
	raw      [2]uint64
}

func refCheckAll(recs []refStored) {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	chunk := (len(recs) + workers - 1) / workers
	for lo := 0; lo < len(recs); lo += chunk {
		hi := min(lo+chunk, len(recs))
		wg.Add(1)
		go func(part []refStored) {
			defer wg.Done()
			var env events.Envelope
			for i := range part {
				r := &part[i]
				c, f := refCheck(&env, r.id, r.tenant, r.key.SessionID, r.key.RunnerID, r.seq, r.hash, r.raw)
				c.finds = f
				*r = c
			}
		}(recs[lo:hi])
	}
	wg.Wait()
}

func refCheck(env *events.Envelope, id uint64, tenant, session, runner string, seq uint64, hash string, raw []byte) (refStored, []Finding) {
	r := refStored{
		key: events.ChainKey{SessionID: session, RunnerID: runner}, tenant: tenant,
		eventID: strconv.FormatUint(id, 10), seq: seq, hash: hash,
	}
	r.rawSum = sum(raw)
	bad := func(kind, detail string) []Finding {
		return []Finding{{Kind: kind, Tenant: tenant, SessionID: session, RunnerID: runner, Seq: seq,
			EventID: r.eventID, Detail: detail}}
	}
	if err := events.DecodeInto(env, raw); err != nil {
		return r, bad(BreakUndecodable, fmt.Sprintf("stored raw does not decode: %v", err))
	}
	r.prevHash = strings.Clone(env.PrevHash)
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

func refWalk(recs []refStored, rep *VerifyReport, crossIDs map[string]bool) []Finding {
	var out []Finding
	byID := map[string][]int{}
	for i, r := range recs {
		byID[r.eventID] = append(byID[r.eventID], i)
	}
	for id, idx := range byID {
		if crossIDs[id] {
			continue
		}
		rep.Events++
		if len(idx) < 2 {
			continue
		}
		refDupOrder(recs, idx)
		r := recs[idx[0]]
		var hashes []string
		for _, i := range idx {
			hashes = append(hashes, short(recs[i].hash))
		}
		out = append(out, Finding{Kind: BreakDuplicateID, Tenant: r.tenant, SessionID: r.key.SessionID,
			RunnerID: r.key.RunnerID, Seq: r.seq, EventID: id,
			Detail: fmt.Sprintf("%d rows with different content (hashes %v)", len(idx), hashes)})
	}
	chains := map[events.ChainKey][]refStored{}
	for _, r := range recs {
		chains[r.key] = append(chains[r.key], r)
	}
	rep.Chains += len(chains)
	for key, rs := range chains {
		slices.SortFunc(rs, func(a, b refStored) int {
			return cmp.Or(cmp.Compare(a.seq, b.seq), cmp.Compare(a.eventID, b.eventID))
		})
		finding := func(kind string, r refStored, other, detail string) {
			out = append(out, Finding{Kind: kind, Tenant: r.tenant, SessionID: key.SessionID, RunnerID: key.RunnerID,
				Seq: r.seq, EventID: r.eventID, OtherEventID: other, Detail: detail})
		}
		var prev *refStored
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
			cur := refPick(group, prev, next)
			if ids := refDistinctIDs(group); len(ids) > 1 {
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

func refDuplicateIDs(recs []refStored, rep *VerifyReport) []Finding {
	byID := map[string][]refStored{}
	var order []string
	for _, r := range recs {
		if byID[r.eventID] == nil {
			order = append(order, r.eventID)
		}
		byID[r.eventID] = append(byID[r.eventID], r)
	}
	var out []Finding
	for _, id := range order {
		rs := byID[id]
		rep.Events++
		if len(rs) < 2 {
			continue
		}
		idx := make([]int, len(rs))
		for i := range idx {
			idx[i] = i
		}
		refDupOrder(rs, idx)
		rs = func() []refStored {
			out := make([]refStored, len(idx))
			for i, k := range idx {
				out[i] = rs[k]
			}
			return out
		}()
		var hashes []string
		for _, r := range rs {
			hashes = append(hashes, short(r.hash))
		}
		out = append(out, Finding{Kind: BreakDuplicateID, Tenant: rs[0].tenant, SessionID: rs[0].key.SessionID,
			RunnerID: rs[0].key.RunnerID, Seq: rs[0].seq, EventID: id,
			Detail: fmt.Sprintf("%d rows with different content (hashes %v)", len(rs), hashes)})
	}
	return out
}

// refDupOrder is the one change from what refVerify replaced: a
// duplicate_id finding names the rows of its id in (tenant, session,
// runner, seq, hash) order, where it took them in read order, which the
// server does not fix.
func refDupOrder(recs []refStored, idx []int) {
	slices.SortFunc(idx, func(a, b int) int {
		x, y := recs[a], recs[b]
		return cmp.Or(cmp.Compare(x.tenant, y.tenant), cmp.Compare(x.key.SessionID, y.key.SessionID),
			cmp.Compare(x.key.RunnerID, y.key.RunnerID), cmp.Compare(x.seq, y.seq), cmp.Compare(x.hash, y.hash))
	})
}

func refPick(group []refStored, prev *refStored, next []refStored) refStored {
	if len(group) == 1 {
		return group[0]
	}
	for _, r := range group {
		if r.contentOK && (prev == nil || r.prevHash == prev.hash) && slices.ContainsFunc(next, func(n refStored) bool { return n.prevHash == r.hash }) {
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

func refDistinctIDs(group []refStored) []string {
	var ids []string
	for _, r := range group {
		if !slices.Contains(ids, r.eventID) {
			ids = append(ids, r.eventID)
		}
	}
	return ids
}

// FuzzContentHash holds the hasher, which hashes its own encoding of the
// event with the hash member cut out, to events.ComputeHash: the same hash
// or the same failure, for anything DecodeInto accepts.
func FuzzContentHash(f *testing.F) {
	batches, _ := verifyData(f, 32, 32, true)
	for _, r := range batches[0] {
		f.Add(r.raw)
	}
	h := newHasher()
	var env events.Envelope
	f.Fuzz(func(t *testing.T, raw []byte) {
		if events.DecodeInto(&env, raw) != nil {
			return
		}
		want, werr := events.ComputeHash(&env)
		got, err := h.compute(&env)
		if (err != nil) != (werr != nil) || (err == nil && string(got[:]) != want) {
			t.Fatalf("hasher %s, %v; ComputeHash %s, %v\n%s", got, err, want, werr, raw)
		}
		if h.encoded && !bytes.Contains(h.wire, []byte(env.Hash)) {
			t.Fatalf("encoded without the hash %s", env.Hash)
		}
		// The shortcut through the stored bytes never accepts what the
		// content's own hash rejects.
		if h.rawMatches(&env, raw) && (werr != nil || want != env.Hash) {
			t.Fatalf("raw matches its hash %s, the content hashes to %s, %v\n%s", env.Hash, want, werr, raw)
		}
	})
}

// TestRawMatches: the stored bytes of an intact event match its hash, and
// so does the same content with its hash member written elsewhere at the
// top level (the bytes hashed are the same); the content written another
// way does not match and is found intact by its canonical encoding; an
// edit, or the member moved into a nested object, is found either way.
func TestRawMatches(t *testing.T) {
	batches, _ := verifyData(t, 4, 4, false)
	in := batches[0][0]
	h := newHasher()
	var env events.Envelope
	if err := events.DecodeInto(&env, in.raw); err != nil {
		t.Fatal(err)
	}
	if !h.rawMatches(&env, in.raw) {
		t.Fatalf("an intact stored event does not match its hash:\n%s", in.raw)
	}
	row := func(raw []byte) *stored {
		return &stored{id: in.id, tenant: in.tenant, key: events.ChainKey{SessionID: in.session, RunnerID: in.runner},
			seq: in.seq, hash: in.hash, raw: raw}
	}
	member := `,"hash":"` + in.hash + `"`
	i := bytes.Index(in.raw, []byte(member))
	if i < 0 {
		t.Fatalf("no hash member in %s", in.raw)
	}
	cut := append(append([]byte(nil), in.raw[:i]...), in.raw[i+len(member):]...)
	// The member last: the same content, not the emitter's bytes.
	last := append(append([]byte(nil), cut[:len(cut)-1]...), member+"}"...)
	// The member inside the first nested object: no top-level hash.
	j := bytes.Index(cut, []byte(":{")) + 2
	nested := append(append(append([]byte(nil), cut[:j]...), member[1:]+","...), cut[j:]...)
	// One character of the content changed.
	edited := bytes.Replace(in.raw, []byte(in.session), []byte(strings.ToUpper(in.session[:1])+in.session[1:]), 1)
	// The same content with a space after the first colon: not the bytes
	// the emitter hashed.
	spaced := bytes.Replace(in.raw, []byte(`":`), []byte(`": `), 1)
	for _, c := range []struct {
		name    string
		raw     []byte
		matches bool
		intact  bool
	}{
		{"as stored", in.raw, true, true},
		{"member last", last, true, true},
		{"spaced", spaced, false, true},
		{"member nested", nested, false, false},
		{"edited", edited, false, false},
	} {
		var e events.Envelope
		if err := events.DecodeInto(&e, c.raw); err == nil {
			if got := h.rawMatches(&e, c.raw); got != c.matches {
				t.Errorf("%s: rawMatches %v, want %v", c.name, got, c.matches)
			}
		} else if c.matches || c.intact {
			t.Fatalf("%s: %v\n%s", c.name, err, c.raw)
		}
		r := row(c.raw)
		f := check(&e, h, r)
		if intact := f == nil && r.contentOK; intact != c.intact {
			t.Errorf("%s: intact %v (finding %+v), want %v", c.name, intact, f, c.intact)
		}
	}
}

// TestVerifyRowsErrors: a failed read or a failed look-up of the ids in
// two chains fails verify, whenever it happens, and stops the read.
func TestVerifyRowsErrors(t *testing.T) {
	batches, _ := verifyData(t, 40, 4, false)
	errCross := errors.New("cross failed")
	tests := []struct {
		name      string
		failAfter int // batches read before the read fails; -1 never
		cross     error
		want      error
	}{
		{"read fails first", 0, nil, errRead},
		{"read fails later", 3, nil, errRead},
		{"cross fails", -1, errCross, errCross},
		{"both fail", 2, errCross, errCross},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := verifyRows(context.Background(), feedBatches(batches, tc.failAfter), func() (map[uint64]bool, error) { return nil, tc.cross })
			if !errors.Is(err, tc.want) || rep != nil {
				t.Errorf("got %v, %v; want %v", rep, err, tc.want)
			}
		})
	}
}
