package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// Errors of the service. Refusals of a decision are *Error values with a
// Code (see errors.go); these are the service's own failures.
var (
	// ErrNotReady: the service has not yet folded the topic up to where it
	// stood at start, so its state could be stale.
	ErrNotReady = errors.New("approvals: service is still rebuilding its state")
	// ErrNotApplied: the event was acknowledged by Kafka but the service's
	// own fold has not read it back in time.
	ErrNotApplied = errors.New("approvals: event acknowledged but not yet applied")
	// ErrNoHold: the session has no active hold (or not the one named).
	ErrNoHold = errors.New("approvals: no such hold")
)

// Emitter writes an event and returns once Kafka acknowledged it
// (eventlog.Producer's Emit). A failure wraps eventlog.ErrAuditUnavailable.
type Emitter interface {
	Emit(ctx context.Context, e *events.Envelope) error
}

// afterEmitter is an Emitter that can also record an event about
// something that already happened, spooling it durably while Kafka is down
// (eventlog.Producer's EmitAfter). The service records expiries with it: the
// runner has stopped waiting by itself, and writing the expiry again on
// the next tick would put a second expiry on the chain.
type afterEmitter interface {
	EmitAfter(ctx context.Context, e *events.Envelope) error
}

// Service is the approvals service: it folds the approvals topic into a
// State from the beginning (every instance rebuilds the whole state; the
// topic is the only source of truth) and keeps following it, answers
// requests with signed approval.decided events, releases holds with
// session.released, expires unanswered requests, and follows recent alerts
// on the events topic. Its HTTP API is Handler.
type Service struct {
	state   *State
	triage  *TriageState // alert triage and suppressions, folded from the same topic
	auth    *Authenticator
	signer  signing.Signer
	emitter Emitter
	ids     *events.IDGen
	emitID  string // runner_id of the events the service writes
	log     *slog.Logger
	now     func() time.Time

	brokers     []string
	topics      eventlog.Topics
	kopts       []kgo.Opt
	expire      bool
	expiryEvery time.Duration
	applyWait   time.Duration
	recent      *recent
	origins     []string

	ready     chan struct{}
	readyOnce sync.Once

	waitMu  sync.Mutex
	waiters map[string]chan Change // event id → the fold's change for it

	lockMu  sync.Mutex
	locks   map[string]*keyLock // per approval id / session: one answer at a time
	hub     *hub
	metrics *metrics

	expiryMu    sync.Mutex
	expiryRetry map[string]Request // marked expired, event not yet acknowledged
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// ServiceOption configures a Service.
type ServiceOption func(*Service)

// WithServiceLogger sets the logger. Tokens never reach it.
func WithServiceLogger(l *slog.Logger) ServiceOption { return func(s *Service) { s.log = l } }

// WithServiceClock sets the clock for decided_at and expiry. The
// Authenticator has its own (WithAuthClock); give both the same.
func WithServiceClock(now func() time.Time) ServiceOption { return func(s *Service) { s.now = now } }

// WithServiceTopics overrides the topic names.
func WithServiceTopics(t eventlog.Topics) ServiceOption { return func(s *Service) { s.topics = t } }

// WithServiceKafkaOptions passes extra franz-go options to the service's
// consumers.
func WithServiceKafkaOptions(o ...kgo.Opt) ServiceOption {
	return func(s *Service) { s.kopts = append(s.kopts, o...) }
}

// WithTrustedKeys sets the keys the fold verifies decisions with (default:
// the signer's own public key). After a key rotation it must hold the old
// keys as well, or a rebuild would reject the decisions they signed.
func WithTrustedKeys(ks *signing.KeySet) ServiceOption {
	return func(s *Service) { s.state, s.triage = NewState(WithVerifier(ks)), NewTriageState(ks) }
}

// WithExpiry turns the expiry of unanswered requests on or off (default
// on) and sets how often it looks (default 1 s). It is safe on every
// instance: when two expire one request, the first expiry in the
// partition takes effect everywhere and the other is a rejected attempt.
func WithExpiry(on bool, every time.Duration) ServiceOption {
	return func(s *Service) {
		s.expire = on
		if every > 0 {
			s.expiryEvery = every
		}
	}
}

// WithApplyWait bounds how long an API call waits for its event to come
// back through the fold (default 10 s).
func WithApplyWait(d time.Duration) ServiceOption { return func(s *Service) { s.applyWait = d } }

// WithAlertWindow sets how far back the service reads the events topic at
// start for alerts and the events requests are about (default 1 h), and how
// many of each it keeps (default 500 alerts, 20 000 subject events).
func WithAlertWindow(d time.Duration, alerts, subjects int) ServiceOption {
	return func(s *Service) { s.recent = newRecent(d, alerts, subjects) }
}

// WithAllowedOrigins adds origins (scheme://host:port) allowed to POST
// besides the service's own (the request's Host).
func WithAllowedOrigins(o ...string) ServiceOption {
	return func(s *Service) { s.origins = append(s.origins, o...) }
}

// NewService returns a service that signs with signer, authenticates and
// authorizes with auth, writes with emitter and reads brokers. ids issues
// the event ids of the events it writes; its node id must be unique among
// emitters. emitID is the service's runner_id: each process needs its own,
// because a chain restarts at seq 1 with every process (see NewEmitterID).
func NewService(brokers []string, emitter Emitter, signer signing.Signer, auth *Authenticator, ids *events.IDGen, emitID string, opts ...ServiceOption) (*Service, error) {
	switch {
	case len(brokers) == 0:
		return nil, errors.New("approvals: service needs at least one broker")
	case emitter == nil:
		return nil, errors.New("approvals: service needs an emitter")
	case signer.KeyID() == "": // the zero Signer
		return nil, errors.New("approvals: service needs a signer")
	case auth == nil:
		return nil, errors.New("approvals: service needs an authenticator")
	case ids == nil:
		return nil, errors.New("approvals: service needs an id generator")
	case emitID == "":
		return nil, errors.New("approvals: service needs an emitter id")
	}
	ks, err := signing.NewKeySet([]signing.PublicKey{signer.Public()})
	if err != nil {
		return nil, err
	}
	s := &Service{
		state: NewState(WithVerifier(ks)), triage: NewTriageState(ks), auth: auth, signer: signer, emitter: emitter,
		ids: ids, emitID: emitID, log: slog.New(slog.DiscardHandler), now: time.Now,
		brokers: brokers, topics: eventlog.DefaultTopics,
		expire: true, expiryEvery: time.Second, applyWait: 10 * time.Second,
		recent: newRecent(time.Hour, 500, 20000),
		ready:  make(chan struct{}), waiters: map[string]chan Change{},
		locks: map[string]*keyLock{}, hub: newHub(), expiryRetry: map[string]Request{},
	}
	for _, o := range opts {
		o(s)
	}
	s.metrics = newMetrics(s)
	return s, nil
}

// NewEmitterID returns a runner_id for one run of the service: base, a
// dash, and the base-36 time of an id from ids. Every process writes its
// own chains, so a restart does not start a second chain under a used key.
func NewEmitterID(base string, ids *events.IDGen) string {
	return base + "-" + strconv.FormatInt(int64(ids.Next()), 36)
}

// State returns the service's state. Callers must not apply events to it.
func (s *Service) State() *State { return s.state }

// Ready is closed once the fold has read the approvals topic up to where
// it ended when Run started.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Run folds the approvals topic, follows the events topic for alerts and,
// once caught up, expires overdue requests, until ctx ends. It returns nil
// when ctx was cancelled.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("approvals: %s: %w", name, err)
				cancel()
			}
		}()
	}
	run("fold", s.fold)
	run("alerts", s.follow)
	if s.expire {
		run("expiry", s.expiryLoop)
	}
	wg.Wait()
	s.hub.closeAll()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// fold reads the approvals topic from the start, without a consumer
