package approvals

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

//go:embed web/index.html web/app.js web/app.css web/triage.js
var webFS embed.FS

// maxBody bounds a request body: decisions and releases are small.
const maxBody = 64 << 10

// maxComment is the schema's bound on a comment or reason, in characters.
const maxComment = 2048

// Codes of HTTP-level refusals, beside the package's Codes.
const (
	codeBadRequest  = "bad_request"
	codeNotFound    = "not_found"
	codeNotReady    = "not_ready"
	codeNotApplied  = "not_applied"
	codeUnavailable = "audit_unavailable"
	codeInternal    = "internal"
	codeCrossOrigin = "cross_origin"
	codeContentType = "unsupported_media_type"
	codeNoHold      = "no_hold"
)

// securityHeaders go on every response: the inbox loads only its own
// script and style, cannot be framed, and sends no referrer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
		"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=()",
}

// Handler returns the HTTP API and the web inbox:
//
//	GET  /                                   the inbox (HTML, JS, CSS embedded)
//	GET  /healthz                            200 once the state is rebuilt
//	GET  /metrics                            Prometheus metrics
//	GET  /api/v1/me                          the authenticated approver
//	GET  /api/v1/requests?status=&kind=&session=&limit=
//	GET  /api/v1/requests/{id}
//	POST /api/v1/requests/{id}/decision      {"decision":"approve|deny","scope":"once|session","comment":""}
//	GET  /api/v1/holds
//	POST /api/v1/holds/{session}/release     {"reason":"","held_event_id":""}
//	GET  /api/v1/alerts?limit=
//	GET  /api/v1/triage/alerts?limit=&open=1   alerts with their triage state (triage_service.go)
//	POST /api/v1/alerts/{id}/triage          {"action":"acknowledge|assign|true_positive|false_positive|comment","assignee":"","comment":""}
//	GET  /api/v1/suppressions?all=1
//	POST /api/v1/suppressions                {"rule_id","alert_event_id","scope":{"kind","value"},"for":"4h","comment"}
//	POST /api/v1/suppressions/{id}/lift      {"comment":""}
//	GET  /api/v1/events                      server-sent events of every change
//
// Every /api/ route needs "Authorization: Bearer <token>". There are no
// cookies, so a browser never sends a credential on its own; POSTs must
// also be application/json and, when the browser names an Origin, come
// from the service's own origin. Errors are {"error":{"code","message"}}.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(webFS, "web")
	mux.HandleFunc("GET /{$}", s.page(static, "index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /app.js", s.page(static, "app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /app.css", s.page(static, "app.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /triage.js", s.page(static, "triage.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", s.metrics.handler())

	api := func(route string, post bool, h func(http.ResponseWriter, *http.Request, Approver)) {
		method := "GET "
		if post {
			method = "POST "
		}
		mux.HandleFunc(method+route, s.authed(route, post, h))
	}
	api("/api/v1/me", false, s.me)
	api("/api/v1/requests", false, s.listRequests)
	api("/api/v1/requests/{id}", false, s.getRequest)
	api("/api/v1/requests/{id}/decision", true, s.decide)
	api("/api/v1/holds", false, s.listHolds)
	api("/api/v1/holds/{session}/release", true, s.release)
	api("/api/v1/alerts", false, s.listAlerts)
	api("/api/v1/triage/alerts", false, s.listTriaged)
	api("/api/v1/alerts/{id}/triage", true, s.triageAlert)
	api("/api/v1/suppressions", false, s.listSuppressions)
	api("/api/v1/suppressions", true, s.suppress)
	api("/api/v1/suppressions/{id}/lift", true, s.liftSuppression)
	api("/api/v1/events", false, s.serveEvents)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such API route")
	})
	return s.withHeaders(mux)
}

// withHeaders sets the security headers and logs each request: method,
// path, status, approver and remote address; never a header or a body, so
// a token cannot reach the log.
func (s *Service) withHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		ctx := context.WithValue(r.Context(), approverKey{}, new(string))
		next.ServeHTTP(rw, r.WithContext(ctx))
		if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
			return
		}
		s.log.Info("http", "method", r.Method, "path", r.URL.Path, "status", rw.status,
			"approver", *ctx.Value(approverKey{}).(*string), "remote", r.RemoteAddr,
			"ms", time.Since(start).Milliseconds())
	})
}

type approverKey struct{}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and SetWriteDeadline.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Service) page(static fs.FS, name, ctype string) http.HandlerFunc {
	body, err := fs.ReadFile(static, name)
	return func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			writeError(w, http.StatusInternalServerError, codeInternal, "inbox asset missing")
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(body)
	}
}

