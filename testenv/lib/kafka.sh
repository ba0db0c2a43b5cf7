# Kafka for testenv: the Apache Kafka broker (version pinned in
# testenv/kafka/pom.xml) from Maven Central jars, one node in KRaft combined
# mode on 127.0.0.1:9092 (controller on 127.0.0.1:9093), state under
# $TE/kafka. Sourced after common.sh; defines kafka_up, kafka_status,
# kafka_down and kafka_env.

source "$TESTENV_DIR/lib/maven.sh"

KAFKA_SRC="$TESTENV_DIR/kafka"
KAFKA_STATE="$TE/kafka"
KAFKA_LIBS="$KAFKA_STATE/libs"
KAFKA_DATA="$KAFKA_STATE/data"
KAFKA_CONFIG="$KAFKA_STATE/server.properties"
KAFKA_PIDFILE="$RUNDIR/kafka.pid"
KAFKA_LOG="$LOGDIR/kafka.log"
KAFKA_STDOUT="$LOGDIR/kafka.stdout.log"
KAFKA_BROKER=127.0.0.1:9092
KAFKA_CONTROLLER_PORT=9093
KAFKA_VERSION="$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$KAFKA_SRC/pom.xml")"

# _kafka_java prints a java (17 or newer: Kafka 4 brokers need it) or fails.
_kafka_java() {
	local j v
	for j in "${KAFKA_JAVA:-}" java /usr/lib/jvm/temurin-25-jdk-amd64/bin/java; do
		[[ -n "$j" ]] && command -v "$j" >/dev/null || continue
		v="$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
		if [[ "$v" =~ ^[0-9]+$ ]] && (( v >= 17 )); then
			echo "$j"
			return 0
		fi
	done
	return 1
}

# _kafka_libs copies the broker's runtime jars with Maven when the pom
# changed since the last copy (maven_libs in maven.sh).
# Returns 0 when the jars changed, 1 when they were up to date.
_kafka_libs() {
	maven_libs kafka "$KAFKA_SRC/pom.xml" "$KAFKA_LIBS" "kafka_2.13-$KAFKA_VERSION.jar"
}

# _kafka_render writes server.properties with the absolute data folder.
# Returns 0 when the file changed, 1 when it was up to date.
_kafka_render() {
	local tmp
	tmp="$(mktemp "$KAFKA_STATE/.render.XXXXXX")"
	sed -e "s|@DATA@|$KAFKA_DATA|g" "$KAFKA_SRC/server.properties" >"$tmp"
	if cmp -s "$tmp" "$KAFKA_CONFIG"; then
		rm -f "$tmp"
		return 1
	fi
	mv "$tmp" "$KAFKA_CONFIG"
	return 0
}