// group, and applies every event to the state.
func (s *Service) fold(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(s.brokers...),
		kgo.ConsumeTopics(s.topics.Approvals),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.ClientID("agentaudit-approvals-fold"),
	}, s.kopts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	target, err := endOffsets(ctx, cl, s.topics.Approvals)
	if err != nil {
		return err
	}
	pos := map[int32]int64{}
	caughtUp := func() bool {
		for p, end := range target {
			if pos[p] < end {
				return false
			}
		}
		return true
	}
	if caughtUp() {
		s.markReady()
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			s.log.Warn("approvals topic fetch error", "topic", topic, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			s.applyRecord(r)
		})
		if caughtUp() {
			s.markReady()
		}
	}
}

func (s *Service) markReady() {
	s.readyOnce.Do(func() {
		close(s.ready)
		s.log.Info("approvals state rebuilt", "requests", len(s.state.Requests()), "pending", len(s.state.Pending()))
	})
}

// endOffsets returns the end offset of every partition of topic, retrying
// while the topic or its leaders are not there yet.
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	for attempt := 0; ; attempt++ {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			out := map[int32]int64{}
			ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
			if len(out) > 0 {
				return out, nil
			}
			err = fmt.Errorf("topic %s has no partitions", topic)
		}
		if attempt >= 100 || ctx.Err() != nil {
			return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *Service) applyRecord(r *kgo.Record) {
	env, err := events.Decode(r.Value)
	if err != nil {
		s.metrics.foldEvents.WithLabelValues("undecodable").Inc()
		s.log.Warn("undecodable record on the approvals topic", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	ch, err := s.state.Apply(env)
	if err == nil && signing.IsTriage(env.EventType) {
		ch = s.triage.Apply(env)
	}
	if err != nil {
		s.metrics.foldEvents.WithLabelValues("malformed").Inc()
		s.log.Warn("event refused by the fold", "event_id", env.EventID, "err", err)
		ch = Change{Kind: ChangeRejected, EventID: env.EventID, ApprovalID: env.ApprovalID, SessionID: env.SessionID, Rejection: signing.CodeOf(err)}
	} else {
		s.metrics.foldEvents.WithLabelValues(string(ch.Kind)).Inc()
	}
	switch {
	case ch.Kind == ChangeRejected && untrustedKey(ch.Rejection):
		// A decision this service cannot verify may be one a runner
		// acted on (runners have their own key set): it is not noise.
		s.log.Error("decision signed by a key this service does not trust; a request answered with an unknown key stays open and is not expired. "+
			"Give `approve serve --trust` a keys.json that holds every key still in use (approve keygen keeps earlier keys in its keys.json)",
			"event_id", env.EventID, "approval_id", env.ApprovalID, "rejection", ch.Rejection, "key_id", keyIDOf(env))
	case ch.Kind == ChangeRejected:
		s.log.Info("decision rejected by the fold", "event_id", env.EventID, "approval_id", env.ApprovalID, "rejection", ch.Rejection)
	}
	s.waitMu.Lock()
	if w, ok := s.waiters[env.EventID]; ok {
		w <- ch
		delete(s.waiters, env.EventID)
	}
	s.waitMu.Unlock()
	if ch.Kind != ChangeDuplicate && ch.Kind != ChangeIgnored {
		s.hub.publish("change", ChangeView{
			Kind: ch.Kind, EventID: ch.EventID, ApprovalID: ch.ApprovalID, SessionID: ch.SessionID,
			Status: ch.Status, Rejection: ch.Rejection,
		})
	}
}

// emitApplied emits env and waits until the fold has applied it, returning
// what it did.
func (s *Service) emitApplied(ctx context.Context, env *events.Envelope) (Change, error) {
	w := make(chan Change, 1)
	s.waitMu.Lock()
	s.waiters[env.EventID] = w
	s.waitMu.Unlock()
	defer func() {
		s.waitMu.Lock()
		delete(s.waiters, env.EventID)
		s.waitMu.Unlock()
	}()
	if err := s.emitter.Emit(ctx, env); err != nil {
		s.metrics.emitErrors.Inc()
		return Change{}, err
	}
	t := time.NewTimer(s.applyWait)
	defer t.Stop()
	select {
	case ch := <-w:
		return ch, nil
	case <-t.C:
		return Change{}, fmt.Errorf("%w: event %s", ErrNotApplied, env.EventID)
	case <-ctx.Done():
		return Change{}, ctx.Err()
	}
}

// lock serialises answers per key (approval id, or hold session), so two
// approvers using one instance cannot both pass Authorize against the same
// state; across instances the fold's first-wins decides.
func (s *Service) lock(key string) func() {
	s.lockMu.Lock()
	l := s.locks[key]
	if l == nil {
		l = &keyLock{}
		s.locks[key] = l
	}
	l.refs++
	s.lockMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.lockMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.locks, key)
		}
		s.lockMu.Unlock()
	}
}

