// Command sandbox-supervisor is PID 1 of every sandbox container: it runs
// the runner's tool calls, traces every exec of every process they start
// and asks the runner about each (see internal/supervisor), and serves the
// egress bridge to the session's proxy. Build it static (CGO_ENABLED=0);
// the runner mounts it read-only.
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
}

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
	if cfg.EgressSocket != "" {
		ln, err := net.Listen("tcp", cfg.EgressListen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sandbox-supervisor: egress bridge:", err)
			os.Exit(1)
		}
		sc.Serve = func(ctx context.Context) error { return netpol.ServeBridge(ctx, ln, cfg.EgressSocket, log) }
	}
	if err := supervisor.Run(ctx, sc); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
