# Rootless Podman for the sandbox: a dedicated unprivileged user, its API
# service on a Unix socket that root (the tests) connects to, and the sandbox
# image built from testenv/sandbox/. Sourced by testenv/up, status and down
# after common.sh.

PODMAN_USER="agentaudit-sbx"
PODMAN_HOME="/var/lib/$PODMAN_USER"
SANDBOX_REPO="localhost/agentaudit-sandbox"
PODMAN_PIDFILE="$RUNDIR/podman.pid"
PODMAN_LOG="$LOGDIR/podman-service.log"
SANDBOX_CACHE="$TE/sandbox"

# The runtime dir lives under /run/user like a login session's, not in the
# checkout: the checkout may sit in a directory the user cannot traverse, and
# every checkout on the machine shares the user's one storage anyway.
_podman_ids() {
	PODMAN_UID="$(id -u "$PODMAN_USER")"
	PODMAN_GID="$(id -g "$PODMAN_USER")"
	PODMAN_RUNTIME="/run/user/$PODMAN_UID"
	PODMAN_SOCK="$PODMAN_RUNTIME/podman/podman.sock"
	PODMAN_AS=(setpriv --reuid="$PODMAN_UID" --regid="$PODMAN_GID" --init-groups
		env -i -C "$PODMAN_HOME"
		HOME="$PODMAN_HOME" USER="$PODMAN_USER" LOGNAME="$PODMAN_USER"
		XDG_RUNTIME_DIR="$PODMAN_RUNTIME"
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
}

# _sandbox_version is a short hash of the image recipe: any change to
# testenv/sandbox/ yields a new tag, so a stale image is never used.
_sandbox_version() {
	cat "$TESTENV_DIR"/sandbox/* | sha256sum | cut -c1-12
}

_sandbox_image() { echo "$SANDBOX_REPO:$(_sandbox_version)"; }

# _podman_as CMD...: runs CMD as the sandbox user with a clean environment.
# setpriv, not su/runuser: no PAM session, so nothing tries to reach systemd.
_podman_as() { "${PODMAN_AS[@]}" "$@"; }

# _podman_api PATH [CURL ARGS...]: talks to the service as root.
_podman_api() {
	local path="$1"; shift
	curl -sS --max-time 10 --unix-socket "$PODMAN_SOCK" "$@" "http://d$path"
}

_podman_ping() { [[ "$(_podman_api /_ping 2>/dev/null)" == OK ]]; }

_podman_image_exists() {
	[[ "$(_podman_api "/v4.0.0/libpod/images/$1/exists" -o /dev/null -w '%{http_code}' 2>/dev/null)" == 204 ]]
}

# _podman_user creates the user and its subordinate id ranges when missing.
_podman_user() {
	if ! id -u "$PODMAN_USER" >/dev/null 2>&1; then
		step "podman: creating user $PODMAN_USER (home $PODMAN_HOME)"
		useradd --system --user-group --home-dir "$PODMAN_HOME" --create-home \
			--shell /usr/sbin/nologin --comment "agentaudit sandbox (rootless podman)" \
			"$PODMAN_USER"
	fi
	chmod 0700 "$PODMAN_HOME"
	local f start
	for f in /etc/subuid /etc/subgid; do
		touch "$f"
		grep -q "^$PODMAN_USER:" "$f" && continue
		# First free 65536-id range above every range already handed out.
		start="$(awk -F: 'BEGIN { m = 100000 } NF >= 3 && $2 + $3 > m { m = $2 + $3 } END { print m }' "$f")"
		echo "$PODMAN_USER:$start:65536" >>"$f"
		note "podman: $f: $PODMAN_USER:$start:65536"
	done
}

# _podman_render_config installs containers.conf and storage.conf for the
# user and reports (exit 0) whether either changed.
_podman_render_config() {
	local dir="$PODMAN_HOME/.config/containers" changed=1 tmp
	install -d -o "$PODMAN_UID" -g "$PODMAN_GID" -m 0700 \
		"$PODMAN_HOME/.config" "$dir" "$PODMAN_HOME/.local" "$PODMAN_HOME/.local/share"
	tmp="$(mktemp)"
	cp "$TESTENV_DIR/podman/containers.conf" "$tmp"
	if ! cmp -s "$tmp" "$dir/containers.conf"; then
		install -o "$PODMAN_UID" -g "$PODMAN_GID" -m 0600 "$tmp" "$dir/containers.conf"
		changed=0
	fi
	sed -e "s|@RUNROOT@|$PODMAN_RUNTIME/containers|" \
		-e "s|@GRAPHROOT@|$PODMAN_HOME/.local/share/containers/storage|" \
		"$TESTENV_DIR/podman/storage.conf" >"$tmp"
	if ! cmp -s "$tmp" "$dir/storage.conf"; then
		install -o "$PODMAN_UID" -g "$PODMAN_GID" -m 0600 "$tmp" "$dir/storage.conf"
		changed=0
	fi
	rm -f "$tmp"
	return $changed
}

# _podman_runtime_dir creates the user's runtime dir. /run is on disk on
# these hosts, so podman cannot tell a reboot from the dir's age: after a
# reboot (new boot id) the stale state is wiped, as a tmpfs would be.
_podman_runtime_dir() {
	local boot; boot="$(cat /proc/sys/kernel/random/boot_id)"
	install -d -m 0755 /run/user
	if [[ -d "$PODMAN_RUNTIME" && "$(cat "$PODMAN_RUNTIME/.boot_id" 2>/dev/null)" != "$boot" ]]; then
		note "podman: new boot, clearing $PODMAN_RUNTIME"
		rm -rf "$PODMAN_RUNTIME"
	fi
	install -d -o "$PODMAN_UID" -g "$PODMAN_GID" -m 0700 "$PODMAN_RUNTIME"
	echo "$boot" >"$PODMAN_RUNTIME/.boot_id"
}

_podman_start_service() {
	step "podman: starting API service on unix://$PODMAN_SOCK"
	install -d -o "$PODMAN_UID" -g "$PODMAN_GID" -m 0700 "$PODMAN_RUNTIME/podman"
	rm -f "$PODMAN_SOCK"
	# A new session, so the service outlives testenv/up and its terminal.
	# setsid, setpriv and env exec in turn, so $! is podman itself and the
	# leader of the process group that _podman_stop_service signals.
	setsid "${PODMAN_AS[@]}" podman system service --time=0 "unix://$PODMAN_SOCK" \
		</dev/null >>"$PODMAN_LOG" 2>&1 &
	echo $! >"$PODMAN_PIDFILE"
	wait_for "podman API service" 60 "$PODMAN_LOG" _podman_ping
	note "podman: service pid $(cat "$PODMAN_PIDFILE"), log $PODMAN_LOG"
}

# _podman_stop_service stops the service's whole process group: podman
# re-executes itself inside the user namespace, and the child that serves the
# API does not always die with the parent that the PID file names.
_podman_stop_service() {
	local timeout="${1:-30}"
	if ! [[ -s "$PODMAN_PIDFILE" ]]; then
		note "podman service: not running"
		return 0
	fi
	local pgid; pgid="$(cat "$PODMAN_PIDFILE")"
	if ! kill -0 -- "-$pgid" 2>/dev/null; then
		rm -f "$PODMAN_PIDFILE"
		note "podman service: not running"
		return 0
	fi
	kill -TERM -- "-$pgid" 2>/dev/null || true
	local deadline=$(( $(date +%s) + timeout ))
	while kill -0 -- "-$pgid" 2>/dev/null; do
		if (( $(date +%s) >= deadline )); then
			kill -KILL -- "-$pgid" 2>/dev/null || true
			note "podman service: killed after ${timeout}s"
			break
		fi
		sleep 0.2
	done
	rm -f "$PODMAN_PIDFILE"
	note "podman service: stopped (process group $pgid)"
}

# _podman_info prints "VERSION DRIVER" from the service.
_podman_info() {
	_podman_api /v4.0.0/libpod/info | python3 -c '
import json, sys
i = json.load(sys.stdin)
print(i["version"]["Version"], i["store"]["graphDriverName"])'
}

# _sandbox_image_up imports the sandbox image unless it is present, from the
# cached tarball when there is one, else after building it.
_sandbox_image_up() {
	local version image tar
	version="$(_sandbox_version)"
	image="$SANDBOX_REPO:$version"
	if _podman_image_exists "$image"; then
		note "podman: image $image present"
		return 0
	fi
	tar="$SANDBOX_CACHE/agentaudit-sandbox-$version.tar"
	mkdir -p "$SANDBOX_CACHE"
	if [[ ! -s "$tar" ]]; then
		step "podman: building sandbox root (debootstrap minbase, ~1 min)"
		local log="$LOGDIR/sandbox-build.log"
		"$TESTENV_DIR/sandbox/build.sh" "$tar" "$SANDBOX_CACHE/debs" >>"$log" 2>&1 \
			|| fail "sandbox image build" "$log"
		# Tarballs of older recipes are never imported again.
		find "$SANDBOX_CACHE" -maxdepth 1 -name 'agentaudit-sandbox-*.tar' ! -name "${tar##*/}" -delete
	fi
	step "podman: importing $image"
	local changes=() line
	while IFS= read -r line; do
		[[ -n "$line" ]] && changes+=(--change "$line")
	done <"$TESTENV_DIR/sandbox/changes"
	# The tarball is opened by root and handed over on stdin: the user may
	# not be able to read the checkout.
	_podman_as podman import --quiet "${changes[@]}" - "$image" <"$tar" >>"$LOGDIR/sandbox-build.log" 2>&1 \
		|| fail "podman import $image" "$LOGDIR/sandbox-build.log"
	_podman_image_exists "$image" || fail "image $image missing after import" "$LOGDIR/sandbox-build.log"
	# Images of older recipes only take space; one still in use stays.
	local old
	for old in $(_podman_as podman images --format '{{.Repository}}:{{.Tag}}' "$SANDBOX_REPO"); do
		[[ "$old" == "$image" ]] || _podman_as podman rmi "$old" >/dev/null 2>&1 || true
	done
}

