// Command egress-bridge runs inside a sandbox container: it listens on a
// loopback TCP port and hands every connection to the egress proxy on its
// Unix socket, mounted from the host, by passing the socket itself
// (SCM_RIGHTS) so the proxy serves it with one relay; it relays bytes
// only if the proxy does not take it. Build it static (CGO_ENABLED=0).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentaudit/agentaudit/internal/netpol"
)

// Config is the bridge's command line.
type Config struct {
	Listen string `flag:"listen"`
	Socket string `flag:"socket"`
}

func (c *Config) validate() error {
	if c.Listen == "" {
		c.Listen = netpol.BridgeListenAddr
	}
	if c.Socket == "" {
		return errors.New("egress-bridge: --socket is required")
	}
	return nil
}

func main() {
	var cfg Config
	flag.StringVar(&cfg.Listen, "listen", netpol.BridgeListenAddr, "TCP address to listen on inside the container")
	flag.StringVar(&cfg.Socket, "socket", "", "path of the egress proxy's Unix socket")
	flag.Parse()
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// As PID 1 a signal without a handler is ignored: handle TERM so the
	// container stops at once.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := netpol.RunBridge(ctx, cfg.Listen, cfg.Socket, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
