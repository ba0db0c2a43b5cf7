package approvals

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the service's Prometheus metrics, on a registry of its own
// so that two services in one process (tests) do not collide.
type metrics struct {
	reg          *prometheus.Registry
	foldEvents   *prometheus.CounterVec
	decisions    *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	httpRequests *prometheus.CounterVec
	applyLatency prometheus.Histogram
	emitErrors   prometheus.Counter
	expired      prometheus.Counter
	releases     prometheus.Counter
	refusedPosts *prometheus.CounterVec
}

func newMetrics(s *Service) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		foldEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "approvals_fold_events_total", Help: "Events read from the approvals topic, by what they did.",
		}, []string{"change"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "approvals_decisions_total", Help: "Decisions submitted through the API, by outcome and result.",
		}, []string{"decision", "result"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "approvals_auth_failures_total", Help: "Refused authentications, by code (unauthenticated, rate_limited).",
		}, []string{"code"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "approvals_http_requests_total", Help: "API requests by route and status.",
		}, []string{"route", "status"}),
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "approvals_decision_apply_seconds",
			Help:    "From emitting a decision to the fold applying it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		emitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "approvals_emit_errors_total", Help: "Events Kafka did not acknowledge (the action was not taken).",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "approvals_expired_total", Help: "Requests this instance expired.",
		}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "approvals_releases_total", Help: "Session releases emitted.",
		}),
		refusedPosts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "approvals_refused_posts_total", Help: "State-changing requests refused before authentication (CSRF checks).",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.foldEvents, m.decisions, m.authFailures, m.httpRequests, m.applyLatency,
		m.emitErrors, m.expired, m.releases, m.refusedPosts,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "approvals_pending", Help: "Pending requests.",
		}, func() float64 { return float64(len(s.state.Pending())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "approvals_held_sessions", Help: "Sessions with an active hold.",
		}, func() float64 { return float64(len(s.state.HeldSessions())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "approvals_ready", Help: "1 once the state is rebuilt from the topic.",
		}, func() float64 {
			if s.isReady() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "approvals_stream_clients", Help: "Connected event-stream clients.",
		}, func() float64 { return float64(s.hub.clients()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "approvals_stream_dropped_total", Help: "Event-stream clients disconnected for falling behind.",
		}, func() float64 { return float64(s.hub.dropped.Load()) }),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
