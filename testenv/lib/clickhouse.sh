# ClickHouse for testenv: Debian's clickhouse-server (18.16, the only server
# packaged here) run as our own process on 127.0.0.1:9000 (native) and
# 127.0.0.1:8123 (HTTP), with state under $TE/clickhouse. Sourced after
# common.sh; defines clickhouse_up, clickhouse_status, clickhouse_down and
# clickhouse_env.

CH_STATE="$TE/clickhouse"
CH_PIDFILE="$RUNDIR/clickhouse.pid"
CH_LOG="$LOGDIR/clickhouse-server.log"
CH_ERRLOG="$LOGDIR/clickhouse-server.err.log"
CH_STDOUT="$LOGDIR/clickhouse-server.stdout.log"
CH_HOST=127.0.0.1
CH_PORT=9000
CH_HTTP_PORT=8123
CH_DATABASE=agentaudit
# Fixed development passwords: the server listens on loopback only, and
# users.xml stores only their sha256.
CH_WRITER_USER=agentaudit_writer
CH_WRITER_PASSWORD=agentaudit-writer-dev
CH_READER_USER=agentaudit_reader
CH_READER_PASSWORD=agentaudit-reader-dev

# _ch_client runs clickhouse-client as the admin user against our server.
_ch_client() {
	clickhouse-client --host "$CH_HOST" --port "$CH_PORT" --user default "$@"
}

# _ch_render writes config.xml and users.xml with absolute paths and password
# hashes. A changed template takes effect at the next start (users.xml is
# also reloaded by a running server).
_ch_render() {
	local src="$TESTENV_DIR/clickhouse" tmp
	local wsha rsha
	wsha="$(printf '%s' "$CH_WRITER_PASSWORD" | sha256sum | cut -d' ' -f1)"
	rsha="$(printf '%s' "$CH_READER_PASSWORD" | sha256sum | cut -d' ' -f1)"
	tmp="$(mktemp "$CH_STATE/.render.XXXXXX")"
	sed -e "s|@STATE@|$CH_STATE|g" -e "s|@LOGDIR@|$LOGDIR|g" "$src/config.xml" >"$tmp"
	_ch_install_if_changed "$tmp" "$CH_STATE/config.xml"
	tmp="$(mktemp "$CH_STATE/.render.XXXXXX")"
	sed -e "s|@WRITER_SHA256@|$wsha|g" -e "s|@READER_SHA256@|$rsha|g" "$src/users.xml" >"$tmp"
	_ch_install_if_changed "$tmp" "$CH_STATE/users.xml"
}

# _ch_install_if_changed TMP DEST: moves TMP over DEST unless equal, so an
# unchanged file keeps its mtime and a running server does not reload it.
_ch_install_if_changed() {
	if cmp -s "$1" "$2"; then
		rm -f "$1"
	else
		mv "$1" "$2"
	fi
}

# _ch_ready: true when the native port answers a query.
_ch_ready() { _ch_client --query 'SELECT 1' >/dev/null 2>&1; }

# _ch_stop_system_service makes sure the package's own service does not hold
# our ports: on a machine running systemd the package enables and starts it.
_ch_stop_system_service() {
	if [[ -d /run/systemd/system ]] && systemctl is-active --quiet clickhouse-server 2>/dev/null; then
		note "stopping and disabling the packaged clickhouse-server service"
		systemctl disable --now clickhouse-server >>"$LOGDIR/apt.log" 2>&1 || true
	elif pgrep -f 'clickhouse-server.*/etc/clickhouse-server/config.xml' >/dev/null 2>&1; then
		note "stopping the packaged clickhouse-server (init script)"
		/etc/init.d/clickhouse-server stop >>"$LOGDIR/apt.log" 2>&1 || true
	fi
}

