package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/policy"
)

// Config is the standalone receiver's configuration (`ingest otlp`).
type Config struct {
	Listen     string          // loopback host:port, default 127.0.0.1:4318
	TokenFile  string          // tenants and their bearer tokens (TokenFile)
	Brokers    []string        // Kafka
	Topics     eventlog.Topics // default eventlog.DefaultTopics
	NodeID     int64           // snowflake node of this receiver, 0–1023
	EmitterID  string          // base of the runner_id on its events, default "otlp"
	SpoolDir   string          // producer spool for when Kafka is down
	PolicyFile string          // optional: judge agents' own tool calls with this policy (default: the built-in one)
	MaxBody    int64           // bytes as sent, default 4 MiB
	Logger     *slog.Logger
	// OnListen, when set, is called with the bound address before serving.
	OnListen func(addr net.Addr)
}

func (c *Config) validate() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4318"
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("Listen (-listen): %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("Listen (-listen): %q is not a loopback address", c.Listen)
	}
	if c.TokenFile == "" {
		return errors.New("TokenFile (-tokens): required")
	}
	if len(c.Brokers) == 0 {
		return errors.New("Brokers (-brokers): required")
	}
	if c.Topics == (eventlog.Topics{}) {
		c.Topics = eventlog.DefaultTopics
	}
	if c.NodeID < 0 || c.NodeID > 1023 {
		return fmt.Errorf("NodeID (-node-id): %d is not in 0–1023", c.NodeID)
	}
	if c.EmitterID == "" {
		c.EmitterID = "otlp"
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 4 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Serve runs the standalone receiver until ctx ends: it authenticates each
// request by its tenant's bearer token, maps the agents' log records into
// agent.* events and records them through an eventlog.Producer (acks=all,
// spooled while Kafka is down), answering only once they are recorded.
func Serve(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("bad config: %w", err)
	}
	log := cfg.Logger
	tokens, err := LoadTokens(cfg.TokenFile)
	if err != nil {
		return err
	}
	var pol *policy.Policy
	if cfg.PolicyFile != "" {
		pol, err = policy.Load(cfg.PolicyFile)
	} else {
		pol, err = policy.Default()
	}
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	ids, err := events.NewIDGen(cfg.NodeID)
	if err != nil {
		return err
	}
	// A new emitter id per start: every start begins fresh chains, so a
	// restart never forks a chain an earlier process wrote.
	emitID := cfg.EmitterID + "-" + strconv.FormatInt(int64(ids.Next()), 36)
	popts := []eventlog.ProducerOption{eventlog.WithTopics(cfg.Topics), eventlog.WithProducerLogger(log), eventlog.WithEnsureTopics(3, 1)}
	if cfg.SpoolDir != "" {
		popts = append(popts, eventlog.WithSpool(cfg.SpoolDir, 256<<20))
	}
	prod, err := eventlog.NewProducer(ctx, cfg.Brokers, emitID, popts...)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		prod.Close(cctx)
	}()
	h := NewHandler(prod, tokens, NewMapper(ids, WithJudge(PolicyJudge{Policy: pol})),
		WithLogger(log), WithMaxBody(cfg.MaxBody, 4*cfg.MaxBody))
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("otlp receiver", "listen", ln.Addr().String(), "emitter", emitID, "policy", pol.ID())
	if cfg.OnListen != nil {
		cfg.OnListen(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	st := h.Stats()
	log.Info("otlp receiver stopped", "requests", st.Requests.Load(), "events", st.Events.Load(),
		"rejected", st.Rejected.Load(), "malformed", st.Malformed.Load(), "unauthenticated", st.Unauthenticated.Load())
	return nil
}
