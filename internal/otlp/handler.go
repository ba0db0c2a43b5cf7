package otlp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// Emitter records events that describe what already happened
// (eventlog.Producer's EmitAfterBatch): acknowledged by Kafka, or spooled
// durably when Kafka is down. The events of one call share one chain.
type Emitter interface {
	EmitAfterBatch(ctx context.Context, es []*events.Envelope) error
}

// Authenticator says which tenant a request is for. A refused request
// gets 401.
type Authenticator interface {
	Authenticate(r *http.Request) (Tenant, error)
}

// ErrUnauthenticated: the request carries no valid credential.
var ErrUnauthenticated = errors.New("otlp: unauthenticated")

// Fixed authenticates every request as t: for a receiver only the agent
// of one session can reach (the runner's per-session socket).
type Fixed Tenant

// Authenticate implements Authenticator.
func (f Fixed) Authenticate(*http.Request) (Tenant, error) { return Tenant(f), nil }

// Stats counts what the handler did; every refusal and drop is counted.
type Stats struct {
	Requests        atomic.Int64 // requests received on an OTLP path
	Unauthenticated atomic.Int64 // 401
	BadContentType  atomic.Int64 // 415
	TooLarge        atomic.Int64 // 413
	Malformed       atomic.Int64 // 400: not an OTLP export request
	Unavailable     atomic.Int64 // 503: the events could not be recorded
	Records         atomic.Int64 // log records received
	Events          atomic.Int64 // events recorded
	Skipped         atomic.Int64 // records deliberately not kept (stream chunks)
	Rejected        atomic.Int64 // records refused (partial success)
	Ignored         atomic.Int64 // trace and metric requests accepted and not kept
}

