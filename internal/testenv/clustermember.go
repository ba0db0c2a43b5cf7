package testenv

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ClusterMembers names every process of the clustered environment, as
// ClusterKill and ClusterStart take them: ZooKeeper, the four ClickHouse
// servers (ch1 and ch2 are shard 1, ch3 and ch4 shard 2) and the three
// Kafka nodes.
var ClusterMembers = []string{"zookeeper", "ch1", "ch2", "ch3", "ch4", "kafka1", "kafka2", "kafka3"}

// clusterPidfile is where testenv/lib/cluster.sh (and zookeeper.sh) keep
// member's PID.
func clusterPidfile(t testing.TB, member string) string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	name := "cluster-" + member + ".pid"
	if member == "zookeeper" {
		name = "zookeeper.pid"
	}
	return filepath.Join(root, ".testenv", "run", name)
}

func checkMember(t testing.TB, member string) {
	t.Helper()
	for _, m := range ClusterMembers {
		if m == member {
			return
		}
	}
	t.Fatalf("testenv: no cluster member %q (want one of %v)", member, ClusterMembers)
}

// ClusterKill SIGKILLs one member of the clustered environment, as a crash
// would, and waits until it is gone; ClusterStart brings it back on the
// same data. It returns the PID it killed. Only the cluster fault cases
// use it: the cluster is theirs while they run.
func ClusterKill(t testing.TB, member string) int {
	t.Helper()
	checkMember(t, member)
	return killPidfile(t, member, clusterPidfile(t, member), ClusterStartCommand)
}

// ClusterStart starts one member of the clustered environment through
// testenv/lib/cluster.sh and waits, up to timeout, until it serves: a
// ClickHouse server answers a query, ZooKeeper reports its mode, a Kafka
// node is back in the brokers' metadata (after recovering its logs).
func ClusterStart(t testing.TB, member string, timeout time.Duration) {
	t.Helper()
	checkMember(t, member)
	var call, ready string
	switch {
	case member == "zookeeper":
		call = "zookeeper_up"
	case strings.HasPrefix(member, "ch"):
		call = fmt.Sprintf("_cl_ch_up %s && _cl_ch_wait %s", member, member)
	default:
		n := strings.TrimPrefix(member, "kafka")
		call = fmt.Sprintf(`_cl_kafka_up %s "$(_kafka_java)"`, n)
		// The node itself must answer and list itself: the others may
		// still list it from before the kill.
		ready = fmt.Sprintf(`kcat -L -b "127.0.0.1:$(_cl_kafka_port %s)" -m 3 2>/dev/null | grep -q "^ *broker %s at "`, n, n)
	}
	started := time.Now()
	out, err := clusterLib(call)
	t.Logf("%s: %s", call, out)
	if err != nil {
		t.Fatalf("start cluster member %s: %v", member, err)
	}
	if ready == "" {
		return
	}
	for deadline := started.Add(timeout); ; time.Sleep(500 * time.Millisecond) {
		if _, err := clusterLib(ready); err == nil {
			t.Logf("%s: serving %s after the start", member, time.Since(started).Round(100*time.Millisecond))
			return
		}
		if !pidfileAlive(clusterPidfile(t, member)) {
			t.Fatalf("cluster member %s exited during its start; see .testenv/logs/cluster-%s/", member, member)
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster member %s not serving %s after its start", member, timeout)
		}
	}
}

// clusterLib runs call with testenv/lib/cluster.sh and the libraries it
// builds on sourced, from the repository root.
func clusterLib(call string) (string, error) {
	return libScript("source testenv/lib/common.sh && source testenv/lib/kafka.sh && source testenv/lib/clickhouse.sh && source testenv/lib/cluster.sh && " + call)
}
