package querybench

import "testing"

func TestTopology(t *testing.T) {
	tests := []struct {
		name             string
		topo             topology
		drop, desc       string
		shards, replicas int
	}{
		{
			name:     "one server",
			topo:     topology{addr: "127.0.0.1:9000"},
			drop:     "DROP DATABASE IF EXISTS b",
			desc:     "single server 127.0.0.1:9000",
			shards:   1,
			replicas: 1,
		},
		{
			name:   "cluster",
			topo:   topology{addr: "h:1", cluster: "c", servers: [][]string{{"h:1", "h:2"}, {"h:3", "h:4"}}},
			drop:   "DROP DATABASE IF EXISTS b ON CLUSTER c",
			desc:   "cluster c, 2 shards × 2 replicas (h:1 h:2 | h:3 h:4), reports through the Distributed tables from h:1",
			shards: 2, replicas: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.topo.drop("b"); got != tc.drop {
				t.Errorf("drop = %q, want %q", got, tc.drop)
			}
			if got := tc.topo.String(); got != tc.desc {
				t.Errorf("String = %q, want %q", got, tc.desc)
			}
			if s, r := tc.topo.shards(), tc.topo.replicas(); s != tc.shards || r != tc.replicas {
				t.Errorf("shards, replicas = %d, %d, want %d, %d", s, r, tc.shards, tc.replicas)
			}
		})
	}
}
