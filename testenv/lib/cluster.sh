# The clustered test environment, started only on demand (testenv/up
# --cluster): ZooKeeper (zookeeper.sh), ClickHouse 18.16 as 2 shards x 2
# replicas and Kafka as 3 combined broker+controller nodes, all on
# 127.0.0.1 ports apart from the single-node services', state under
# $TE/cluster, logs in $LOGDIR as cluster-*. Writes $TE/cluster.env.
# Sourced after common.sh, kafka.sh and clickhouse.sh (it reuses their jar
# folder, Java finder and dev passwords); defines cluster_up,
# cluster_status, cluster_down and cluster_env.

source "$TESTENV_DIR/lib/zookeeper.sh"

CLUSTER_SRC="$TESTENV_DIR/cluster"
CLUSTER_STATE="$TE/cluster"
CLUSTER_ENV="$TE/cluster.env"
# The ClickHouse cluster's name in remote_servers, and CLICKHOUSE_CLUSTER.
CLUSTER_NAME=agentaudit
# chN: native 1900N, HTTP 1812N, interserver 1901N; ch1, ch2 are shard 1.
CLUSTER_CH_NODES=(ch1 ch2 ch3 ch4)
# kafkaN: broker 2909(N+1), controller 2919(N+1).
CLUSTER_KAFKA_NODES=(1 2 3)

