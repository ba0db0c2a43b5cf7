// Command sandbox-supervisor is PID 1 of every sandbox container: it runs
// the runner's tool calls, traces every exec of every process they start
// and asks the runner about each (see internal/supervisor), and serves the
// egress bridge to the session's proxy and, for an agent session, the
// relay of the sandbox's OTLP port to the runner's telemetry receiver.
// Build it static (CGO_ENABLED=0); the runner mounts it read-only.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentaudit/agentaudit/internal/netpol"
	"github.com/agentaudit/agentaudit/internal/supervisor"
)

// Config is the supervisor's command line.
type Config struct {
	Socket       string
	EgressSocket string
	EgressListen string
	OTLPSocket   string
	OTLPListen   string
}

// OTLPListenAddr is where an agent in the sandbox exports its telemetry:
// the sandbox's own loopback, at an address NO_PROXY can name without
// letting anything else on 127.0.0.1 bypass the egress proxy.
const OTLPListenAddr = "127.0.0.2:4318"

func (c *Config) validate() error {
	if c.Socket == "" {
		return fmt.Errorf("sandbox-supervisor: --socket is required")
	}
	if c.EgressSocket != "" && c.EgressListen == "" {
		c.EgressListen = netpol.BridgeListenAddr
	}
	return nil
}

func main() {
	supervisor.Doorbell()
	var cfg Config
	flag.StringVar(&cfg.Socket, "socket", supervisor.ContainerDir+"/"+supervisor.SocketName, "the runner's Unix socket")
	flag.StringVar(&cfg.EgressSocket, "egress-socket", "", "the egress proxy's Unix socket; empty: no egress bridge")
	flag.StringVar(&cfg.EgressListen, "egress-listen", netpol.BridgeListenAddr, "TCP address of the egress bridge inside the sandbox")
	flag.StringVar(&cfg.OTLPSocket, "otlp-socket", "", "the runner's OTLP receiver socket; empty: no OTLP relay")
	flag.StringVar(&cfg.OTLPListen, "otlp-listen", OTLPListenAddr, "TCP address of the OTLP relay inside the sandbox")
	flag.Parse()
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// As PID 1 a signal without a handler is ignored: TERM stops the
	// sandbox (and with it every process in it).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sc := supervisor.Config{Socket: cfg.Socket, Log: log}
	var serve []func(context.Context) error
	if cfg.EgressSocket != "" {
		ln, err := net.Listen("tcp", cfg.EgressListen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sandbox-supervisor: egress bridge:", err)
			os.Exit(1)
		}
		serve = append(serve, func(ctx context.Context) error { return netpol.ServeBridge(ctx, ln, cfg.EgressSocket, log) })
	}
	if cfg.OTLPSocket != "" {
		ln, err := net.Listen("tcp", cfg.OTLPListen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sandbox-supervisor: OTLP relay:", err)
			os.Exit(1)
		}
		serve = append(serve, func(ctx context.Context) error { return netpol.ServeRelay(ctx, ln, cfg.OTLPSocket, log) })
	}
	if len(serve) > 0 {
		sc.Serve = func(ctx context.Context) error {
			errs := make(chan error, len(serve))
			for _, f := range serve {
				go func() { errs <- f(ctx) }()
			}
			var first error
			for range serve {
				if err := <-errs; err != nil && first == nil {
					first = err
				}
			}
			return first
		}
	}
	if err := supervisor.Run(ctx, sc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
