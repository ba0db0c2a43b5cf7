package detect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrCheckpoint: the state topic could not be read or written.
var ErrCheckpoint = errors.New("detect: checkpoint failed")

var errBadCheckpoint = errors.New("bad checkpoint")

// checkpointVersion is bumped when taskState changes incompatibly.
const checkpointVersion = 1

// taskState is one partition's checkpoint: the offset it covers and the
// state built from everything before it, in one record, so state and
// offset are durable together or not at all.
type taskState struct {
	Version int   `json:"version"`
	Next    int64 `json:"next"`
	// Engines are engine snapshots: "" is the local engine of an events
	// partition, a rule id an engine of a repartition partition.
	Engines map[string]json.RawMessage `json:"engines,omitempty"`
	// Seen is, per source partition and rule, the highest source offset a
	// repartition partition has applied: re-forwarded records at or below
	// it are duplicates.
	Seen map[string]int64 `json:"seen,omitempty"`
	// Outbox holds events decided but perhaps not yet written, and
	// OutboxAt when they were decided (the recovery scan starts there).
	Outbox   []*pendingEvent `json:"outbox,omitempty"`
	OutboxAt time.Time       `json:"outbox_at,omitzero"`
	// SQLTo is, per SQL rule, the end of the last range it ran over.
	SQLTo map[string]time.Time `json:"sql_to,omitempty"`
}

// logRecord is what one batch decided between full checkpoints: written
// before the batch's events, so that after a crash the replay from the
// last checkpoint knows these alerts were raised (Alerts, by identity) and
// that their events may be on the topic already (Events).
type logRecord struct {
	Version int                  `json:"version"`
	UpTo    int64                `json:"up_to"` // offset after the batch
	At      time.Time            `json:"at"`
	Events  []*pendingEvent      `json:"events"`
	Alerts  []string             `json:"alerts"`
	SQLTo   map[string]time.Time `json:"sql_to,omitempty"`

	key string
}

// restored is what the state topic holds for one partition.
type restored struct {
	state *taskState // nil when the partition never had a full checkpoint
	logs  []*logRecord
}

// stateStore keeps task states in a compacted topic keyed by
// group/topic/partition, so a partition's state follows it to whichever
// instance the group assigns it.
type stateStore struct {
	cl    *kgo.Client // producer; reads use short-lived clients
	seeds []string
	topic string
	group string
	// scanned is how far the topic has been read, per partition, and
	// latest the newest value per key found so far.
	mu      sync.Mutex // saves of several partitions run at once
	scanned map[int32]int64
	latest  map[string][]byte
}

func newStateStore(brokers []string, topic, group string, opts ...kgo.Opt) (*stateStore, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()),
		kgo.ProducerBatchMaxBytes(maxStateBytes),
		kgo.ProducerLinger(0),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	return &stateStore{cl: cl, seeds: brokers, topic: topic, group: group, scanned: map[int32]int64{}, latest: map[string][]byte{}}, nil
}

// maxStateBytes bounds one checkpoint record (the topic is created with a
// matching max.message.bytes).
const maxStateBytes = 64 << 20

func (s *stateStore) key(topic string, partition int32) string {
	return fmt.Sprintf("%s/%s/%d", s.group, topic, partition)
}

func (s *stateStore) logPrefix(topic string, partition int32) string {
	return s.key(topic, partition) + "/log/"
}

// saveLog writes a log record under key and waits for it.
func (s *stateStore) saveLog(ctx context.Context, key string, lr *logRecord) error {
	lr.Version = checkpointVersion
	b, err := json.Marshal(lr)
	if err != nil {
		return fmt.Errorf("%w: encode: %w", ErrCheckpoint, err)
	}
	if err := s.cl.ProduceSync(ctx, &kgo.Record{Topic: s.topic, Key: []byte(key), Value: b}).FirstErr(); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrCheckpoint, key, err)
	}
	return nil
}

// forget deletes log records a full checkpoint covers. It does not wait: a
// record left behind is recognised as covered and deleted at the next
// restore.
func (s *stateStore) forget(keys []string) {
	for _, k := range keys {
		s.cl.Produce(context.Background(), &kgo.Record{Topic: s.topic, Key: []byte(k)}, nil)
	}
}