_cl_ch_port() { echo $(( 19000 + ${1#ch} )); }
_cl_ch_http() { echo $(( 18120 + ${1#ch} )); }
_cl_ch_inter() { echo $(( 19010 + ${1#ch} )); }
_cl_ch_shard() { echo $(( (${1#ch} + 1) / 2 )); }
_cl_kafka_port() { echo $(( 29091 + $1 )); }
_cl_kafka_cport() { echo $(( 29191 + $1 )); }

_cl_ch_addrs() {
	local n out=()
	for n in "${CLUSTER_CH_NODES[@]}"; do out+=("127.0.0.1:$(_cl_ch_port "$n")"); done
	(IFS=,; echo "${out[*]}")
}
_cl_kafka_addrs() {
	local n out=()
	for n in "${CLUSTER_KAFKA_NODES[@]}"; do out+=("127.0.0.1:$(_cl_kafka_port "$n")"); done
	(IFS=,; echo "${out[*]}")
}

# _cl_install TMP DEST: moves TMP over DEST unless equal; returns 0 when changed.
_cl_install() {
	if cmp -s "$1" "$2"; then rm -f "$1"; return 1; fi
	mv "$1" "$2"
}

_cl_ch_client() { clickhouse-client --host 127.0.0.1 --port "$(_cl_ch_port "$1")" --user default "${@:2}"; }
_cl_ch_ready() { _cl_ch_client "$1" --query 'SELECT 1' >/dev/null 2>&1; }

# _cl_ch_up NODE: renders NODE's config and starts it unless it runs.
_cl_ch_up() {
	local n="$1" dir="$CLUSTER_STATE/$1" changed=0 tmp
	local pidfile="$RUNDIR/cluster-$n.pid"
	mkdir -p "$dir"/{data,tmp,user_files,format_schemas}
	tmp="$(mktemp "$dir/.render.XXXXXX")"
	sed -e "s|@STATE@|$dir|g" -e "s|@LOGDIR@|$LOGDIR|g" -e "s|@NODE@|$n|g" \
		-e "s|@TCP_PORT@|$(_cl_ch_port "$n")|g" -e "s|@HTTP_PORT@|$(_cl_ch_http "$n")|g" \
		-e "s|@INTERSERVER_PORT@|$(_cl_ch_inter "$n")|g" -e "s|@SHARD@|$(_cl_ch_shard "$n")|g" \
		-e "s|@ZK_PORT@|$ZK_PORT|g" "$CLUSTER_SRC/clickhouse.xml" >"$tmp"
	_cl_install "$tmp" "$dir/config.xml" && changed=1
	# The same users, profiles and dev passwords as the single node, plus
	# distributed_product_mode=local in every profile: an IN or JOIN
	# subquery on a Distributed table inside a query on one (query verify's
	# "sessions with events in the period") reads the shard's local table.
	# Right here because tables are sharded by session: a shard's sessions
	# are exactly those of its local rows. And load_balancing=in_order:
	# Distributed inserts and reads both go to a shard's first healthy
	# replica, so an ingester reads back what it just wrote while replicas
	# lag (with random, its chain look-ups saw stale replicas: false gaps).
	local wsha rsha
	wsha="$(printf '%s' "$CH_WRITER_PASSWORD" | sha256sum | cut -d' ' -f1)"
	rsha="$(printf '%s' "$CH_READER_PASSWORD" | sha256sum | cut -d' ' -f1)"
	tmp="$(mktemp "$dir/.render.XXXXXX")"
	sed -e "s|@WRITER_SHA256@|$wsha|g" -e "s|@READER_SHA256@|$rsha|g" \
		-e 's|^\( *\)<max_memory_usage>.*</max_memory_usage>|&\n\1<distributed_product_mode>local</distributed_product_mode>|' \
		-e 's|<load_balancing>random</load_balancing>|<load_balancing>in_order</load_balancing>|' \
		"$TESTENV_DIR/clickhouse/users.xml" >"$tmp"
	_cl_install "$tmp" "$dir/users.xml" || true

	if pid_alive "$pidfile"; then
		if (( changed == 0 )) && _cl_ch_ready "$n"; then
			note "$n: already running (pid $(cat "$pidfile"))"
			return 0
		fi
		stop_pidfile "$n" "$pidfile" 30
	fi
	rm -f "$pidfile"
	local p
	for p in "$(_cl_ch_port "$n")" "$(_cl_ch_http "$n")" "$(_cl_ch_inter "$n")"; do
		port_open "$p" && fail "port $p for $n is taken by a process testenv did not start"
	done
	step "starting clickhouse-server $n (shard $(_cl_ch_shard "$n")) on 127.0.0.1:$(_cl_ch_port "$n")"
	(
		cd "$dir"
		exec setsid nohup clickhouse-server --config-file="$dir/config.xml" \
			--pid-file="$pidfile" </dev/null >>"$LOGDIR/cluster-$n-server.stdout.log" 2>&1
	) &
	echo $! >"$dir/launcher.pid"
}

# _cl_ch_wait NODE: waits for NODE to answer, records its PID.
_cl_ch_wait() {
	local n="$1" pidfile="$RUNDIR/cluster-$1.pid" launcher
	launcher="$(cat "$CLUSTER_STATE/$n/launcher.pid" 2>/dev/null || true)"
	local deadline=$(( $(date +%s) + 90 ))
	until _cl_ch_ready "$n"; do
		if [[ -n "$launcher" ]] && ! kill -0 "$launcher" 2>/dev/null && ! pid_alive "$pidfile"; then
			fail "clickhouse-server $n exited during start" "$LOGDIR/cluster-$n-server.err.log"
		fi
		(( $(date +%s) < deadline )) || fail "clickhouse-server $n did not answer within 90s" "$LOGDIR/cluster-$n-server.err.log"
		sleep 0.3
	done
	[[ -s "$pidfile" ]] || echo "$launcher" >"$pidfile"
	rm -f "$CLUSTER_STATE/$n/launcher.pid"
}

# _cl_kafka_up NODE JAVA: renders, formats once and starts Kafka node NODE.
_cl_kafka_up() {
	local n="$1" java="$2" dir="$CLUSTER_STATE/kafka$1" changed=0 tmp
	local pidfile="$RUNDIR/cluster-kafka$n.pid" logs="$LOGDIR/cluster-kafka$n"
	mkdir -p "$dir" "$logs"
	tmp="$(mktemp "$dir/.render.XXXXXX")"
	sed -e "s|@NODE@|$n|g" -e "s|@PORT@|$(_cl_kafka_port "$n")|g" \
		-e "s|@CONTROLLER_PORT@|$(_cl_kafka_cport "$n")|g" -e "s|@DATA@|$dir/data|g" \
		"$CLUSTER_SRC/kafka.properties" >"$tmp"
	_cl_install "$tmp" "$dir/server.properties" && changed=1
	if pid_alive "$pidfile"; then
		if (( changed == 0 )); then
			note "kafka$n: already running (pid $(cat "$pidfile"))"
			return 0
		fi
		stop_pidfile "kafka$n" "$pidfile" 30
	fi
	rm -f "$pidfile"
	local p
	for p in "$(_cl_kafka_port "$n")" "$(_cl_kafka_cport "$n")"; do
		port_open "$p" && fail "port $p for kafka$n is taken by a process testenv did not start"
	done
	if [[ ! -f "$dir/data/meta.properties" ]]; then
		# One cluster id for the three nodes, kept across purges.
		if [[ ! -s "$CLUSTER_STATE/kafka.cluster.id" ]]; then
			"$java" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$logs/format.log" | tail -n 1 >"$CLUSTER_STATE/kafka.cluster.id.tmp" \
				|| fail "StorageTool random-uuid" "$logs/format.log"
			mv "$CLUSTER_STATE/kafka.cluster.id.tmp" "$CLUSTER_STATE/kafka.cluster.id"
		fi
		mkdir -p "$dir/data"
		"$java" -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.yaml" -Dkafka.logs.dir="$logs" \
			-cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
			-t "$(cat "$CLUSTER_STATE/kafka.cluster.id")" -c "$dir/server.properties" >>"$logs/format.log" 2>&1 \
			|| fail "StorageTool format for kafka$n" "$logs/format.log"
	fi
	step "starting Kafka node $n (broker+controller) on 127.0.0.1:$(_cl_kafka_port "$n")"
	(
		cd "$dir"
		exec setsid nohup "$java" -Xms128m -Xmx384m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
			-XX:MaxDirectMemorySize=128m -Djava.awt.headless=true \
			-Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.yaml" -Dkafka.logs.dir="$logs" \
			-cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" </dev/null >>"$logs/stdout.log" 2>&1
	) &
	echo $! >"$pidfile"
}

# _cl_kafka_ready: true when a metadata request lists all three brokers.
# Ready when every broker's own metadata lists all three: asked through
# the bootstrap list, one broker may answer for all while another's view
# still lacks itself (testenv/status then calls that one unhealthy).
_cl_kafka_ready() {
	local n
	for n in "${CLUSTER_KAFKA_NODES[@]}"; do
		[[ "$(kcat -L -b "127.0.0.1:$(_cl_kafka_port "$n")" -m 3 2>/dev/null | grep -c '^ *broker [0-9]* at 127.0.0.1:2909')" == 3 ]] || return 1
	done
}

cluster_up() {
	local t0 java
	t0=$(date +%s)
	java="$(_kafka_java)" || fail "no Java 17 or newer found; set KAFKA_JAVA"
	command -v clickhouse-server >/dev/null || apt_install clickhouse-server clickhouse-client
	command -v kcat >/dev/null || apt_install kcat
	_kafka_libs || true
	mkdir -p "$CLUSTER_STATE"
	zookeeper_up
	local n
	# Start everything, then wait: the JVMs and servers start in parallel.
	for n in "${CLUSTER_KAFKA_NODES[@]}"; do _cl_kafka_up "$n" "$java"; done
	for n in "${CLUSTER_CH_NODES[@]}"; do _cl_ch_up "$n"; done
	for n in "${CLUSTER_CH_NODES[@]}"; do _cl_ch_wait "$n"; done
	note "clickhouse cluster: 4 servers answer"
	local deadline=$(( $(date +%s) + 120 ))
	until _cl_kafka_ready; do
		for n in "${CLUSTER_KAFKA_NODES[@]}"; do
			pid_alive "$RUNDIR/cluster-kafka$n.pid" \
				|| fail "Kafka node $n exited during start" "$LOGDIR/cluster-kafka$n/kafka.log"
		done
		(( $(date +%s) < deadline )) || fail "the 3 Kafka brokers did not all register within 120s" "$LOGDIR/cluster-kafka1/kafka.log"
		sleep 0.5
	done
	note "kafka cluster: 3 brokers registered"
	# The cluster as every server sees it, and ON CLUSTER DDL through ZooKeeper.
	_cl_ch_client ch1 --query "CREATE DATABASE IF NOT EXISTS $CH_DATABASE ON CLUSTER $CLUSTER_NAME" >/dev/null \
		|| fail "CREATE DATABASE $CH_DATABASE ON CLUSTER $CLUSTER_NAME" "$LOGDIR/cluster-ch1-server.err.log"
	cluster_env >"$CLUSTER_ENV.tmp"
	mv "$CLUSTER_ENV.tmp" "$CLUSTER_ENV"
	step "cluster ready in $(( $(date +%s) - t0 ))s; environment in $CLUSTER_ENV"
}

cluster_status() {
	local rc=0 n pidfile addr
	zookeeper_status || rc=1
	for n in "${CLUSTER_CH_NODES[@]}"; do
		pidfile="$RUNDIR/cluster-$n.pid" addr="127.0.0.1:$(_cl_ch_port "$n")"
		if ! pid_alive "$pidfile"; then
			printf '%-12s %-48s %s\n' "cluster-$n" "$addr" "unhealthy (not running: no live pid in $pidfile)"; rc=1; continue
		fi
		local v
		if ! v="$(_cl_ch_client "$n" --query "SELECT concat(version(), ' shard ', (SELECT substitution FROM system.macros WHERE macro = 'shard'), ' replica ', (SELECT substitution FROM system.macros WHERE macro = 'replica'))" 2>&1)"; then
			printf '%-12s %-48s %s\n' "cluster-$n" "$addr" "unhealthy (pid $(cat "$pidfile"); $(echo "$v" | head -1 | cut -c1-60))"; rc=1; continue
		fi
		printf '%-12s %-48s %s\n' "cluster-$n" "$addr" "healthy (pid $(cat "$pidfile"), ClickHouse $v)"
	done
	for n in "${CLUSTER_KAFKA_NODES[@]}"; do
		pidfile="$RUNDIR/cluster-kafka$n.pid" addr="127.0.0.1:$(_cl_kafka_port "$n")"
		if ! pid_alive "$pidfile"; then
			printf '%-12s %-48s %s\n' "cluster-k$n" "$addr" "unhealthy (not running: no live pid in $pidfile)"; rc=1; continue
		fi
		if ! kcat -L -b "$addr" -m 3 2>/dev/null | grep -q "^ *broker $n at $addr"; then
			printf '%-12s %-48s %s\n' "cluster-k$n" "$addr" "unhealthy (pid $(cat "$pidfile"); not in metadata)"; rc=1; continue
		fi
		printf '%-12s %-48s %s\n' "cluster-k$n" "$addr" "healthy (pid $(cat "$pidfile"), Kafka $KAFKA_VERSION broker+controller)"
	done
	return $rc
}

cluster_down() {
	local purge="${1:-0}" n
	step "stopping the cluster"
	for n in "${CLUSTER_KAFKA_NODES[@]}"; do stop_pidfile "kafka$n" "$RUNDIR/cluster-kafka$n.pid" 30 & done
	for n in "${CLUSTER_CH_NODES[@]}"; do stop_pidfile "$n" "$RUNDIR/cluster-$n.pid" 30 & done
	wait
	zookeeper_down "$purge"
	rm -f "$CLUSTER_ENV"
	if (( purge )); then
		rm -rf "$CLUSTER_STATE"
		note "cluster: removed $CLUSTER_STATE"
	fi
}

# cluster_env prints .testenv/cluster.env. Names differ from .testenv/env's
# so sourcing both never points a single-node tool at the cluster by accident.
cluster_env() {
	cat <<EOF
# written by testenv/up --cluster; source it: . .testenv/cluster.env
export CLUSTER_KAFKA_BROKERS=$(_cl_kafka_addrs)
export CLUSTER_CLICKHOUSE_ADDRS=$(_cl_ch_addrs)
export CLUSTER_CLICKHOUSE_NAME=$CLUSTER_NAME
export CLUSTER_CLICKHOUSE_SHARDS=2
export CLUSTER_CLICKHOUSE_REPLICAS=2
export CLUSTER_ZOOKEEPER=$ZK_ADDR
EOF
}

# cluster_main up | status | down [--purge]: what testenv/up --cluster,
# testenv/status --cluster and testenv/down --cluster [--purge] run.
cluster_main() {
	case "${1:-}" in
	up)
		step "testenv/up --cluster: state in $CLUSTER_STATE, logs in $LOGDIR (cluster-*, zookeeper.log)"
		cluster_up
		printf '%-12s %-48s %s\n' SERVICE ADDRESS HEALTH
		cluster_status
		;;
	status)
		printf '%-12s %-48s %s\n' SERVICE ADDRESS HEALTH
		cluster_status
		;;
	down)
		cluster_down "${2:-0}"
		step "cluster down"
		;;
	esac
}

# cluster_started: true when a cluster server's PID file exists, so plain
# testenv/status and testenv/down report and stop a running cluster too.
cluster_started() {
	compgen -G "$RUNDIR/cluster-*.pid" >/dev/null || [[ -e "$ZK_PIDFILE" ]]
}
