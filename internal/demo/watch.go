package demo

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/events"
)

// watcher follows the demo's topics from where they ended when the demo
// started, to learn the session's id and count the session's events, so
// the demo can wait until ClickHouse holds all of them.
type watcher struct {
	cl       *kgo.Client
	runnerID string
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	session string
	counts  map[string]int // event type → events of the session
	changed chan struct{}  // closed and replaced on every new event
}

func newWatcher(ctx context.Context, brokers []string, topics []string, runnerID string) (*watcher, error) {
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topics...)
	adm.Close()
	if err != nil {
		return nil, err
	}
	start := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if start[o.Topic] == nil {
			start[o.Topic] = map[int32]kgo.Offset{}
		}
		start[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(start),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cl: cl, runnerID: runnerID, cancel: cancel, done: make(chan struct{}),
		counts: map[string]int{}, changed: make(chan struct{})}
	go w.run(wctx)
	return w, nil
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	// Events of the session that arrive before its session.started is
	// seen (another partition) are kept and counted once it is.
	var early []*events.Envelope
	for ctx.Err() == nil {
		fs := w.cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			e, err := events.Decode(r.Value)
			if err != nil {
				return
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.session == "" && e.EventType == events.TypeSessionStarted && e.RunnerID == w.runnerID {
				w.session = e.SessionID
				for _, x := range early {
					if x.SessionID == w.session {
						w.counts[string(x.EventType)]++
					}
				}
				early = nil
			}
			switch {
			case w.session == "":
				early = append(early, e)
			case e.SessionID == w.session:
				w.counts[string(e.EventType)]++
			default:
				return
			}
			close(w.changed)
			w.changed = make(chan struct{})
		})
	}
}

// wait returns once ok holds for the session id and counts, or when
// timeout passes (false).
func (w *watcher) wait(ctx context.Context, timeout time.Duration, ok func(session string, counts map[string]int) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		done := ok(w.session, w.counts)
		ch := w.changed
		w.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		}
	}
}

// snapshot returns the session id and a copy of the counts.
func (w *watcher) snapshot() (string, map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := make(map[string]int, len(w.counts))
	for k, v := range w.counts {
		c[k] = v
	}
	return w.session, c
}

func (w *watcher) close() {
	w.cancel()
	<-w.done
	w.cl.Close()
}
