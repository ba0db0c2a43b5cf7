# chDB for testenv: a current ClickHouse engine as a shared library
# (libchdb.so from the npm package @chdb/lib-linux-x64-gnu), loaded in-process
# by github.com/chdb-io/chdb-go for the `chdb`-tagged schema tests. No server
# runs; chdb_up only fetches the library once into $TE/chdb. Sourced after
# common.sh; defines chdb_up, chdb_status, chdb_down and chdb_env.
#
# chdb-go v1.11.0 finds the library through CHDB_LIB_PATH (then PATH, then
# /usr/local/lib/libchdb.so); chdb_env exports that variable.

CHDB_PKG=@chdb/lib-linux-x64-gnu
CHDB_VERSION=26.5.3
CHDB_PREFIX="$TE/chdb"
CHDB_LOG="$LOGDIR/chdb-npm.log"

# _chdb_lib prints the path of libchdb.so inside the installed package, or
# fails when it is not there.
_chdb_lib() {
	local f
	for f in "$CHDB_PREFIX/node_modules/$CHDB_PKG/libchdb.so" \
		"$CHDB_PREFIX/node_modules/$CHDB_PKG/lib/libchdb.so"; do
		[[ -s "$f" ]] && { echo "$f"; return 0; }
	done
	f="$(find "$CHDB_PREFIX/node_modules/$CHDB_PKG" -name libchdb.so -type f 2>/dev/null | head -1)"
	[[ -n "$f" ]] && { echo "$f"; return 0; }
	return 1
}

# _chdb_installed_version prints the version npm installed, if any.
_chdb_installed_version() {
	local pj="$CHDB_PREFIX/node_modules/$CHDB_PKG/package.json"
	[[ -f "$pj" ]] || return 1
	sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pj" | head -1
}

chdb_up() {
	if [[ "$(_chdb_installed_version 2>/dev/null)" == "$CHDB_VERSION" ]] && _chdb_lib >/dev/null; then
		note "chdb: $CHDB_PKG@$CHDB_VERSION already installed"
		return 0
	fi
	command -v npm >/dev/null || apt_install npm
	mkdir -p "$CHDB_PREFIX"
	step "npm install $CHDB_PKG@$CHDB_VERSION (about 167 MB, once)"
	npm install --prefix "$CHDB_PREFIX" --no-audit --no-fund \
		"$CHDB_PKG@$CHDB_VERSION" >>"$CHDB_LOG" 2>&1 \
		|| fail "npm install $CHDB_PKG@$CHDB_VERSION" "$CHDB_LOG"
	_chdb_lib >/dev/null || fail "libchdb.so not found under $CHDB_PREFIX/node_modules/$CHDB_PKG" "$CHDB_LOG"
}

chdb_status() {
	local lib
	if ! lib="$(_chdb_lib)"; then
		printf '%-12s %-48s %s\n' chdb "-" "unhealthy (libchdb.so missing; run testenv/up)"
		return 1
	fi
	printf '%-12s %-48s %s\n' chdb "$lib" "healthy ($CHDB_PKG@$(_chdb_installed_version))"
}

chdb_down() {
	local purge="${1:-0}"
	if (( purge )); then
		rm -rf "$CHDB_PREFIX"
		note "chdb: removed $CHDB_PREFIX"
	fi
}

chdb_env() {
	local lib
	lib="$(_chdb_lib)" || return 0
	echo "export CHDB_LIB_PATH=$lib"
}