// Decide answers request id for approver ap: it authorizes, builds and
// signs the approval.decided, emits it and returns once the fold applied
// it. A decision the fold rejected (another one won meanwhile) is an
// *Error with the fold's code.
func (s *Service) Decide(ctx context.Context, ap Approver, id string, in DecisionInput) (DecisionOutput, error) {
	var outcome events.ApprovalOutcome
	switch in.Decision {
	case "approve":
		outcome = events.ApprovalApproved
		if in.Scope == "" {
			in.Scope = events.ScopeOnce
		}
	case "deny":
		outcome = events.ApprovalDenied
		if in.Scope != "" {
			return DecisionOutput{}, fail(signing.CodeInvalidDecision, "a denial has no scope")
		}
	default:
		return DecisionOutput{}, fail(signing.CodeInvalidDecision, "decision must be approve or deny, got %q", in.Decision)
	}
	unlock := s.lock("approval/" + id)
	defer unlock()
	r, ok := s.state.Get(id)
	if !ok {
		return DecisionOutput{}, fail(CodeUnknownApproval, "%s", id)
	}
	if r.Status == StatusExpired {
		return DecisionOutput{}, fail(signing.CodeExpired, "request %s expired at %s", r.ID, stampOf(r.ExpiresAt))
	}
	d, err := s.auth.Answer(ap, r, outcome, in.Scope, in.Comment)
	if err != nil {
		s.metrics.decisions.WithLabelValues(string(outcome), "refused_"+string(signing.CodeOf(err))).Inc()
		return DecisionOutput{}, err
	}
	env, err := events.New(d, events.WithIDs(s.ids), events.WithApproval(r.ID),
		events.WithSession(r.SessionID, s.emitID), events.WithTenant(r.Tenant),
		events.WithParent(r.EventID), events.WithTime(d.DecidedAt.Time),
		events.WithActor(events.ActorHuman, ap.ID), events.WithToolCall(r.ToolCallID))
	if err != nil {
		return DecisionOutput{}, err
	}
	if err := s.signer.Sign(env, r.Ref()); err != nil {
		return DecisionOutput{}, err
	}
	start := time.Now()
	ch, err := s.emitApplied(ctx, env)
	if err != nil {
		s.metrics.decisions.WithLabelValues(string(outcome), "error").Inc()
		return DecisionOutput{}, err
	}
	s.metrics.applyLatency.Observe(time.Since(start).Seconds())
	r, _ = s.state.Get(id)
	out := DecisionOutput{EventID: env.EventID, Request: s.view(r, &ap)}
	switch ch.Kind {
	case ChangeDecided:
		out.Result = ResultAccepted
	case ChangePartial:
		out.Result = ResultPartial
	case ChangeRejected:
		s.metrics.decisions.WithLabelValues(string(outcome), "rejected_"+string(ch.Rejection)).Inc()
		if ch.Rejection == CodeAlreadyDecided && r.Final != nil {
			// Lost a race with another instance (or another tab): the
			// first decision in the partition won everywhere, and this
			// one stays in the log as an ineffective attempt.
			return out, fail(CodeAlreadyDecided, "request %s was already %s; decision %s is recorded as an ineffective attempt", id, wonBy(*r.Final), env.EventID)
		}
		return out, fail(ch.Rejection, "decision %s was recorded but rejected", env.EventID)
	default:
		// A duplicate cannot happen for a fresh event id; never claim success.
		return out, fmt.Errorf("%w: event %s folded as %s", ErrNotApplied, env.EventID, ch.Kind)
	}
	s.metrics.decisions.WithLabelValues(string(outcome), string(out.Result)).Inc()
	s.log.Info("decision", "approval_id", id, "event_id", env.EventID, "approver", ap.ID,
		"decision", outcome, "scope", d.Scope, "result", out.Result)
	return out, nil
}

