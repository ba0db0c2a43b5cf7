package ingest

import (
	"bytes"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchPool gives the Kafka client back the memory of fetched batches:
// decompressed bytes and record slices are reused once every record of a
// batch was recycled, which the batcher does as soon as a chunk's rows are
// in their insert. Without it each fetch's buffers were garbage a moment
// after they arrived: a sixth of the ingester's allocation.
type fetchPool struct{ bytes, recs sync.Pool }

// GetDecompressBytes implements kgo.PoolDecompressBytes. Only capacity
// counts; a slice too small is grown by the codec and the grown one comes
// back.
func (p *fetchPool) GetDecompressBytes([]byte, kgo.CompressionCodecType) []byte {
	if b, ok := p.bytes.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return nil
}

// PutDecompressBytes implements kgo.PoolDecompressBytes.
func (p *fetchPool) PutDecompressBytes(b []byte) { p.bytes.Put(&b) }

// GetRecords implements kgo.PoolRecords.
func (p *fetchPool) GetRecords(n int) []kgo.Record {
	if r, ok := p.recs.Get().(*[]kgo.Record); ok && cap(*r) >= n {
		return (*r)[:0]
	}
	return make([]kgo.Record, 0, n)
}

// PutRecords implements kgo.PoolRecords; Recycle zeroed every record.
func (p *fetchPool) PutRecords(r []kgo.Record) { p.recs.Put(&r) }

// ownRecord copies what a dead letter needs of r, so that it outlives r's
// recycling.
func ownRecord(r *kgo.Record) *kgo.Record {
	return &kgo.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value)}
}
