# Tools the tests drive as independent peers: Debian's headless Chromium
# (browser tests of the approvals inbox and the HTML reports) and kcat
# (malformed-record corpus, ingest benchmark peer). Sourced after common.sh;
# defines tools_up, tools_status, tools_down and tools_env.

tools_up() {
	apt_install chromium kcat clickhouse-client
	note "tools: $(chromium --version 2>/dev/null | head -1); kcat and clickhouse-client present"
}

tools_status() {
	local missing=()
	command -v chromium >/dev/null || missing+=(chromium)
	command -v kcat >/dev/null || missing+=(kcat)
	command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
	if (( ${#missing[@]} )); then
		printf '%-12s %-48s %s\n' tools "-" "unhealthy (missing: ${missing[*]}; run testenv/up)"
		return 1
	fi
	printf '%-12s %-48s %s\n' tools "/usr/bin/chromium" "healthy (chromium, kcat, clickhouse-client)"
}

tools_down() { :; }

tools_env() {
	echo "export CHROMIUM=$(command -v chromium || echo /usr/bin/chromium)"
}
