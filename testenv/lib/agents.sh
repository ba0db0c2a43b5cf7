# The coding agents `runner agent` runs in the sandbox: @openai/codex and
# @anthropic-ai/claude-code, pinned exactly in testenv/agents/package.json
# and package-lock.json and installed with `npm ci` (never `npm install`,
# which may move the lock). A stamp of the lock's hash skips the install
# when nothing changed; make test-deps uses the same stamp. To update an
# agent: change its version in package.json, run `npm install
# --package-lock-only --prefix testenv/agents`, review the lock diff, and
# re-run the agent tests (go test ./internal/runner -run TestAgent).
# Sourced after common.sh; defines agents_up, agents_status, agents_env.

AGENTS_DIR="$TESTENV_DIR/agents"
AGENTS_LOG="$LOGDIR/agents-npm.log"

agents_up() {
	command -v npm >/dev/null || apt_install npm
	local want
	want=$(sha256sum "$AGENTS_DIR/package-lock.json" | cut -d' ' -f1)
	if [[ "$(cat "$AGENTS_DIR/node_modules/.lock.sha256" 2>/dev/null)" == "$want" ]]; then
		note "agents: codex and claude-code as pinned in testenv/agents"
		return
	fi
	step "npm ci --prefix testenv/agents (Codex and Claude Code, pinned)"
	npm ci --prefix "$AGENTS_DIR" --no-audit --no-fund --loglevel=error >"$AGENTS_LOG" 2>&1 \
		|| fail "npm ci --prefix testenv/agents" "$AGENTS_LOG"
	echo "$want" >"$AGENTS_DIR/node_modules/.lock.sha256"
}

agents_status() {
	local want
	want=$(sha256sum "$AGENTS_DIR/package-lock.json" | cut -d' ' -f1)
	if [[ "$(cat "$AGENTS_DIR/node_modules/.lock.sha256" 2>/dev/null)" != "$want" ]]; then
		printf '%-12s %-48s %s\n' agents "$AGENTS_DIR" "unhealthy (not installed as locked; run testenv/up)"
		return 1
	fi
	printf '%-12s %-48s %s\n' agents "$AGENTS_DIR" "healthy (codex, claude-code)"
}

agents_env() {
	echo "export AGENTAUDIT_AGENTS=$AGENTS_DIR"
}
