# Shared helpers for testenv/up, testenv/status and testenv/down.
# Sourced, never executed. Every service library (kafka.sh, clickhouse.sh,
# podman.sh) defines NAME_up, NAME_status, NAME_down and NAME_env.

set -euo pipefail

TESTENV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$TESTENV_DIR/.." && pwd)"
TE="$ROOT/.testenv"
LOGDIR="$TE/logs"
RUNDIR="$TE/run"
mkdir -p "$TE" "$LOGDIR" "$RUNDIR"

_t0=$(date +%s)

# step prints what is about to happen, with the seconds since start.
step() { printf '[%4ss] %s\n' "$(( $(date +%s) - _t0 ))" "$*"; }

# note prints an indented detail line.
note() { printf '        %s\n' "$*"; }

# fail names what failed and where to look, then exits.
fail() {
	local what="$1" log="${2:-}"
	printf '[%4ss] FAILED: %s\n' "$(( $(date +%s) - _t0 ))" "$what" >&2
	if [[ -n "$log" ]]; then
		printf '        log: %s (last lines below)\n' "$log" >&2
		[[ -f "$log" ]] && tail -n 20 "$log" | sed 's/^/        | /' >&2
	fi
	exit 1
}

# wait_for DESC TIMEOUT_SECONDS LOG CMD...: retries CMD until it succeeds.
wait_for() {
	local desc="$1" timeout="$2" log="$3"; shift 3
	local deadline=$(( $(date +%s) + timeout ))
	until "$@" >/dev/null 2>&1; do
		if (( $(date +%s) >= deadline )); then
			fail "$desc did not become ready within ${timeout}s" "$log"
		fi
		sleep 0.5
	done
}

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() {
	local f="$1"
	[[ -s "$f" ]] || return 1
	kill -0 "$(cat "$f")" 2>/dev/null
}

# stop_pidfile NAME PIDFILE [TIMEOUT]: TERM, wait, then KILL; removes the file.
stop_pidfile() {
	local name="$1" f="$2" timeout="${3:-30}"
	if ! pid_alive "$f"; then
		rm -f "$f"
		note "$name: not running"
		return 0
	fi
	local pid; pid="$(cat "$f")"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$(( $(date +%s) + timeout ))
	while kill -0 "$pid" 2>/dev/null; do
		if (( $(date +%s) >= deadline )); then
			kill -KILL "$pid" 2>/dev/null || true
			note "$name: killed after ${timeout}s"
			break
		fi
		sleep 0.2
	done
	rm -f "$f"
	note "$name: stopped (pid $pid)"
}

_apt_updated=0
# apt_install PKG...: installs the packages that are not installed yet.
apt_install() {
	local missing=()
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	(( ${#missing[@]} == 0 )) && return 0
	local log="$LOGDIR/apt.log"
	if (( _apt_updated == 0 )); then
		step "apt-get update"
		apt-get -o DPkg::Lock::Timeout=300 update >>"$log" 2>&1 || fail "apt-get update" "$log"
		_apt_updated=1
	fi
	step "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1 \
		|| fail "apt-get install ${missing[*]}" "$log"
}

# port_open PORT: true when something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
