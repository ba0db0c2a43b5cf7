package eventlog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Reading a session back. A runner that starts and finds a sandbox whose
// runner died must close that runner's session: it needs the dead runner's
// chain tip, to continue the chain (Producer.Resume), and the calls that
// were allowed and never completed. Chains live only in producers' memory,
// so the record of truth is the events topic. A session's events are all on
// one partition (the topic is keyed by session id), and a lost session is
// usually recent, so ReadSession reads that partition from its end
// backwards, widening, until it has passed the session's session.started.

// ErrSessionStartNotFound is returned by ReadSession, with the events it
// found, when it read back to the start of the partition or to its record
// bound without meeting the session's session.started: those events may
// not be the whole session (older ones expired or lie beyond the bound).
var ErrSessionStartNotFound = errors.New("eventlog: session.started not found")

// ReadOption configures ReadSession.
type ReadOption func(*readConfig)

type readConfig struct {
	tail, limit int64
}

// WithReadTail sets how many of the partition's newest records ReadSession
// reads first (default 1000); each further step reads twice as many older
// ones.
func WithReadTail(n int64) ReadOption { return func(c *readConfig) { c.tail = max(n, 1) } }

// WithReadLimit bounds how many records ReadSession reads in all (default
// 1,000,000).
func WithReadLimit(n int64) ReadOption { return func(c *readConfig) { c.limit = max(n, 1) } }

// partitionFor returns the partition of n that the producer writes key to:
// Kafka's murmur2 hash of the key, which franz-go's default partitioner
// (and the Java client's) uses for every keyed record.
func partitionFor(topic string, key []byte, n int) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(&kgo.Record{Key: key}, n))
}

// ReadSession reads the events of sessionID back from topic, the events
// topic the Producer writes keyed by session id: from the partition that
// key maps to, it reads the newest records (WithReadTail), then older
// ranges twice as long each time, until a range holds the session's
// session.started, the partition's start is reached, or WithReadLimit
// records were read. cl may be any client of the cluster (it is used for
// metadata and direct fetches, and is not made to consume).
//
// Every record with the session's key is decoded and validated; one that
// does not decode fails ReadSession, because a caller resuming a chain must
// not guess its tip. The events are returned in topic order with each
// chain in seq order (an event delivered twice is returned once), so the
// last event of a chain is its tip. When the bound is hit first, the events
// found come with an error wrapping ErrSessionStartNotFound.
func ReadSession(ctx context.Context, cl *kgo.Client, topic, sessionID string, opts ...ReadOption) ([]*events.Envelope, error) {
	cfg := readConfig{tail: 1000, limit: 1_000_000}
	for _, o := range opts {
		o(&cfg)
	}
	if sessionID == "" {
		return nil, errors.New("eventlog: ReadSession needs a session id")
	}
	r := &sessionReader{cl: cl, adm: kadm.NewClient(cl), topic: topic, sessionID: sessionID, key: []byte(sessionID)}
	if err := r.locate(ctx); err != nil {
		return nil, err
	}
	start, end, err := r.offsets(ctx)
	if err != nil {
		return nil, err
	}
	var ranges [][]*events.Envelope // newest range first
	found := false
	hi, size, read := end, cfg.tail, int64(0)
	for hi > start && read < cfg.limit && !found {
		lo := max(start, hi-size, hi-(cfg.limit-read))
		evs, err := r.read(ctx, lo, hi)
		if err != nil {
			return nil, err
		}
		ranges = append(ranges, evs)
		found = slices.ContainsFunc(evs, func(e *events.Envelope) bool { return e.EventType == events.TypeSessionStarted })
		read += hi - lo
		hi, size = lo, size*2
	}
	var out []*events.Envelope
	for i := len(ranges) - 1; i >= 0; i-- {
		out = append(out, ranges[i]...)
	}
	out = chainOrder(out)
	if !found {
		return out, fmt.Errorf("%w: session %s: read %d records of %s partition %d back to offset %d (start %d, end %d)",
			ErrSessionStartNotFound, sessionID, read, topic, r.partition, hi, start, end)
	}
	return out, nil
}

// ReadSession is ReadSession on the producer's client and events topic.
func (p *Producer) ReadSession(ctx context.Context, sessionID string, opts ...ReadOption) ([]*events.Envelope, error) {
	return ReadSession(ctx, p.cl, p.topics.Events, sessionID, opts...)
}

