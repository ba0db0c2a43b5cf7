package runner

import (
	"log/slog"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/preview"
)

// hub routes what arrives on audit.approvals: signed decisions to the calls
// waiting for them (by approval id), holds and releases to sessions (by
// session id). Decisions are verified against the key set and claimed in a
// replay guard before any call sees them.
type hub struct {
	keys  *signing.KeySet
	guard *signing.ReplayGuard
	now   func() time.Time
	stats *Stats
	log   *slog.Logger

	mu       sync.Mutex
	waiting  map[string]*waiter
	answered map[string]signing.RequestRef // kept until expiry to recognise replays
	sessions map[string]*Session
}

type waiter struct {
	ref signing.RequestRef
	ch  chan verified
}

// verified is a decision that passed KeySet.Verified and ReplayGuard.Accept.
type verified struct {
	env *events.Envelope
	d   *events.ApprovalDecided
}

func newHub(keys *signing.KeySet, now func() time.Time, stats *Stats, log *slog.Logger) *hub {
	return &hub{
		keys: keys, guard: signing.NewReplayGuard(now), now: now, stats: stats, log: log,
		waiting: map[string]*waiter{}, answered: map[string]signing.RequestRef{},
		sessions: map[string]*Session{},
	}
}

// wait registers interest in ref's decision. Register before emitting the
// request, so a fast answer cannot be missed.
func (h *hub) wait(ref signing.RequestRef) *waiter {
	w := &waiter{ref: ref, ch: make(chan verified, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for id, r := range h.answered {
		if now.After(r.ExpiresAt) {
			delete(h.answered, id)
		}
	}
	h.waiting[ref.ApprovalID] = w
	return w
}

// done stops waiting for ref; later decisions for it are checked (and
// refused) as replays or late answers.
func (h *hub) done(ref signing.RequestRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.waiting, ref.ApprovalID)
	h.answered[ref.ApprovalID] = ref
}

func (h *hub) addSession(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions[s.id] = s
}

func (h *hub) removeSession(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions, id)
}

func (h *hub) dispatch(env *events.Envelope) {
	switch env.EventType {
	case events.TypeApprovalDecided:
		h.decision(env)
	case events.TypeSessionHeld, events.TypeSessionReleased:
		h.mu.Lock()
		s := h.sessions[env.SessionID]
		h.mu.Unlock()
		if s != nil {
			s.setHold(env.EventType == events.TypeSessionHeld, env.EventID)
			h.log.Info("session hold changed", "session", env.SessionID, "event", env.EventType, "event_id", env.EventID)
		}
	}
}

func (h *hub) decision(env *events.Envelope) {
	h.mu.Lock()
	w := h.waiting[env.ApprovalID]
	ref, answered := h.answered[env.ApprovalID]
	h.mu.Unlock()
	if w != nil {
		ref = w.ref
	} else if !answered {
		h.stats.DecisionsUnknown.Add(1)
		return
	}
	if h.keys == nil {
		h.stats.reject(signing.CodeUnknownKey)
		h.log.Warn("approval decision refused: no approval keys configured", "approval_id", env.ApprovalID)
		return
	}
	d, err := h.guard.Accept(h.keys, env, ref)
	if err != nil {
		code := signing.CodeOf(err)
		if code == signing.CodePartial {
			h.log.Info("partial approval; waiting for the second approver", "approval_id", env.ApprovalID, "err", err)
			return
		}
		h.stats.reject(code)
		h.log.Warn("approval decision refused", "approval_id", env.ApprovalID, "event_id", env.EventID, "code", code, "err", err)
		return
	}
	if w == nil {
		// Verified, but nobody waits any more (the call expired or was
		// cancelled): acting on it now would run a call the agent was
		// already told was denied.
		h.stats.reject(signing.CodeExpired)
		return
	}
	h.stats.DecisionsAccepted.Add(1)
	select {
	case w.ch <- verified{env: env, d: d}:
	default:
	}
}

// writePreview is what an approval request about a write_file call shows
// the approver (approval.requested's preview): the new content and a
// unified diff against the file it would replace, bounded and with
// secrets redacted. Only the runner can read that file, so the runner
// fills it in; rel is the path the workspace resolved. The file is read
// through an os.Root of the workspace, never through a symlink out of it.
func writePreview(hostWorkspace, rel, shownPath string, content []byte) *events.WritePreview {
	cur, exists := preview.CurrentFile(hostWorkspace, rel)
	return preview.FileWrite(shownPath, cur, exists, content)
}
