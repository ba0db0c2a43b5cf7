package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/agentaudit/agentaudit/internal/hook"
)

// SoakHookDriver makes call i of a soak on the hook path: an agent's
// PreToolUse and PostToolUse for a Bash call, as agent-hook sends them to
// the hook socket at sock. A refusal counts as an error of the soak.
func SoakHookDriver(sock, agent string) SoakDriver {
	return func(ctx context.Context, i int) error {
		id := "toolu_soak_" + strconv.Itoa(i)
		in := map[string]any{"session_id": "soak", "hook_event_name": "PreToolUse", "cwd": SandboxWorkspace,
			"tool_name": "Bash", "tool_input": map[string]any{"command": fmt.Sprintf("ls -la src/%d", i%50)}, "tool_use_id": id}
		raw, _ := json.Marshal(in)
		resp, err := hook.Call(ctx, sock, hook.Request{Agent: agent, Event: "PreToolUse", Input: raw})
		if err != nil {
			return err
		}
		if resp.ExitCode != 0 {
			return fmt.Errorf("PreToolUse refused: %s", resp.Stderr)
		}
		in["hook_event_name"] = "PostToolUse"
		in["tool_response"] = map[string]any{"stdout": "total 0\n", "stderr": "", "interrupted": false}
		raw, _ = json.Marshal(in)
		_, err = hook.Call(ctx, sock, hook.Request{Agent: agent, Event: "PostToolUse", Input: raw})
		return err
	}
}

// SoakHook runs a soak on the hook path against the services of cfg: one
// agent session (one sandbox, one chain) whose hook socket answers this
// process, o.Calls PreToolUse/PostToolUse pairs.
func SoakHook(ctx context.Context, cfg Config, o SoakOptions, w io.Writer) (*SoakReport, error) {
	if cfg.Workspace == "" {
		return nil, fmt.Errorf("%w: --workspace: required", ErrConfig)
	}
	svc, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer svc.Close(context.WithoutCancel(ctx))
	s, err := svc.OpenSession(ctx, SessionOptions{Workspace: cfg.Workspace, Mode: "agent", Agent: AgentClaude,
		Client: &events.ClientInfo{Name: agentClientName(AgentClaude), Version: agentVersion(AgentClaude)}})
	if err != nil {
		return nil, err
	}
	defer s.Close(context.WithoutCancel(ctx), events.EndCompleted)
	dir, err := os.MkdirTemp("", "agentaudit-hook-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := hook.Listen(filepath.Join(dir, "hooks"), -1, -1, cfg.Logger)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	// The soak itself is the hook binary's peer.
	if err := srv.SetPeer(os.Getpid()); err != nil {
		return nil, err
	}
	srv.Serve(s)
	rep, err := Soak(ctx, "hook", o, SoakHookDriver(filepath.Join(srv.Dir(), hook.SocketName), AgentClaude))
	if err != nil {
		return nil, err
	}
	if w != nil {
		rep.Print(w)
	}
	return rep, nil
}