// chainOrder drops repeated events (same id and hash: a record the
// producer sent twice) and puts each chain's events in seq order in the
// places that chain's events held, keeping the topic's interleaving of
// chains.
func chainOrder(evs []*events.Envelope) []*events.Envelope {
	type id struct{ eventID, hash string }
	seen := map[id]bool{}
	out := evs[:0]
	for _, e := range evs {
		if k := (id{e.EventID, e.Hash}); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	slots := map[events.ChainKey][]int{}
	for i, e := range out {
		slots[e.Key()] = append(slots[e.Key()], i)
	}
	for _, idx := range slots {
		chain := make([]*events.Envelope, len(idx))
		for j, i := range idx {
			chain[j] = out[i]
		}
		slices.SortStableFunc(chain, func(a, b *events.Envelope) int { return cmp.Compare(a.Seq, b.Seq) })
		for j, i := range idx {
			out[i] = chain[j]
		}
	}
	return out
}

// sessionReader fetches one partition directly from its leader.
type sessionReader struct {
	cl        *kgo.Client
	adm       *kadm.Client
	topic     string
	sessionID string
	key       []byte

	topicID   [16]byte
	partition int32
	leader    int32
}

// locate finds the session's partition and its leader.
func (r *sessionReader) locate(ctx context.Context) error {
	tds, err := r.adm.ListTopics(ctx, r.topic)
	if err != nil {
		return fmt.Errorf("eventlog: read session: metadata of %s: %w", r.topic, err)
	}
	td, ok := tds[r.topic]
	if !ok || td.Err != nil || len(td.Partitions) == 0 {
		return fmt.Errorf("eventlog: read session: topic %s: %w", r.topic, errors.Join(td.Err, kerr.UnknownTopicOrPartition))
	}
	r.topicID = td.ID
	r.partition = partitionFor(r.topic, r.key, len(td.Partitions))
	pd, ok := td.Partitions[r.partition]
	if !ok || pd.Err != nil || pd.Leader < 0 {
		return fmt.Errorf("eventlog: read session: %s partition %d has no leader: %w", r.topic, r.partition, errors.Join(pd.Err, kerr.LeaderNotAvailable))
	}
	r.leader = pd.Leader
	return nil
}

// offsets returns the partition's log start and high watermark.
func (r *sessionReader) offsets(ctx context.Context) (start, end int64, err error) {
	so, err := r.adm.ListStartOffsets(ctx, r.topic)
	if err != nil {
		return 0, 0, fmt.Errorf("eventlog: read session: start offsets of %s: %w", r.topic, err)
	}
	eo, err := r.adm.ListEndOffsets(ctx, r.topic)
	if err != nil {
		return 0, 0, fmt.Errorf("eventlog: read session: end offsets of %s: %w", r.topic, err)
	}
	s, ok1 := so.Lookup(r.topic, r.partition)
	e, ok2 := eo.Lookup(r.topic, r.partition)
	if !ok1 || !ok2 || s.Err != nil || e.Err != nil {
		return 0, 0, fmt.Errorf("eventlog: read session: offsets of %s partition %d: %w", r.topic, r.partition, errors.Join(s.Err, e.Err, kerr.UnknownTopicOrPartition))
	}
	return s.Offset, e.Offset, nil
}

// read returns the session's events among the records at offsets
// [lo, hi), in offset order.
func (r *sessionReader) read(ctx context.Context, lo, hi int64) ([]*events.Envelope, error) {
	var out []*events.Envelope
	off, retries := lo, 0
	for off < hi {
		fp, next, err := r.fetch(ctx, off)
		if err != nil {
			var ke *kerr.Error
			if errors.As(err, &ke) && ke.Retriable && retries < 10 && ctx.Err() == nil {
				// The leader moved or is loading: find it again.
				retries++
				time.Sleep(time.Duration(retries) * 100 * time.Millisecond)
				if lerr := r.locate(ctx); lerr != nil {
					return nil, lerr
				}
				continue
			}
			if errors.Is(err, kerr.OffsetOutOfRange) && off == lo {
				// Retention removed the range's start meanwhile: read on
				// from the new start of the log.
				start, _, oerr := r.offsets(ctx)
				if oerr == nil && start > off {
					off = start
					continue
				}
			}
			return nil, fmt.Errorf("eventlog: read session: fetch %s partition %d at offset %d: %w", r.topic, r.partition, off, err)
		}
		retries = 0
		for _, rec := range fp.Records {
			if rec.Offset < off || rec.Offset >= hi || !bytes.Equal(rec.Key, r.key) {
				continue
			}
			env, err := events.Decode(rec.Value)
			if err != nil {
				return nil, fmt.Errorf("eventlog: read session: record %s/%d@%d: %w", r.topic, r.partition, rec.Offset, err)
			}
			if env.SessionID == r.sessionID {
				out = append(out, env)
			}
		}
		if next <= off {
			return nil, fmt.Errorf("eventlog: read session: fetch %s partition %d at offset %d made no progress", r.topic, r.partition, off)
		}
		off = next
	}
	return out, nil
}

// fetch sends one fetch request for the partition at off to its leader and
// returns the decoded records and the offset to fetch next.
func (r *sessionReader) fetch(ctx context.Context, off int64) (kgo.FetchPartition, int64, error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 500
	req.MinBytes = 1
	req.MaxBytes = 16 << 20
	// The producer writes no transactions: every acknowledged record is
	// readable up to the high watermark.
	req.IsolationLevel = 0
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = r.topic, r.topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = r.partition, off, 8<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := r.cl.Broker(int(r.leader)).Request(ctx, req)
	if err != nil {
		return kgo.FetchPartition{}, 0, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kgo.FetchPartition{}, 0, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return kgo.FetchPartition{}, 0, fmt.Errorf("fetch response for %d topics, want 1 partition of 1", len(resp.Topics))
	}
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: off, Topic: r.topic, Partition: r.partition},
		&resp.Topics[0].Partitions[0], kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return fp, 0, fp.Err
	}
	return fp, next, nil
}
