package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
)

// clusterSettings go with every statement of a store on a cluster.
//
// insert_distributed_sync: an INSERT into a Distributed table returns
// only once every shard it routes rows to has written them. Asynchronous
// (the default) it returns once the rows are queued on the server's own
// disk, and the ingester would commit Kafka offsets for rows no shard
// holds yet: if that server is lost, so are they, and a query right after
// the insert does not see them.
var clusterSettings = clickhouse.Settings{"insert_distributed_sync": 1}

// alterLocalRE matches a rendered ALTER of a Replicated local table.
var alterLocalRE = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+(\S+` + chschema.LocalSuffix + `)\s+ON\s+CLUSTER\s+\S+\s+(.*)$`)

// perShard reports whether stmt is an ALTER of a Replicated local table,
// and returns it without ON CLUSTER.
//
// Such an ALTER runs on one replica of each shard, which replicates it to
// the others through ZooKeeper. ON CLUSTER does the same through each
// server's DDL worker, but on 18.16 two replicas of a shard can both run
// it: the second fails (column exists), its worker stops on the
// "Node exists" that follows, and every later ON CLUSTER statement waits
// for that server until it restarts (measured here). Sending the ALTER to
// one replica per shard ourselves avoids the worker altogether.
func perShard(stmt string) (string, bool) {
	m := alterLocalRE.FindStringSubmatch(strings.TrimSpace(stmt))
	if m == nil {
		return "", false
	}
	return "ALTER TABLE " + m[1] + " " + m[2], true
}

// ClusterShards lists the cluster's servers (host:port), shard by shard,
// replicas in order, from system.clusters on the server the store is
// connected to.
func (s *Store) ClusterShards(ctx context.Context) ([][]string, error) {
	out, err := ClusterServers(ctx, s.conn, s.cfg.Cluster)
	if err != nil {
		return nil, fmt.Errorf("store: cluster %s: %w", s.cfg.Cluster, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: cluster %q is not in system.clusters of %s", ErrConfig, s.cfg.Cluster, s.cfg.Addr)
	}
	return out, nil
}

// ClusterServers lists cluster's servers (host:port) as the server conn
// is connected to knows them in system.clusters: shard by shard, replicas
// in order; none when it does not know the cluster.
func ClusterServers(ctx context.Context, conn driver.Conn, cluster string) ([][]string, error) {
	rows, err := conn.Query(ctx, "SELECT shard_num, host_name, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", cluster)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	last := uint32(0)
	for rows.Next() {
		var shard uint32
		var host string
		var port uint16
		if err := rows.Scan(&shard, &host, &port); err != nil {
			return nil, err
		}
		if shard != last {
			out = append(out, nil)
			last = shard
		}
		out[len(out)-1] = append(out[len(out)-1], net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	return out, rows.Err()
}

// execPerShard runs stmt on the first replica of every shard that accepts
// a connection. done reports a server error that means the statement had
// already taken effect on that shard (a rerun); other errors stop it.
func (s *Store) execPerShard(ctx context.Context, stmt string, done func(error) bool) error {
	shards, err := s.ClusterShards(ctx)
	if err != nil {
		return err
	}
	for i, replicas := range shards {
		var errs []error
		ok := false
		for _, addr := range replicas {
			c, err := Dial(ctx, addr, WithAuth(s.cfg.User, s.cfg.Password),
				WithTimeouts(s.cfg.DialTimeout, s.cfg.ReadTimeout), WithMaxConns(1), WithLogger(s.log))
			if err != nil {
				errs = append(errs, err) // this replica is down: try the next
				continue
			}
			err = c.Exec(ctx, stmt)
			c.Close()
			if err != nil && done(err) {
				s.log.Info("statement had taken effect on this shard already (a rerun)", "shard", i+1, "addr", addr)
				err = nil
			}
			if err == nil {
				ok = true
				break
			}
			if _, server := ErrorCode(err); server {
				return fmt.Errorf("shard %d (%s): %w", i+1, addr, err)
			}
			errs = append(errs, err)
		}
		if !ok {
			return fmt.Errorf("shard %d: no replica took the statement: %w", i+1, errors.Join(errs...))
		}
	}
	return nil
}
