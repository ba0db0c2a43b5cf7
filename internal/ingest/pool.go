package ingest

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kgo"
)

// freeList keeps up to cap(c) buffers between uses. Unlike a sync.Pool
// it survives collections, which at full load come every few hundred
// milliseconds and emptied a pool about as often as it filled.
type freeList[T any] struct{ c chan T }

func newFreeList[T any](n int) freeList[T] { return freeList[T]{make(chan T, n)} }

func (f freeList[T]) get() (T, bool) {
	select {
	case v := <-f.c:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

func (f freeList[T]) put(v T) {
	select {
	case f.c <- v:
	default:
	}
}

// fetchPool gives the Kafka client back the memory of fetched batches:
// decompressed bytes and record slices are reused once every record of a
// batch was recycled, which the batcher does as soon as a chunk's rows are
// in their insert. Without it each fetch's buffers were garbage a moment
// after they arrived: a sixth of the ingester's allocation. A fetch holds
// at most a few batches per partition, so a few buffers of each suffice.
type fetchPool struct {
	bytes freeList[[]byte]
	recs  freeList[[]kgo.Record]
}

func newFetchPool() *fetchPool {
	return &fetchPool{bytes: newFreeList[[]byte](8), recs: newFreeList[[]kgo.Record](16)}
}

// GetDecompressBytes implements kgo.PoolDecompressBytes. Only capacity
// counts; a slice too small is grown by the codec and the grown one comes
// back.
func (p *fetchPool) GetDecompressBytes(src []byte, _ kgo.CompressionCodecType) []byte {
	b, _ := p.bytes.get()
	if want := 4 * len(src); cap(b) < want {
		// JSON events compress about 3-4x. A slice too small would be
		// dropped for the codec's exact-size one anyway.
		b = make([]byte, 0, want)
	}
	return b[:0]
}

// PutDecompressBytes implements kgo.PoolDecompressBytes.
func (p *fetchPool) PutDecompressBytes(b []byte) { p.bytes.put(b) }

// GetRecords implements kgo.PoolRecords.
func (p *fetchPool) GetRecords(n int) []kgo.Record {
	if r, ok := p.recs.get(); ok && cap(r) >= n {
		return r[:0]
	}
	return make([]kgo.Record, 0, n)
}

// PutRecords implements kgo.PoolRecords; Recycle zeroed every record.
func (p *fetchPool) PutRecords(r []kgo.Record) { p.recs.put(r) }

// ownRecord copies what a dead letter needs of r, so that it outlives r's
// recycling.
func ownRecord(r *kgo.Record) *kgo.Record {
	return &kgo.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value)}
}