// wonBy names the decision that settled a request, for the refusal of a
// later one.
func wonBy(d Decision) string {
	return fmt.Sprintf("%s by %s (decision %s, decided at %s)", statusOf(d.Outcome), d.Approver.ID, d.EventID, stampOf(d.DecidedAt))
}

// Release lifts the holds of a session (one, when in.HeldEventID names it)
// with a session.released by ap. ap must be allowed to answer session_hold
// requests of the hold's rule.
func (s *Service) Release(ctx context.Context, ap Approver, sessionID string, in ReleaseInput) (ReleaseOutput, error) {
	if in.Reason == "" {
		in.Reason = "released by " + ap.ID
	}
	unlock := s.lock("session/" + sessionID)
	defer unlock()
	holds := s.state.Holds(sessionID)
	var target []Hold
	for _, h := range holds {
		if in.HeldEventID == "" || h.EventID == in.HeldEventID {
			target = append(target, h)
		}
	}
	if len(target) == 0 {
		return ReleaseOutput{}, fmt.Errorf("%w: session %q", ErrNoHold, sessionID)
	}
	for _, h := range target {
		if err := s.authorizeRelease(ap, h); err != nil {
			return ReleaseOutput{}, err
		}
	}
	h := target[0]
	opts := []events.Option{events.WithIDs(s.ids), events.WithSession(sessionID, s.emitID),
		events.WithTenant(h.Tenant), events.WithTime(s.now()), events.WithActor(events.ActorHuman, ap.ID)}
	if in.HeldEventID != "" {
		opts = append(opts, events.WithParent(h.EventID))
		if h.ApprovalID != "" {
			opts = append(opts, events.WithApproval(h.ApprovalID))
		}
	}
	env, err := events.New(events.SessionReleased{Reason: in.Reason, HeldEventID: in.HeldEventID, By: ap.Actor()}, opts...)
	if err != nil {
		return ReleaseOutput{}, err
	}
	ch, err := s.emitApplied(ctx, env)
	if err != nil {
		return ReleaseOutput{}, err
	}
	s.metrics.releases.Inc()
	s.log.Info("release", "session_id", sessionID, "event_id", env.EventID, "approver", ap.ID, "released", ch.Released)
	return ReleaseOutput{EventID: env.EventID, SessionID: sessionID, Released: ch.Released}, nil
}

