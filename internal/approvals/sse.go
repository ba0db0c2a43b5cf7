package approvals

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// hub fans changes out to the event-stream clients. A client that falls
// behind by more than its buffer is disconnected (and counted) rather than
// slowing the fold; its browser reconnects and reloads the lists.
type hub struct {
	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	dropped atomic.Uint64
}

type subscriber struct {
	ch     chan []byte
	closed bool
}

const subscriberBuffer = 256

func newHub() *hub { return &hub{subs: map[*subscriber]struct{}{}} }

func (h *hub) subscribe() *subscriber {
	s := &subscriber{ch: make(chan []byte, subscriberBuffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		if !s.closed {
			s.closed = true
			close(s.ch)
		}
	}
}

func (h *hub) clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// publish sends one server-sent event to every client.
func (h *hub) publish(event string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		return
	}
	frame := make([]byte, 0, len(b)+len(event)+16)
	frame = append(frame, "event: "...)
	frame = append(frame, event...)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, b...) // json.Marshal output has no newlines
	frame = append(frame, "\n\n"...)
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- frame:
		default:
			h.dropped.Add(1)
			delete(h.subs, s)
			s.closed = true
			close(s.ch)
		}
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		delete(h.subs, s)
		if !s.closed {
			s.closed = true
			close(s.ch)
		}
	}
}

// heartbeat keeps idle streams (and proxies in between) from timing out.
const heartbeat = 15 * time.Second

// serveEvents streams changes as text/event-stream. The browser reads it
// with fetch() so that the bearer token travels in the Authorization
// header (EventSource cannot set headers, and a token in the URL would end
// up in logs).
func (s *Service) serveEvents(w http.ResponseWriter, r *http.Request, ap Approver) {
	rc := http.NewResponseController(w)
	// The server's write timeout is for ordinary responses; a stream lives
	// until the client goes.
	_ = rc.SetWriteDeadline(time.Time{})
	sub := s.hub.subscribe()
	defer s.hub.unsubscribe(sub)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	hello, _ := json.Marshal(map[string]any{"approver": ap.ID, "ready": s.isReady()})
	if _, err := w.Write(append(append([]byte("retry: 2000\nevent: hello\ndata: "), hello...), "\n\n"...)); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case frame, ok := <-sub.ch:
			if !ok {
				return
			}
			if _, err := w.Write(frame); err != nil {
				return
			}
		case <-tick.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func (s *Service) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}