podman_up() {
	apt_install podman runc uidmap debootstrap curl python3 util-linux
	_podman_user
	_podman_ids
	local restart=1
	_podman_render_config && restart=0
	_podman_runtime_dir
	if pid_alive "$PODMAN_PIDFILE" && (( restart == 0 )); then
		step "podman: configuration changed, restarting the service"
		_podman_stop_service
	fi
	if pid_alive "$PODMAN_PIDFILE" && _podman_ping; then
		note "podman: service already running (pid $(cat "$PODMAN_PIDFILE"))"
	else
		_podman_stop_service >/dev/null
		_podman_start_service
	fi
	local info; info="$(_podman_info)" || fail "podman info" "$PODMAN_LOG"
	if [[ "${info#* }" != overlay ]]; then
		fail "podman storage driver is '${info#* }', want overlay (storage created with another driver? run testenv/down --purge)" "$PODMAN_LOG"
	fi
	note "podman: version ${info% *}, storage driver overlay"
	_sandbox_image_up
}

podman_env() {
	_podman_ids
	echo "export PODMAN_SOCKET=unix://$PODMAN_SOCK"
	echo "export PODMAN_USER=$PODMAN_USER"
	echo "export PODMAN_UID=$PODMAN_UID"
	echo "export SANDBOX_IMAGE=$(_sandbox_image)"
}

