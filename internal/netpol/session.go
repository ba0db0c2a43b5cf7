package netpol

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// SandboxConfig says how a runner wires proxies into its sandboxes.
type SandboxConfig struct {
	// SocketRoot is a host directory that holds one private directory per
	// session. It and its ancestors must be searchable by UID (mode 0711
	// or wider) so Podman can bind-mount the session directory.
	SocketRoot string
	// BridgePath is the host path of the egress-bridge binary (see
	// BuildBridge); it must be readable and executable by UID. Empty when
	// the sandbox brings its own bridge (the sandbox supervisor serves one).
	BridgePath string
	// UID and GID are the host ids the sandbox's processes run as (the
	// rootless Podman user with keep-id); -1 leaves ownership to the
	// runner's own user, right when the runner runs as that user.
	UID, GID int
}

// Mount is a bind mount the sandbox container needs.
type Mount struct {
	Source      string // host path
	Destination string // path inside the container
	ReadOnly    bool
}

// SessionProxy is a running proxy wired for one sandbox session.
type SessionProxy struct {
	proxy  *Proxy
	dir    string
	bridge string
	served chan error
}

var sessionDirUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// StartSession creates the session's private socket directory under
// cfg.SocketRoot, listens there, and serves p on it until Close.
func StartSession(cfg SandboxConfig, p *Proxy) (*SessionProxy, error) {
	if cfg.SocketRoot == "" {
		return nil, errors.New("netpol: StartSession: SocketRoot is required")
	}
	if cfg.BridgePath != "" {
		if _, err := os.Stat(cfg.BridgePath); err != nil {
			return nil, fmt.Errorf("netpol: egress bridge: %w", err)
		}
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := sessionDirUnsafe.ReplaceAllString(p.session.ID, "_")
	if len(name) > 64 {
		name = name[:64]
	}
	dir := filepath.Join(cfg.SocketRoot, name+"-"+hex.EncodeToString(suffix))
	ln, err := ListenUnix(dir, cfg.UID, cfg.GID)
	if err != nil {
		os.Remove(dir)
		return nil, err
	}
	sp := &SessionProxy{proxy: p, dir: dir, bridge: cfg.BridgePath, served: make(chan error, 1)}
	go func() { sp.served <- p.Serve(ln) }()
	return sp, nil
}

// Proxy returns the session's proxy (for its Stats).
func (sp *SessionProxy) Proxy() *Proxy { return sp.proxy }

// SocketDir is the host directory holding the proxy socket.
func (sp *SessionProxy) SocketDir() string { return sp.dir }

// Mounts are the container's extra bind mounts: the socket directory and
// the bridge binary, both read-only.
func (sp *SessionProxy) Mounts() []Mount {
	ms := []Mount{{Source: sp.dir, Destination: ContainerEgressDir, ReadOnly: true}}
	if sp.bridge != "" {
		ms = append(ms, Mount{Source: sp.bridge, Destination: ContainerBridgePath, ReadOnly: true})
	}
	return ms
}

// Env is the container's proxy environment (SandboxEnv(BridgeProxyURL)).
func (sp *SessionProxy) Env() map[string]string { return SandboxEnv(BridgeProxyURL) }

// Command is the container's main process (BridgeCommand()).
func (sp *SessionProxy) Command() []string { return BridgeCommand() }

// Close stops the proxy (recording every open connection's close) and
// removes the socket directory.
func (sp *SessionProxy) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { sp.proxy.Close(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := <-sp.served; err != nil && !errors.Is(err, ErrProxyClosed) {
		os.RemoveAll(sp.dir)
		return err
	}
	return os.RemoveAll(sp.dir)
}