func (s *Service) healthz(w http.ResponseWriter, r *http.Request) {
	if !s.isReady() {
		writeError(w, http.StatusServiceUnavailable, codeNotReady, ErrNotReady.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "pending": len(s.state.Pending())})
}

// authed checks a state-changing request's origin and content type, then
// authenticates the bearer token, then calls h.
func (s *Service) authed(route string, post bool, h func(http.ResponseWriter, *http.Request, Approver)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw, _ := w.(*statusWriter)
		defer func() {
			if sw != nil {
				s.metrics.httpRequests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
			}
		}()
		if post {
			if reason, msg := s.crossSite(r); reason != "" {
				s.metrics.refusedPosts.WithLabelValues(reason).Inc()
				s.log.Warn("state-changing request refused", "reason", reason, "path", r.URL.Path, "remote", r.RemoteAddr)
				status := http.StatusForbidden
				if reason == codeContentType {
					status = http.StatusUnsupportedMediaType
				}
				writeError(w, status, reason, msg)
				return
			}
		}
		ap, err := s.auth.AuthenticateFrom(r.RemoteAddr, bearerToken(r))
		if err != nil {
			code := signing.CodeOf(err)
			s.metrics.authFailures.WithLabelValues(string(code)).Inc()
			// The failure is recorded here and in metrics; there is no
			// event type for it yet (see the package doc).
			s.log.Warn("authentication refused", "code", code, "remote", r.RemoteAddr, "path", r.URL.Path)
			if code == CodeRateLimited {
				w.Header().Set("Retry-After", "12")
				writeError(w, http.StatusTooManyRequests, string(code), "too many failed authentications; try later")
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="approvals"`)
			writeError(w, http.StatusUnauthorized, string(CodeUnauthenticated), "a valid bearer token is needed")
			return
		}
		if p, ok := r.Context().Value(approverKey{}).(*string); ok {
			*p = ap.ID
		}
		if !s.isReady() {
			writeError(w, http.StatusServiceUnavailable, codeNotReady, ErrNotReady.Error())
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, ap)
	}
}

// crossSite returns why a state-changing request must be refused as a
// possible cross-site request, or "". A form or a no-cors fetch from
// another site cannot send application/json; a browser names its Origin
// and, where it can, Sec-Fetch-Site. The bearer token is the real guard:
// nothing in a browser sends it without the inbox's own script.
func (s *Service) crossSite(r *http.Request) (reason, msg string) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return codeContentType, "Content-Type must be application/json"
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return codeCrossOrigin, "cross-site request refused (Sec-Fetch-Site " + site + ")"
	}
	if o := r.Header.Get("Origin"); o != "" {
		if o != "http://"+r.Host && o != "https://"+r.Host && !slices.Contains(s.origins, o) {
			return codeCrossOrigin, "origin not allowed"
		}
	}
	return "", ""
}

// bearerToken returns the token of an "Authorization: Bearer" header, or "".
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(h[len(prefix):])
}

func (s *Service) me(w http.ResponseWriter, r *http.Request, ap Approver) {
	groups := ap.Groups
	if groups == nil {
		groups = []string{}
	}
	writeJSON(w, http.StatusOK, ApproverView{ID: ap.ID, Name: ap.Name, Groups: groups})
}

var statuses = []Status{StatusPending, StatusApproved, StatusDenied, StatusExpired, StatusCancelled}

func (s *Service) listRequests(w http.ResponseWriter, r *http.Request, ap Approver) {
	q := r.URL.Query()
	status, kind, session := Status(q.Get("status")), q.Get("kind"), q.Get("session")
	if status != "" && !slices.Contains(statuses, status) {
		writeError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("status must be one of %v", statuses))
		return
	}
	if kind != "" && !slices.Contains(requestKinds, kind) {
		writeError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("kind must be one of %v", requestKinds))
		return
	}
	limit, ok := parseLimit(q.Get("limit"), 500)
	if !ok {
		writeError(w, http.StatusBadRequest, codeBadRequest, "limit must be 1..10000")
		return
	}
	var reqs []Request
	if status == StatusPending {
		reqs = s.state.Pending()
	} else {
		reqs = s.state.Requests()
	}
	out := []RequestView{}
	// Newest first: the inbox shows what just arrived at the top.
	for i := len(reqs) - 1; i >= 0 && len(out) < limit; i-- {
		rq := reqs[i]
		if (status != "" && rq.Status != status) || (kind != "" && rq.Kind != kind) || (session != "" && rq.SessionID != session) {
			continue
		}
		out = append(out, s.view(rq, &ap))
	}
	writeJSON(w, http.StatusOK, out)
}

func parseLimit(v string, def int) (int, bool) {
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 10000 {
		return 0, false
	}
	return n, true
}

func (s *Service) getRequest(w http.ResponseWriter, r *http.Request, ap Approver) {
	rq, ok := s.state.Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, string(CodeUnknownApproval), "no request with that id")
		return
	}
	writeJSON(w, http.StatusOK, s.view(rq, &ap))
}

func (s *Service) decide(w http.ResponseWriter, r *http.Request, ap Approver) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, codeBadRequest, "body too large")
		return
	}
	in, err := ParseDecisionInput(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	out, err := s.Decide(r.Context(), ap, r.PathValue("id"), in)
	if err != nil {
		s.writeRefusal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) listHolds(w http.ResponseWriter, r *http.Request, ap Approver) {
	writeJSON(w, http.StatusOK, s.holds())
}

func (s *Service) release(w http.ResponseWriter, r *http.Request, ap Approver) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, codeBadRequest, "body too large")
		return
	}
	in, err := ParseReleaseInput(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	out, err := s.Release(r.Context(), ap, r.PathValue("session"), in)
	if err != nil {
		s.writeRefusal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) listAlerts(w http.ResponseWriter, r *http.Request, ap Approver) {
	limit, ok := parseLimit(r.URL.Query().Get("limit"), 100)
	if !ok {
		writeError(w, http.StatusBadRequest, codeBadRequest, "limit must be 1..10000")
		return
	}
	writeJSON(w, http.StatusOK, s.recent.list(limit))
}

// ParseDecisionInput reads a decision body strictly: one JSON object,
// known fields only, decision approve or deny, an offered scope name, a
// comment of at most 2048 characters of valid UTF-8.
func ParseDecisionInput(body []byte) (DecisionInput, error) {
	var in DecisionInput
	if err := decodeStrict(body, &in); err != nil {
		return DecisionInput{}, err
	}
	if in.Decision != "approve" && in.Decision != "deny" {
		return DecisionInput{}, fmt.Errorf("decision must be approve or deny, got %q", in.Decision)
	}
	if in.Scope != "" && in.Scope != events.ScopeOnce && in.Scope != events.ScopeSession {
		return DecisionInput{}, fmt.Errorf("scope must be once or session, got %q", in.Scope)
	}
	if err := checkText("comment", in.Comment); err != nil {
		return DecisionInput{}, err
	}
	return in, nil
}

// ParseReleaseInput reads a release body strictly.
func ParseReleaseInput(body []byte) (ReleaseInput, error) {
	var in ReleaseInput
	if err := decodeStrict(body, &in); err != nil {
		return ReleaseInput{}, err
	}
	if err := checkText("reason", in.Reason); err != nil {
		return ReleaseInput{}, err
	}
	if in.HeldEventID != "" {
		if _, err := events.ParseID(in.HeldEventID); err != nil {
			return ReleaseInput{}, fmt.Errorf("held_event_id: %v", err)
		}
	}
	return in, nil
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %v", err)
	}
	if dec.More() {
		return errors.New("body: more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("body: trailing data after the JSON object")
	}
	return nil
}

func checkText(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s: not valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(v); n > maxComment {
		return fmt.Errorf("%s: %d characters, at most %d", field, n, maxComment)
	}
	return nil
}

// writeRefusal maps a refusal or failure onto a status and an error code.
func (s *Service) writeRefusal(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, codeInternal
	switch c := signing.CodeOf(err); {
	case c == CodeSelfApproval || c == CodeWrongGroup:
		status, code = http.StatusForbidden, string(c)
	case c == CodeAlreadyDecided || c == CodeDuplicateApprover || c == signing.CodeExpired:
		status, code = http.StatusConflict, string(c)
	case c == CodeUnknownApproval:
		status, code = http.StatusNotFound, string(c)
	case c != "":
		status, code = http.StatusUnprocessableEntity, string(c)
	case errors.Is(err, ErrNoHold):
		status, code = http.StatusNotFound, codeNoHold
	case errors.Is(err, eventlog.ErrAuditUnavailable):
		// The event is on its chain and in the service's spool: it is
		// recorded once Kafka is back, and counts if the request is still
		// open then.
		status, code = http.StatusServiceUnavailable, codeUnavailable
		err = fmt.Errorf("%w (the answer is kept in the service's spool and recorded once Kafka is back; check the request's status before answering again)", err)
	case errors.Is(err, ErrNotApplied):
		status, code = http.StatusGatewayTimeout, codeNotApplied
	default:
		s.log.Error("request failed", "err", err)
	}
	writeError(w, status, code, err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeInternal, "encode response")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e ErrorView
	e.Error.Code, e.Error.Message = code, msg
	b, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