podman_status() {
	local addr="-" health
	if ! id -u "$PODMAN_USER" >/dev/null 2>&1; then
		health="unhealthy (no user $PODMAN_USER)"
	else
		_podman_ids
		addr="unix://$PODMAN_SOCK"
		local info image; image="$(_sandbox_image)"
		if ! _podman_ping; then
			health="unhealthy (API does not answer)"
		elif ! info="$(_podman_info 2>/dev/null)"; then
			health="unhealthy (info failed)"
		elif ! _podman_image_exists "$image"; then
			health="unhealthy (podman ${info% *}, ${info#* }, image $image missing)"
		else
			health="healthy (podman ${info% *}, ${info#* }, image present)"
			printf '%-12s %-48s %s\n' podman "$addr" "$health"
			return 0
		fi
	fi
	printf '%-12s %-48s %s\n' podman "$addr" "$health"
	return 1
}

# podman_down PURGE: removes the sandboxes left by tests, stops the service,
# and with PURGE=1 also wipes the user's containers and images.
podman_down() {
	local purge="${1:-0}"
	if ! id -u "$PODMAN_USER" >/dev/null 2>&1; then
		note "podman: no user $PODMAN_USER"
		return 0
	fi
	_podman_ids
	local ids=""
	if command -v podman >/dev/null; then
		ids="$(_podman_as podman ps -aq --filter label=agentaudit.session 2>/dev/null || true)"
	fi
	if [[ -n "$ids" ]]; then
		note "podman: removing $(wc -w <<<"$ids") leftover sandbox container(s)"
		# shellcheck disable=SC2086
		_podman_as podman rm -f -t 0 $ids >/dev/null 2>&1 || true
	fi
	_podman_stop_service
	if (( purge )); then
		note "podman: system reset (all of $PODMAN_USER's containers and images)"
		_podman_as podman system reset -f >>"$PODMAN_LOG" 2>&1 || true
		rm -rf "$SANDBOX_CACHE"
	fi
	# The user namespace's pause process outlives the service; stop it when
	# no container needs it any more.
	local pause="$PODMAN_RUNTIME/libpod/tmp/pause.pid"
	if pid_alive "$pause" && [[ -z "$(_podman_as podman ps -q 2>/dev/null)" ]]; then
		stop_pidfile "podman pause process" "$pause" 5
	fi
}