func (s *stateStore) save(ctx context.Context, topic string, partition int32, st *taskState) (int, error) {
	st.Version = checkpointVersion
	b, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("%w: encode: %w", ErrCheckpoint, err)
	}
	if len(b) > maxStateBytes {
		return 0, fmt.Errorf("%w: %s/%d state is %d bytes, over %d", ErrCheckpoint, topic, partition, len(b), maxStateBytes)
	}
	k := s.key(topic, partition)
	if err := s.cl.ProduceSync(ctx, &kgo.Record{Topic: s.topic, Key: []byte(k), Value: b}).FirstErr(); err != nil {
		return 0, fmt.Errorf("%w: write %s: %w", ErrCheckpoint, k, err)
	}
	s.mu.Lock()
	s.latest[k] = b
	s.mu.Unlock()
	return len(b), nil
}

// load returns the latest state of each partition that has one, reading
// the state topic from where the last load stopped to its current end.
func (s *stateStore) load(ctx context.Context, parts map[string][]int32) (map[tp]*restored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.catchUp(ctx); err != nil {
		return nil, err
	}
	out := map[tp]*restored{}
	for topic, ps := range parts {
		for _, p := range ps {
			r := &restored{}
			if b := s.latest[s.key(topic, p)]; len(b) > 0 {
				var st taskState
				if err := json.Unmarshal(b, &st); err != nil || st.Version != checkpointVersion {
					return nil, fmt.Errorf("%w: %w: state of %s/%d does not decode (version %d): %v", ErrCheckpoint, errBadCheckpoint, topic, p, st.Version, err)
				}
				r.state = &st
			}
			prefix := s.logPrefix(topic, p)
			for k, b := range s.latest {
				if !strings.HasPrefix(k, prefix) || len(b) == 0 {
					continue
				}
				var lr logRecord
				if err := json.Unmarshal(b, &lr); err != nil || lr.Version != checkpointVersion {
					return nil, fmt.Errorf("%w: %w: log record %s does not decode: %v", ErrCheckpoint, errBadCheckpoint, k, err)
				}
				lr.key = k
				r.logs = append(r.logs, &lr)
			}
			slices.SortFunc(r.logs, func(a, b *logRecord) int { return cmp.Compare(a.UpTo, b.UpTo) })
			if r.state != nil || len(r.logs) > 0 {
				out[tp{topic, p}] = r
			}
		}
	}
	return out, nil
}

func (s *stateStore) catchUp(ctx context.Context) error {
	adm := kadm.NewClient(s.cl)
	var ends kadm.ListedOffsets
	for attempt := 1; ; attempt++ {
		var err error
		ends, err = adm.ListEndOffsets(ctx, s.topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			break
		}
		// A topic created a moment ago is not known to every broker yet.
		if attempt >= 20 || !kerr.IsRetriable(err) || ctx.Err() != nil {
			return fmt.Errorf("%w: end offsets of %s: %w", ErrCheckpoint, s.topic, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	want := map[int32]int64{}
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > s.scanned[o.Partition] {
			want[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(s.scanned[o.Partition])
		}
	})
	if len(want) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(s.seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: from}),
		kgo.FetchMaxPartitionBytes(maxStateBytes), kgo.FetchMaxBytes(maxStateBytes))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	defer rd.Close()
	for len(want) > 0 {
		// A compacted topic may end in a gap (its end offset past the last
		// record left), and such a fetch brings nothing: a quiet poll means
		// the topic has been read.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := rd.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: read %s: %w", ErrCheckpoint, s.topic, err)
		}
		var ferr error
		quiet := false
		fs.EachError(func(_ string, _ int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) {
				quiet = true
			} else {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("%w: read %s: %w", ErrCheckpoint, s.topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			s.latest[string(r.Key)] = r.Value // a nil value (tombstone) deletes
			s.scanned[r.Partition] = r.Offset + 1
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
		})
		if quiet && fs.NumRecords() == 0 {
			for p, w := range want {
				s.scanned[p] = w
			}
			break
		}
	}
	return nil
}

func (s *stateStore) close() { s.cl.Close() }