// authorizeRelease treats a hold as a session_hold request of its rule
// (with the risk of its approval request when there is one, else high): an
// approver who may answer that may release it; the actor that held the
// session may not release it.
func (s *Service) authorizeRelease(ap Approver, h Hold) error {
	r := Request{ID: h.EventID, Kind: events.ApprovalKindSessionHold, RuleID: h.RuleID, Risk: events.RiskHigh, Requester: h.By}
	if h.ApprovalID != "" {
		if req, ok := s.state.Get(h.ApprovalID); ok {
			r.Risk = req.Risk
		}
	}
	switch {
	case ap.ID == "":
		return fail(CodeUnauthenticated, "no approver")
	case ap.ID == h.By.ID:
		return fail(CodeSelfApproval, "%s held session %s", ap.ID, h.SessionID)
	case !s.auth.mayAnswer(ap, r):
		return fail(CodeWrongGroup, "%s (groups %v) may not release holds of rule %q", ap.ID, ap.Groups, h.RuleID)
	}
	return nil
}

// expiryLoop expires overdue requests once the state is rebuilt.
func (s *Service) expiryLoop(ctx context.Context) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	t := time.NewTicker(s.expiryEvery)
	defer t.Stop()
	for {
		s.expireDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// expireDue emits a signed "expired" decision for every pending request
// past its deadline. A request whose event could not be written is
// retried on the next tick while it is still open.
func (s *Service) expireDue(ctx context.Context) {
	now := s.now()
	due := s.state.ExpireDue(now)
	s.expiryMu.Lock()
	for _, r := range due {
		s.expiryRetry[r.ID] = r
	}
	retry := make([]Request, 0, len(s.expiryRetry))
	for _, r := range s.expiryRetry {
		retry = append(retry, r)
	}
	s.expiryMu.Unlock()
	sys := events.Actor{Type: events.ActorSystem, ID: s.emitID}
	for _, r := range retry {
		done := func() {
			s.expiryMu.Lock()
			delete(s.expiryRetry, r.ID)
			s.expiryMu.Unlock()
		}
		if cur, ok := s.state.Get(r.ID); !ok || !cur.Open() {
			done()
			continue
		}
		d, err := ExpiryDecision(r, now, sys)
		if err != nil {
			done()
			continue
		}
		env, err := events.New(d, events.WithIDs(s.ids), events.WithApproval(r.ID),
			events.WithSession(r.SessionID, s.emitID), events.WithTenant(r.Tenant),
			events.WithParent(r.EventID), events.WithTime(now), events.WithActor(events.ActorSystem, s.emitID),
			events.WithToolCall(r.ToolCallID))
		if err == nil {
			err = s.signer.Sign(env, r.Ref())
		}
		if err == nil {
			if ae, ok := s.emitter.(afterEmitter); ok {
				err = ae.EmitAfter(ctx, env)
			} else {
				err = s.emitter.Emit(ctx, env)
			}
		}
		if err != nil {
			s.metrics.emitErrors.Inc()
			s.log.Error("expiry neither sent nor spooled; will retry", "approval_id", r.ID, "err", err)
			continue
		}
		done()
		s.metrics.expired.Inc()
		s.log.Info("expired", "approval_id", r.ID, "event_id", env.EventID, "expires_at", r.ExpiresAt)
	}
}

// follow reads the events topic from the alert window back and keeps
// recent alerts and the events requests are about.
func (s *Service) follow(ctx context.Context) error {
	since := s.now().Add(-s.recent.window)
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(s.brokers...),
		kgo.ConsumeTopics(s.topics.Events),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(since.UnixMilli())),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.ClientID("agentaudit-approvals-alerts"),
	}, s.kopts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			s.log.Warn("events topic fetch error", "topic", topic, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if a := s.recent.add(r.Value, s.log); a != nil {
				s.hub.publish("alert", a)
			}
		})
	}
}

