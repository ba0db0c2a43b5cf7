package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/hook"
	"github.com/agentaudit/agentaudit/internal/otlp"
)

// The agent's own telemetry (prompts, model calls with tokens and cost,
// its own tool decisions and results) joins the session: the runner serves
// an OTLP/HTTP receiver on a Unix socket beside the hook socket, the
// supervisor relays the sandbox's 127.0.0.1:4318 to it, and each agent's
// exporter is pointed there. The events go on the session's own chain,
// and a tool call the hooks decided is linked to its tool_call_id. What
// the agent reports about itself is its own account, kept as such: the
// tool calls, decisions and execs are what the runner saw.

// otlpEndpoint is the receiver as the agent sees it: an address of the
// sandbox's own loopback (its network namespace has nothing else), other
// than 127.0.0.1 so that NO_PROXY can name it alone and everything else on
// loopback, a model server in tests included, still goes through the
// egress proxy.
const otlpEndpoint = "http://127.0.0.2:4318"

// telemetry is a session's receiver.
type telemetry struct {
	srv     *http.Server
	handler *otlp.Handler
	done    chan struct{}
}

// serveTelemetry serves s's receiver on ln until close.
func (s *Session) serveTelemetry(ln net.Listener, text otlp.TextMode) *telemetry {
	emit, ok := s.r.emit.(batchEmitter)
	if !ok {
		emit = oneByOne{s.r.emit}
	}
	var link otlp.CallLinker
	if s.hooks != nil {
		link = s.hooks
	}
	m := otlp.NewMapper(s.r.ids, otlp.WithJudge(otlp.PolicyJudge{Policy: s.r.policy}), otlp.WithCallLinker(link))
	h := otlp.NewHandler(emit, otlp.Fixed(otlp.Tenant{Name: s.r.o.tenant, SessionID: s.id,
		Operator: s.r.o.operator, Text: text}), m, otlp.WithLogger(s.r.o.log))
	t := &telemetry{handler: h, done: make(chan struct{}),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}}
	go func() {
		defer close(t.done)
		if err := t.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.r.o.log.Warn("agent telemetry receiver stopped", "session", s.id, "err", err)
		}
	}()
	return t
}

// close lets the exports in flight finish (the agent flushes as it
// exits), then stops, and logs what was received.
func (t *telemetry) close(ctx context.Context, s *Session) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = t.srv.Shutdown(ctx)
	<-t.done
	st := t.handler.Stats()
	s.r.o.log.Info("agent telemetry", "session", s.id, "requests", st.Requests.Load(), "records", st.Records.Load(),
		"events", st.Events.Load(), "skipped", st.Skipped.Load(), "rejected", st.Rejected.Load(),
		"malformed", st.Malformed.Load(), "unavailable", st.Unavailable.Load())
}

// oneByOne records a batch event by event, for an Emitter without
// EmitAfterBatch.
type oneByOne struct{ e Emitter }

func (o oneByOne) EmitAfterBatch(ctx context.Context, es []*events.Envelope) error {
	for _, e := range es {
		if err := o.e.EmitAfter(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// otlpMount is the receiver's socket inside the sandbox.
var otlpMount = hook.ContainerDir + "/" + hook.OTLPSocketName

// agentTelemetryArgs and agentTelemetryEnv point each agent's exporter at
// the receiver.
func agentTelemetryArgs(agent string) []string {
	if agent != AgentCodex {
		return nil
	}
	return []string{
		"-c", fmt.Sprintf(`otel.exporter={otlp-http={endpoint=%s, protocol="json"}}`, tomlString(otlpEndpoint+otlp.PathLogs)),
		"-c", "otel.log_user_prompt=true",
	}
}

func agentTelemetryEnv(agent string, env map[string]string) {
	// The receiver is on the sandbox's loopback: the agent reaches it
	// directly, not through the egress proxy (which serves only the
	// outside world; the sandbox has no other network).
	env["NO_PROXY"], env["no_proxy"] = "127.0.0.2", "127.0.0.2"
	if agent != AgentClaude {
		return
	}
	for k, v := range map[string]string{
		"CLAUDE_CODE_ENABLE_TELEMETRY": "1",
		"OTEL_LOGS_EXPORTER":           "otlp",
		"OTEL_METRICS_EXPORTER":        "none",
		"OTEL_EXPORTER_OTLP_PROTOCOL":  "http/json",
		"OTEL_EXPORTER_OTLP_ENDPOINT":  otlpEndpoint,
		"OTEL_LOG_USER_PROMPTS":        "1",
		"OTEL_LOG_TOOL_DETAILS":        "1",
		"OTEL_LOGS_EXPORT_INTERVAL":    "1000",
	} {
		env[k] = v
	}
}
