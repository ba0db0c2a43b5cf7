package ingest

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestChainBreaksRecorded: a dropped event, an edited event and a spliced
// link in real chains are recorded in chain_breaks while every event still
// loads; and a restart in the middle of chains resumes them from storage
// without false breaks.
func TestChainBreaksRecorded(t *testing.T) {
	e := newEnv(t)
	recs := sessions(t, e.cfg.Topics, 4, "chain")
	per := len(recs) / 4
	s0, s1, s2, s3 := recs[:per], recs[per:2*per], recs[2*per:3*per], recs[3*per:]
	// Session 0: drop its 4th event (a gap on its chain).
	dropped := s0[3]
	s0 = append(append([]*kgo.Record{}, s0[:3]...), s0[4:]...)
	// Session 1: edit the 3rd event's content without its hash.
	edited := *s1[2]
	edited.Value = []byte(strings.Replace(string(edited.Value), `"tenant":"acme"`, `"tenant":"acmx"`, 1))
	s1[2] = &edited
	_ = dropped

	cfg := e.cfg
	cfg.ChainGrace = time.Second
	stop := e.run(cfg)
	e.produce(append(s0, s1...)...)
	// Sessions 2 and 3 are split by a restart.
	e.produce(s2[:per/2]...)
	e.produce(s3[:per/2]...)
	loaded := uint64(len(s0) + len(s1) + per/2*2)
	e.waitRows("SELECT count() FROM {db}.events FINAL", loaded, 60*time.Second)
	e.waitRows("SELECT count() FROM {db}.chain_breaks WHERE kind = 'gap'", 1, 30*time.Second)
	stop()

	stop = e.run(cfg)
	e.produce(s2[per/2:]...)
	e.produce(s3[per/2:]...)
	e.waitRows("SELECT count() FROM {db}.events FINAL", loaded+uint64(len(s2)-per/2+len(s3)-per/2), 60*time.Second)
	time.Sleep(3 * cfg.ChainGrace) // let any parked event run out of grace
	stop()

	rows, err := e.admin.Conn().Query(context.Background(), "SELECT session_id, kind FROM "+cfg.Database+".chain_breaks FINAL")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s, k string
		if err := rows.Scan(&s, &k); err != nil {
			t.Fatal(err)
		}
		got = append(got, s+" "+k)
	}
	rows.Close()
	sort.Strings(got)
	want := []string{"sess-chain-0000 gap", "sess-chain-0001 edit"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chain_breaks (-want +got):\n%s", diff)
	}
}