// view builds the API view of r; for an approver, with whether they may
// answer it.
func (s *Service) view(r Request, ap *Approver) RequestView {
	v := RequestView{
		ID: r.ID, EventID: r.EventID, Tenant: r.Tenant, SessionID: r.SessionID, RunnerID: r.RunnerID,
		ToolCallID: r.ToolCallID, RequestedAt: r.RequestedAt, Kind: r.Kind, Summary: r.Summary,
		Reason: r.Reason, ReasonCode: r.ReasonCode, RuleID: r.RuleID, Risk: r.Risk, Requester: r.Requester,
		Scopes: r.Scopes, ExpiresAt: r.ExpiresAt, SubjectEventID: r.SubjectEventID, Policy: r.Policy,
		Status: r.Status, RequiredApprovals: s.auth.RequiredApprovals(r),
		Approvals: []DecisionView{}, History: []DecisionView{},
	}
	if v.Scopes == nil {
		v.Scopes = []events.ApprovalScope{}
	}
	if r.Final != nil {
		f := decisionView(*r.Final)
		v.Final = &f
	}
	for _, a := range r.Approvals {
		v.Approvals = append(v.Approvals, decisionView(a))
	}
	for _, a := range r.History {
		d := decisionView(a.Decision)
		d.Result, d.Rejection = a.Result, a.Rejection
		v.History = append(v.History, d)
	}
	v.Subject = s.recent.subject(r.SubjectEventID)
	s.context(&v, r)
	if ap != nil {
		if err := s.auth.Authorize(*ap, r); err != nil {
			v.Refusal = signing.CodeOf(err)
		} else {
			v.MayAnswer = true
		}
	}
	return v
}

// holds returns every active hold, by session then arrival.
func (s *Service) holds() []HoldView {
	out := []HoldView{}
	for _, sid := range s.state.HeldSessions() {
		for _, h := range s.state.Holds(sid) {
			v := holdView(h)
			v.Alert = s.recent.alert(h.AlertEventID)
			v.Session = s.recent.sessionView(h.SessionID)
			out = append(out, v)
		}
	}
	return out
}

// context adds to v what surrounds r: the agent, operator and working
// directory, a write's preview, the tool call an egress request comes
// from, and the session's last actions and alerts.
func (s *Service) context(v *RequestView, r Request) {
	v.Preview = r.Preview
	v.Session = s.recent.sessionView(r.SessionID)
	v.Operator = v.Session.Operator
	v.Agent = r.Agent
	if v.Agent == nil {
		v.Agent = v.Session.Agent
	}
	call := v.Subject
	if call == nil || call.EventType != events.TypeToolCallRequested {
		// An egress request (or one whose subject left the window) is
		// linked to the command that caused it by its tool_call_id.
		call = s.recent.call(r.SessionID, r.ToolCallID)
		if call != nil && (v.Subject == nil || call.EventID != v.Subject.EventID) {
			v.Cause = call
		}
	}
	if call != nil {
		var tc events.ToolCallRequested
		if json.Unmarshal(call.Payload, &tc) == nil {
			v.Cwd = tc.Arguments.Cwd
		}
	}
}

// untrustedKey reports whether a rejection says the decision's key is not
// trusted here, rather than that the decision is wrong.
func untrustedKey(c signing.Code) bool {
	return c == signing.CodeUnknownKey || c == signing.CodeKeyRetired
}

// keyIDOf returns the key id of a decision event, or "".
func keyIDOf(env *events.Envelope) string {
	var d struct {
		KeyID string `json:"key_id"`
	}
	_ = json.Unmarshal(env.Payload, &d)
	return d.KeyID
}
