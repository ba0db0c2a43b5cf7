package testenv

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/testenv/envfile"
)

// ClusterStartCommand starts the clustered environment (ZooKeeper, four
// ClickHouse servers, three Kafka nodes) and writes .testenv/cluster.env.
const ClusterStartCommand = "testenv/up --cluster"

// ClusterEnv is the clustered environment's addresses.
type ClusterEnv struct {
	// ClickHouse lists the native addresses of every server, shard by
	// shard: [shard1 replica1, shard1 replica2, shard2 replica1, …].
	ClickHouse []string
	// Name is the cluster's name in remote_servers (CLICKHOUSE_CLUSTER).
	Name     string
	Shards   int
	Replicas int
	Kafka    []string
	// ZooKeeper is host:port.
	ZooKeeper string
}

// Cluster returns the clustered environment after checking that every
// server and broker accepts connections. It fails the test, naming
// ClusterStartCommand, when the cluster is not running: a test that asks
// for the cluster never skips.
func Cluster(t testing.TB) ClusterEnv {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, ".testenv", "cluster.env")
	env, err := envfile.Load(path)
	if err != nil {
		t.Fatalf("the cluster is not running: %v; start it with %s", err, ClusterStartCommand)
	}
	get := func(name string) string {
		v := env[name]
		if v == "" {
			t.Fatalf("%s is not set in %s; start the cluster with %s", name, path, ClusterStartCommand)
		}
		return v
	}
	c := ClusterEnv{
		ClickHouse: strings.Split(get("CLUSTER_CLICKHOUSE_ADDRS"), ","),
		Name:       get("CLUSTER_CLICKHOUSE_NAME"),
		Kafka:      strings.Split(get("CLUSTER_KAFKA_BROKERS"), ","),
		ZooKeeper:  get("CLUSTER_ZOOKEEPER"),
	}
	fmt.Sscan(get("CLUSTER_CLICKHOUSE_SHARDS"), &c.Shards)
	fmt.Sscan(get("CLUSTER_CLICKHOUSE_REPLICAS"), &c.Replicas)
	if c.Shards*c.Replicas != len(c.ClickHouse) {
		t.Fatalf("%s: %d shards x %d replicas but %d servers", path, c.Shards, c.Replicas, len(c.ClickHouse))
	}
	for _, a := range append(append(append([]string{}, c.ClickHouse...), c.Kafka...), c.ZooKeeper) {
		conn, err := net.DialTimeout("tcp", a, 3*time.Second)
		if err != nil {
			t.Fatalf("cluster server %s is not reachable: %v; start the cluster with %s", a, err, ClusterStartCommand)
		}
		conn.Close()
	}
	return c
}
