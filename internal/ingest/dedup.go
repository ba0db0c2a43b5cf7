package ingest

// dedup remembers the content fingerprint of recent event ids, to catch an
// id reused with other content. It holds between window/2 and window ids in
// two generations: when the current one fills, the older is dropped. Ids
// older than that are not compared here; ClickHouse still shows them, since
// hash is in the events sorting key.
type dedup struct {
	cur, old map[uint64]uint64
	half     int
}

func newDedup(window int) *dedup {
	half := max(window/2, 1)
	return &dedup{cur: make(map[uint64]uint64, min(half, 1<<16)), old: map[uint64]uint64{}, half: half}
}

// check records fp for id unless id is known, and returns the fingerprint
// first seen for id and whether there was one.
func (d *dedup) check(id, fp uint64) (uint64, bool) {
	if seen, ok := d.cur[id]; ok {
		return seen, true
	}
	if seen, ok := d.old[id]; ok {
		d.cur[id] = seen
		return seen, true
	}
	if len(d.cur) >= d.half {
		d.old, d.cur = d.cur, make(map[uint64]uint64, min(d.half, 1<<16))
	}
	d.cur[id] = fp
	return fp, false
}