clickhouse_up() {
	if ! command -v clickhouse-server >/dev/null || ! command -v clickhouse-client >/dev/null; then
		apt_install clickhouse-server clickhouse-client
	fi
	mkdir -p "$CH_STATE"/{data,tmp,user_files,format_schemas}
	_ch_render

	if pid_alive "$CH_PIDFILE" && _ch_ready; then
		note "clickhouse: already running (pid $(cat "$CH_PIDFILE"))"
	else
		if pid_alive "$CH_PIDFILE"; then
			# Alive but not answering: a half-started or wedged server.
			stop_pidfile clickhouse "$CH_PIDFILE" 30
		fi
		rm -f "$CH_PIDFILE"
		_ch_stop_system_service
		if port_open "$CH_PORT" || port_open "$CH_HTTP_PORT"; then
			fail "ports $CH_PORT/$CH_HTTP_PORT are taken by a process testenv did not start: $(ss -ltnpH "( sport = :$CH_PORT or sport = :$CH_HTTP_PORT )" 2>/dev/null | tr -s ' ' | head -2)"
		fi
		step "starting clickhouse-server $(dpkg-query -W -f='${Version}' clickhouse-server 2>/dev/null) on $CH_HOST:$CH_PORT"
		# Runs as the invoking user (root here); it owns the data folder, which
		# is what the server checks. The server writes the PID file itself.
		(
			cd "$CH_STATE"
			exec setsid nohup clickhouse-server --config-file="$CH_STATE/config.xml" \
				--pid-file="$CH_PIDFILE" </dev/null >>"$CH_STDOUT" 2>&1
		) &
		local launcher=$!
		local deadline=$(( $(date +%s) + 60 ))
		until _ch_ready; do
			if ! kill -0 "$launcher" 2>/dev/null; then
				fail "clickhouse-server exited during start" "$CH_ERRLOG"
			fi
			if (( $(date +%s) >= deadline )); then
				fail "clickhouse-server did not answer SELECT 1 within 60s" "$CH_ERRLOG"
			fi
			sleep 0.3
		done
		# The server writes its PID file early; fall back to the launcher's PID
		# (setsid and nohup exec, so it is the server) if it did not.
		[[ -s "$CH_PIDFILE" ]] || echo "$launcher" >"$CH_PIDFILE"
	fi
	_ch_client --query "CREATE DATABASE IF NOT EXISTS $CH_DATABASE" \
		|| fail "CREATE DATABASE $CH_DATABASE" "$CH_ERRLOG"
}

clickhouse_status() {
	local addr="$CH_HOST:$CH_PORT"
	if ! pid_alive "$CH_PIDFILE"; then
		printf '%-12s %-48s %s\n' clickhouse "$addr" "unhealthy (not running: no live pid in $CH_PIDFILE)"
		return 1
	fi
	local pid version
	pid="$(cat "$CH_PIDFILE")"
	if ! version="$(_ch_client --query 'SELECT version()' 2>&1)"; then
		printf '%-12s %-48s %s\n' clickhouse "$addr" "unhealthy (pid $pid; SELECT failed: $(echo "$version" | head -1 | cut -c1-80))"
		return 1
	fi
	if ! _ch_client --query "SELECT count() FROM system.databases WHERE name = '$CH_DATABASE'" 2>/dev/null | grep -qx 1; then
		printf '%-12s %-48s %s\n' clickhouse "$addr" "unhealthy (pid $pid; database $CH_DATABASE missing)"
		return 1
	fi
	printf '%-12s %-48s %s\n' clickhouse "$addr" "healthy (pid $pid, ClickHouse $version)"
}

clickhouse_down() {
	local purge="${1:-0}"
	stop_pidfile clickhouse "$CH_PIDFILE" 30
	if (( purge )); then
		rm -rf "$CH_STATE"
		note "clickhouse: removed $CH_STATE"
	fi
}

clickhouse_env() {
	cat <<EOF
export CLICKHOUSE_ADDR=$CH_HOST:$CH_PORT
export CLICKHOUSE_HTTP=$CH_HOST:$CH_HTTP_PORT
export CLICKHOUSE_USER=$CH_WRITER_USER
export CLICKHOUSE_PASSWORD=$CH_WRITER_PASSWORD
export CLICKHOUSE_READONLY_USER=$CH_READER_USER
export CLICKHOUSE_READONLY_PASSWORD=$CH_READER_PASSWORD
export CLICKHOUSE_ADMIN_USER=default
export CLICKHOUSE_ADMIN_PASSWORD=
export CLICKHOUSE_DATABASE=$CH_DATABASE
EOF
}
