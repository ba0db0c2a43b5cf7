package approvals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals/signing"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// ServeConfig is what `approve serve` runs with. The binary fills it from
// flags and the environment and checks it.
type ServeConfig struct {
	Listen        string          // address to listen on, e.g. 127.0.0.1:8480
	KeyFile       string          // the signer's PEM private key (approve keygen)
	TrustFile     string          // optional: public key set the fold verifies with (after a rotation)
	ApproversFile string          // approvers.yaml
	Brokers       []string        // Kafka bootstrap brokers
	Topics        eventlog.Topics // topic names
	NodeID        int64           // snowflake node id, unique among emitters
	ServiceID     string          // base of the service's runner_id
	Expire        bool            // expire overdue requests (safe on every instance)
	ExpiryEvery   time.Duration   // how often to look for overdue requests
	AlertWindow   time.Duration   // how far back to read alerts at start
	CreateTopics  bool            // create missing topics (3 partitions, replication 1)
	SpoolDir      string          // producer spool (required: see Serve)
	Origins       []string        // extra origins allowed to POST
	Logger        *slog.Logger
	// OnListen, when set, is called with the bound address before serving.
	OnListen func(addr net.Addr)
}

// ErrNoSpool: Serve was given no spool directory. Every event the service
// writes is stamped on its chain before Kafka sees it; without a spool, an
// event Kafka refuses is lost and leaves a gap that `query verify` reports
// as tampering.
var ErrNoSpool = errors.New("approvals: a spool directory is required")

// Serve runs the approvals service and its HTTP API until ctx ends.
func Serve(ctx context.Context, cfg ServeConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.SpoolDir == "" {
		return ErrNoSpool
	}
	signer, err := signing.LoadSigner(cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	acfg, err := LoadConfig(cfg.ApproversFile)
	if err != nil {
		return err
	}
	auth, err := NewAuthenticator(acfg)
	if err != nil {
		return err
	}
	ids, err := events.NewIDGen(cfg.NodeID)
	if err != nil {
		return err
	}
	emitID := NewEmitterID(cfg.ServiceID, ids)
	popts := []eventlog.ProducerOption{eventlog.WithTopics(cfg.Topics), eventlog.WithProducerLogger(log)}
	if cfg.CreateTopics {
		popts = append(popts, eventlog.WithEnsureTopics(3, 1))
	}
	popts = append(popts, eventlog.WithSpool(cfg.SpoolDir, 256<<20))
	prod, err := eventlog.NewProducer(ctx, cfg.Brokers, emitID, popts...)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		prod.Close(cctx)
	}()
	sopts := []ServiceOption{
		WithServiceLogger(log), WithServiceTopics(cfg.Topics), WithExpiry(cfg.Expire, cfg.ExpiryEvery),
		WithAllowedOrigins(cfg.Origins...),
	}
	if cfg.AlertWindow > 0 {
		sopts = append(sopts, WithAlertWindow(cfg.AlertWindow, 500, 20000))
	}
	trust := cfg.TrustFile
	if trust == "" {
		// approve keygen writes keys.json beside signer.pem and keeps the
		// earlier keys in it, so after a rotation the decisions the old
		// key signed still verify without --trust.
		if p := filepath.Join(filepath.Dir(cfg.KeyFile), signing.KeySetFile); fileExists(p) {
			trust = p
		}
	}
	if trust != "" {
		ks, err := signing.LoadKeySet(trust)
		if err != nil {
			return fmt.Errorf("trusted keys: %w", err)
		}
		if !trusts(ks, signer) {
			return fmt.Errorf("trusted keys %s: %w: the signing key %q is not among them", trust, signing.ErrKeyFile, signer.KeyID())
		}
		sopts = append(sopts, WithTrustedKeys(ks))
		ids := []string{}
		for _, k := range ks.Keys() {
			ids = append(ids, k.ID)
		}
		log.Info("trusted approval keys", "file", trust, "keys", ids)
	}
	svc, err := NewService(cfg.Brokers, prod, signer, auth, ids, emitID, sopts...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           svc.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second, // the event stream lifts it for itself
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("approvals service", "listen", ln.Addr().String(), "emitter", emitID, "key_id", signer.KeyID(),
		"approvers", len(acfg.Approvers), "expire", cfg.Expire)
	if cfg.OnListen != nil {
		cfg.OnListen(ln.Addr())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- svc.Run(ctx) }()
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	return first
}

func trusts(ks *signing.KeySet, s signing.Signer) bool {
	pub := s.Public()
	for _, k := range ks.Keys() {
		if k.ID == pub.ID && k.Key.Equal(pub.Key) {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