// Handler is the OTLP/HTTP receiver: POST /v1/logs (mapped into agent.*
// events), /v1/traces and /v1/metrics (accepted, counted, not kept).
type Handler struct {
	emit       Emitter
	auth       Authenticator
	mapper     *Mapper
	log        *slog.Logger
	maxBody    int64
	maxDecoded int64
	stats      Stats
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithMaxBody bounds a request body as sent (default 4 MiB) and after
// gunzip (default 16 MiB).
func WithMaxBody(sent, decoded int64) Option {
	return func(h *Handler) { h.maxBody, h.maxDecoded = sent, decoded }
}

// NewHandler returns a receiver that authenticates with auth, maps with m
// and records with emit.
func NewHandler(emit Emitter, auth Authenticator, m *Mapper, opts ...Option) *Handler {
	h := &Handler{emit: emit, auth: auth, mapper: m, log: slog.New(slog.DiscardHandler),
		maxBody: 4 << 20, maxDecoded: 16 << 20}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Stats returns the handler's counters.
func (h *Handler) Stats() *Stats { return &h.stats }

// Paths the receiver serves.
const (
	PathLogs    = "/v1/logs"
	PathTraces  = "/v1/traces"
	PathMetrics = "/v1/metrics"
)

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathLogs, PathTraces, PathMetrics:
	default:
		http.NotFound(w, r)
		return
	}
	h.stats.Requests.Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	enc, err := ContentEncoding(r.Header.Get("Content-Type"))
	if err != nil {
		h.stats.BadContentType.Add(1)
		h.fail(w, EncodingJSON, http.StatusUnsupportedMediaType, err)
		return
	}
	tenant, err := h.auth.Authenticate(r)
	if err != nil {
		h.stats.Unauthenticated.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="otlp"`)
		h.fail(w, enc, http.StatusUnauthorized, ErrUnauthenticated)
		return
	}
	// Chunked bodies (Claude Code sends no Content-Length) read the same:
	// the bound is on what arrives, not on what is announced.
	body, err := readBody(http.MaxBytesReader(w, r.Body, h.maxBody), r.Header.Get("Content-Encoding"), r.ContentLength, h.maxDecoded)
	switch {
	case errors.Is(err, ErrTooLarge):
		h.stats.TooLarge.Add(1)
		h.fail(w, enc, http.StatusRequestEntityTooLarge, err)
		return
	case errors.Is(err, ErrContentType):
		h.stats.BadContentType.Add(1)
		h.fail(w, enc, http.StatusUnsupportedMediaType, err)
		return
	case err != nil:
		h.stats.Malformed.Add(1)
		h.fail(w, enc, http.StatusBadRequest, err)
		return
	}
	if r.URL.Path != PathLogs {
		h.stats.Ignored.Add(1)
		h.ok(w, enc, 0, "")
		return
	}
	ld, err := DecodeLogs(body, enc)
	if err != nil {
		h.stats.Malformed.Add(1)
		h.log.Warn("malformed OTLP logs request", "tenant", tenant.Name, "err", err)
		h.fail(w, enc, http.StatusBadRequest, err)
		return
	}
	envs, res := h.mapper.Map(ld, tenant)
	h.stats.Records.Add(int64(res.Records))
	h.stats.Skipped.Add(int64(res.Skipped))
	rejected, reason := res.Rejected, res.Reason
	if n, err := h.record(r.Context(), envs); err != nil {
		var inv invalidCount
		if !errors.As(err, &inv) {
			h.stats.Unavailable.Add(1)
			h.log.Error("agent events not recorded", "tenant", tenant.Name, "events", len(envs), "err", err)
			w.Header().Set("Retry-After", "2")
			h.fail(w, enc, http.StatusServiceUnavailable, errors.New("otlp: audit trail unavailable"))
			return
		}
		rejected += int(inv)
		if reason == "" {
			reason = err.Error()
		}
		h.stats.Events.Add(int64(n))
	} else {
		h.stats.Events.Add(int64(n))
	}
	h.stats.Rejected.Add(int64(rejected))
	if rejected > 0 {
		h.log.Warn("OTLP log records rejected", "tenant", tenant.Name, "rejected", rejected, "reason", reason)
	}
	h.ok(w, enc, rejected, reason)
}

// invalidCount is the error of a batch some of whose events the producer
// refused as invalid (and nothing else failed).
type invalidCount int

func (n invalidCount) Error() string { return strconv.Itoa(int(n)) + " events invalid" }

// record emits envs chain by chain, in order. It returns how many were
// recorded.
func (h *Handler) record(ctx context.Context, envs []*events.Envelope) (int, error) {
	if len(envs) == 0 {
		return 0, nil
	}
	// Group by chain, keeping each chain's order; one batch per chain is
	// one round trip to Kafka.
	var order []events.ChainKey
	groups := map[events.ChainKey][]*events.Envelope{}
	for _, e := range envs {
		k := e.Key()
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], e)
	}
	n, invalid := 0, 0
	for _, k := range order {
		g := groups[k]
		err := h.emit.EmitAfterBatch(ctx, g)
		if err == nil {
			n += len(g)
			continue
		}
		bad := countInvalid(err)
		if bad == 0 || !onlyInvalid(err) {
			return n, err
		}
		n += len(g) - bad
		invalid += bad
	}
	if invalid > 0 {
		return n, invalidCount(invalid)
	}
	return n, nil
}

func countInvalid(err error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range j.Unwrap() {
			n += countInvalid(e)
		}
		return n
	}
	if errors.Is(err, eventlog.ErrInvalidEvent) {
		return 1
	}
	return 0
}

func onlyInvalid(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyInvalid(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, eventlog.ErrInvalidEvent)
}

// ok answers an export: ExportLogsServiceResponse (the same shape for
// traces and metrics), with partial_success when records were rejected.
func (h *Handler) ok(w http.ResponseWriter, enc string, rejected int, reason string) {
	reason, _ = boundUTF8(reason, 1024)
	if enc == EncodingJSON {
		w.Header().Set("Content-Type", "application/json")
		body := map[string]any{}
		if rejected > 0 {
			body["partialSuccess"] = map[string]any{"rejectedLogRecords": strconv.Itoa(rejected), "errorMessage": reason}
		}
		json.NewEncoder(w).Encode(body)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	var b []byte
	if rejected > 0 {
		var ps []byte
		ps = protowire.AppendTag(ps, 1, protowire.VarintType)
		ps = protowire.AppendVarint(ps, uint64(rejected))
		if reason != "" {
			ps = protowire.AppendTag(ps, 2, protowire.BytesType)
			ps = protowire.AppendString(ps, reason)
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, ps)
	}
	w.Write(b)
}

// fail answers with status and a google.rpc.Status body (code and
// message), in the request's encoding.
func (h *Handler) fail(w http.ResponseWriter, enc string, status int, err error) {
	code := 3 // INVALID_ARGUMENT
	switch status {
	case http.StatusUnauthorized:
		code = 16
	case http.StatusServiceUnavailable:
		code = 14
	case http.StatusRequestEntityTooLarge:
		code = 8
	}
	msg, _ := boundUTF8(err.Error(), 1024)
	if enc == EncodingJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
		return
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(code))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, msg)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(status)
	w.Write(b)
}
