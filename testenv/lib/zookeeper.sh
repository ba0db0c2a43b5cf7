# ZooKeeper for testenv's ClickHouse cluster: Apache ZooKeeper (version
# pinned in testenv/zookeeper/pom.xml) from Maven Central jars, one
# standalone server on 127.0.0.1:12181, state under $TE/zookeeper. Started
# only with the cluster (testenv/up --cluster). Sourced after common.sh and
# kafka.sh (for the Java finder); defines zookeeper_up, zookeeper_status,
# zookeeper_down.

source "$TESTENV_DIR/lib/maven.sh"

ZK_SRC="$TESTENV_DIR/zookeeper"
ZK_STATE="$TE/zookeeper"
ZK_LIBS="$ZK_STATE/libs"
ZK_DATA="$ZK_STATE/data"
ZK_CONFIG="$ZK_STATE/zoo.cfg"
ZK_PIDFILE="$RUNDIR/zookeeper.pid"
ZK_LOG="$LOGDIR/zookeeper.log"
ZK_PORT=12181
ZK_ADDR="127.0.0.1:$ZK_PORT"
ZK_VERSION="$(sed -n 's|.*<zookeeper.version>\(.*\)</zookeeper.version>.*|\1|p' "$ZK_SRC/pom.xml")"

# _zk_ruok: true when the server serves: the four-letter srvr reports a
# mode. (ruok alone answers imok from a server whose main thread died.)
_zk_ruok() {
	local reply
	reply="$( { exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT"; } 2>/dev/null && printf srvr >&3 && timeout 2 cat <&3)" || return 1
	[[ "$reply" == *"Mode: standalone"* ]]
}

zookeeper_up() {
	local java
	java="$(_kafka_java)" || fail "no Java 17 or newer found for ZooKeeper; set KAFKA_JAVA"
	mkdir -p "$ZK_STATE" "$ZK_DATA"
	local changed=0
	maven_libs zookeeper "$ZK_SRC/pom.xml" "$ZK_LIBS" "zookeeper-$ZK_VERSION.jar" && changed=1
	local tmp
	tmp="$(mktemp "$ZK_STATE/.render.XXXXXX")"
	sed -e "s|@DATA@|$ZK_DATA|g" "$ZK_SRC/zoo.cfg" >"$tmp"
	if cmp -s "$tmp" "$ZK_CONFIG"; then rm -f "$tmp"; else mv "$tmp" "$ZK_CONFIG"; changed=1; fi

	if pid_alive "$ZK_PIDFILE"; then
		if (( changed == 0 )) && _zk_ruok; then
			note "zookeeper: already running (pid $(cat "$ZK_PIDFILE"))"
			return 0
		fi
		stop_pidfile zookeeper "$ZK_PIDFILE" 20
	fi
	rm -f "$ZK_PIDFILE"
	port_open "$ZK_PORT" && fail "port $ZK_PORT is taken by a process testenv did not start"
	step "starting ZooKeeper $ZK_VERSION on $ZK_ADDR"
	(
		cd "$ZK_STATE"
		exec setsid nohup "$java" -Xms32m -Xmx128m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
			-Djava.awt.headless=true -Dzookeeper.admin.enableServer=false \
			-Dorg.slf4j.simpleLogger.showDateTime=true -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
			-cp "$ZK_LIBS/*" org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZK_CONFIG" </dev/null >>"$ZK_LOG" 2>&1
	) &
	echo $! >"$ZK_PIDFILE"
	local deadline=$(( $(date +%s) + 60 ))
	until _zk_ruok; do
		pid_alive "$ZK_PIDFILE" || { rm -f "$ZK_PIDFILE"; fail "ZooKeeper exited during start" "$ZK_LOG"; }
		(( $(date +%s) < deadline )) || fail "ZooKeeper did not serve (srvr) within 60s" "$ZK_LOG"
		sleep 0.3
	done
	note "zookeeper: ready (pid $(cat "$ZK_PIDFILE"))"
}

zookeeper_status() {
	if ! pid_alive "$ZK_PIDFILE"; then
		printf '%-12s %-48s %s\n' zookeeper "$ZK_ADDR" "unhealthy (not running: no live pid in $ZK_PIDFILE)"
		return 1
	fi
	if ! _zk_ruok; then
		printf '%-12s %-48s %s\n' zookeeper "$ZK_ADDR" "unhealthy (pid $(cat "$ZK_PIDFILE"); srvr reports no mode)"
		return 1
	fi
	printf '%-12s %-48s %s\n' zookeeper "$ZK_ADDR" "healthy (pid $(cat "$ZK_PIDFILE"), ZooKeeper $ZK_VERSION)"
}

zookeeper_down() {
	local purge="${1:-0}"
	stop_pidfile zookeeper "$ZK_PIDFILE" 20
	if (( purge )); then
		rm -rf "$ZK_DATA"
		note "zookeeper: removed $ZK_DATA (jars kept)"
	fi
}