# _kafka_format formats the log folder once, with a cluster id kept in
# $KAFKA_STATE/cluster.id so a purge and re-format keep the same identity.
_kafka_format() {
	[[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
	local java="$1" log="$LOGDIR/kafka-format.log" id
	if [[ ! -s "$KAFKA_STATE/cluster.id" ]]; then
		"$java" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid >"$KAFKA_STATE/cluster.id.tmp" 2>"$log" \
			|| fail "StorageTool random-uuid" "$log"
		mv "$KAFKA_STATE/cluster.id.tmp" "$KAFKA_STATE/cluster.id"
	fi
	id="$(tail -n 1 "$KAFKA_STATE/cluster.id")"
	step "formatting Kafka storage (cluster id $id)"
	mkdir -p "$KAFKA_DATA"
	"$java" -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.yaml" -Dkafka.logs.dir="$LOGDIR" \
		-cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format --standalone \
		-t "$id" -c "$KAFKA_CONFIG" >>"$log" 2>&1 \
		|| fail "StorageTool format" "$log"
}

# _kafka_ready: true when the broker answers a metadata request listing itself.
_kafka_ready() {
	kcat -L -b "$KAFKA_BROKER" -m 3 2>/dev/null | grep -q '^ *broker 1 at 127.0.0.1:9092'
}

kafka_up() {
	command -v kcat >/dev/null || apt_install kcat
	local java
	java="$(_kafka_java)" || fail "no Java 17 or newer found (Kafka $KAFKA_VERSION brokers need it); set KAFKA_JAVA"
	mkdir -p "$KAFKA_STATE"
	local changed=0
	_kafka_libs && changed=1
	_kafka_render && changed=1

	if pid_alive "$KAFKA_PIDFILE"; then
		if (( changed )); then
			note "kafka: jars or server.properties changed, restarting"
			stop_pidfile kafka "$KAFKA_PIDFILE" 30
		elif _kafka_ready; then
			note "kafka: already running (pid $(cat "$KAFKA_PIDFILE"))"
			return 0
		else
			# Possibly still starting (another up, or a restart): give it a while
			# before deciding it is wedged.
			local deadline=$(( $(date +%s) + 30 ))
			until _kafka_ready || (( $(date +%s) >= deadline )); do sleep 0.5; done
			if _kafka_ready; then
				note "kafka: running (pid $(cat "$KAFKA_PIDFILE"))"
				return 0
			fi
			note "kafka: pid $(cat "$KAFKA_PIDFILE") alive but not answering; restarting"
			stop_pidfile kafka "$KAFKA_PIDFILE" 30
		fi
	fi
	rm -f "$KAFKA_PIDFILE"
	if port_open 9092 || port_open "$KAFKA_CONTROLLER_PORT"; then
		fail "ports 9092/$KAFKA_CONTROLLER_PORT are taken by a process testenv did not start"
	fi

	_kafka_format "$java"
	step "starting Kafka $KAFKA_VERSION (KRaft, broker+controller) on $KAFKA_BROKER"
	(
		cd "$KAFKA_STATE"
		exec setsid nohup "$java" -Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
			-Djava.awt.headless=true \
			-Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.yaml" -Dkafka.logs.dir="$LOGDIR" \
			-cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG" </dev/null >>"$KAFKA_STDOUT" 2>&1
	) &
	# setsid and nohup exec, so $! is the JVM.
	echo $! >"$KAFKA_PIDFILE"
	local deadline=$(( $(date +%s) + 90 ))
	until _kafka_ready; do
		if ! pid_alive "$KAFKA_PIDFILE"; then
			rm -f "$KAFKA_PIDFILE"
			tail -n 5 "$KAFKA_STDOUT" >&2 || true
			fail "Kafka exited during start" "$KAFKA_LOG"
		fi
		if (( $(date +%s) >= deadline )); then
			fail "Kafka did not answer a metadata request within 90s" "$KAFKA_LOG"
		fi
		sleep 0.5
	done
	note "kafka: ready (pid $(cat "$KAFKA_PIDFILE"))"
}

kafka_status() {
	if ! pid_alive "$KAFKA_PIDFILE"; then
		printf '%-12s %-48s %s\n' kafka "$KAFKA_BROKER" "unhealthy (not running: no live pid in $KAFKA_PIDFILE)"
		return 1
	fi
	local pid
	pid="$(cat "$KAFKA_PIDFILE")"
	if ! _kafka_ready; then
		printf '%-12s %-48s %s\n' kafka "$KAFKA_BROKER" "unhealthy (pid $pid; metadata request failed)"
		return 1
	fi
	printf '%-12s %-48s %s\n' kafka "$KAFKA_BROKER" "healthy (pid $pid, Kafka $KAFKA_VERSION KRaft)"
}

kafka_down() {
	local purge="${1:-0}"
	# A clean shutdown lets the next start skip log recovery.
	stop_pidfile kafka "$KAFKA_PIDFILE" 30
	if (( purge )); then
		rm -rf "$KAFKA_DATA"
		note "kafka: removed $KAFKA_DATA (jars kept)"
	fi
}

kafka_env() {
	echo "export KAFKA_BROKERS=$KAFKA_BROKER"
}
