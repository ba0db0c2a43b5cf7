package netpol

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentaudit/agentaudit/internal/staticbin"
)

// Where the bridge lives inside a sandbox container. The runner
// bind-mounts the session's socket directory (read-only is enough:
// connecting to a socket needs no write access to its file system) at
// ContainerEgressDir and the bridge binary at ContainerBridgePath, and
// starts BridgeCommand() as the container's main process.
const (
	ContainerEgressDir  = "/agentaudit/egress"
	ContainerBridgePath = "/agentaudit/egress-bridge"
	BridgeListenAddr    = "127.0.0.1:3128"
	BridgeProxyURL      = "http://" + BridgeListenAddr
)

// BridgeCommand is the container's main process: the bridge, listening
// where SandboxEnv points clients, forwarding to the mounted socket.
func BridgeCommand() []string {
	return []string{ContainerBridgePath, "--listen", BridgeListenAddr, "--socket", ContainerEgressDir + "/" + SocketName}
}

// SandboxEnv returns the environment that points a sandbox's HTTP clients
// at proxyURL (normally BridgeProxyURL). Both cases are set because tools
// disagree on which they read (curl ignores HTTP_PROXY; Go reads both);
// NO_PROXY is set empty so that nothing, not even localhost, bypasses the
// proxy from an inherited value.
func SandboxEnv(proxyURL string) map[string]string {
	env := map[string]string{}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"} {
		env[k] = proxyURL
		env[lowerASCII(k)] = proxyURL
	}
	env["NO_PROXY"] = ""
	env["no_proxy"] = ""
	return env
}

// RunBridge listens on listenAddr (TCP, inside the container) and hands
// every connection to the proxy's Unix socket at socketPath, until ctx
// ends. The bridge makes no decisions: the proxy sees every byte. When it
// runs as PID 1 it also reaps orphaned processes, the job `sleep
// infinity` or an init would otherwise have.
func RunBridge(ctx context.Context, listenAddr, socketPath string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return fmt.Errorf("netpol: bridge listen: %w", err)
	}
	if os.Getpid() == 1 {
		go reapChildren(ctx)
	}
	return ServeBridge(ctx, ln, socketPath, log)
}

// passAckTimeout bounds the wait for the proxy to take a passed socket.
// The client does not wait for it: its bytes queue in the socket, which
// the proxy reads as soon as it has checked it.
const passAckTimeout = 10 * time.Second

// ServeBridge is RunBridge on a listener the caller opened; it closes ln
// when ctx ends and returns once every connection is handed over or has
// ended.
//
// Each accepted client socket is passed to the proxy (SCM_RIGHTS, see
// passConn) and the bridge closes its copy: the data then moves client ↔
// proxy ↔ upstream with one relay, where relaying here too made two, and
// cost a third of the throughput on a two-core machine. If the proxy does
// not take the socket, the bridge relays it byte for byte instead, as it
// always did.
func ServeBridge(ctx context.Context, ln net.Listener, socketPath string, log *slog.Logger) error {
	return serveBridge(ctx, ln, socketPath, log, true)
}

// ServeRelay accepts on ln and relays each connection byte for byte to
// the Unix socket at socketPath: a bridge for a server that takes plain
// connections (the runner's per-session OTLP receiver), where ServeBridge
// hands sockets to the egress proxy.
func ServeRelay(ctx context.Context, ln net.Listener, socketPath string, log *slog.Logger) error {
	return serveBridge(ctx, ln, socketPath, log, false)
}

// serveBridge with passFD false always relays (the benchmark's baseline).
func serveBridge(ctx context.Context, ln net.Listener, socketPath string, log *slog.Logger, passFD bool) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	log.Info("egress bridge listening", "listen", ln.Addr().String(), "socket", socketPath)
	var wg sync.WaitGroup
	defer wg.Wait()
	var fallbacks atomic.Uint64
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("egress bridge accept failed", "err", err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			up, err := net.DialTimeout("unix", socketPath, 5*time.Second)
			if err != nil {
				log.Warn("egress bridge cannot reach the proxy", "err", err)
				return
			}
			defer func() { up.Close() }()
			if tc, ok := c.(*net.TCPConn); ok && passFD {
				passed, err := passConn(up.(*net.UnixConn), tc, passAckTimeout)
				if passed {
					return
				}
				if err != nil {
					log.Warn("egress bridge dropped a connection", "err", err)
					return
				}
				// Rate-limited: a proxy that never takes sockets would
				// otherwise log once per connection.
				if n := fallbacks.Add(1); n&(n-1) == 0 {
					log.Warn("egress proxy did not take a passed connection; relaying instead", "fallbacks", n)
				}
				up.Close()
				if up, err = net.DialTimeout("unix", socketPath, 5*time.Second); err != nil {
					log.Warn("egress bridge cannot reach the proxy", "err", err)
					return
				}
			}
			// Ending the bridge ends its connections too.
			stopConn := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
			defer stopConn()
			tunnel(c, up, 0)
		}()
	}
}

// reapChildren waits for every child that exits, so processes orphaned
// inside the container do not stay zombies under PID 1.
func reapChildren(ctx context.Context) {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGCHLD)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

// BuildBridge builds cmd/egress-bridge from the module at moduleDir into
// out as a static binary (see staticbin.Build). The runner's sandboxes get
// their bridge from the sandbox supervisor; this one serves netpol's own
// tests of the bridge as a container's main process.
func BuildBridge(ctx context.Context, moduleDir, out string) error {
	return staticbin.Build(ctx, moduleDir, "./cmd/egress-bridge", out)
}
