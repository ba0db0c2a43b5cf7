package chschema

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestRenderSingleNodeUnchanged: without a cluster every migration's
// statements are exactly what a single server has always run.
func TestRenderSingleNodeUnchanged(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Render(all, "audit", Cluster{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if diff := cmp.Diff(m.Statements("audit"), got[m.Version]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", m.File, diff)
		}
	}
	b, err := RenderBootstrap("audit", Cluster{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Bootstrap("audit"), b); diff != "" {
		t.Errorf("bootstrap (-want +got):\n%s", diff)
	}
}

// goldenHeader starts each file's section in testdata/cluster.golden.
const goldenHeader = "-- ==== "

// TestRenderClusterGolden renders every migration present for a cluster,
// checks the invariants on all of them, and compares each file's rendering
// with its section of testdata/cluster.golden (go test -update rewrites
// it). A migration without a section yet (one added since) is rendered and
// checked but only reported, so adding a migration never breaks this test;
// one the renderer cannot handle does.
func TestRenderClusterGolden(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	c := Cluster{Name: "agentaudit"}
	got, err := Render(all, "audit", c)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := RenderBootstrap("audit", c)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, all, got)
	sections := map[string]string{}
	var order []string
	add := func(file string, stmts []string) {
		var b strings.Builder
		for _, s := range stmts {
			b.WriteString(s + ";\n\n")
		}
		sections[file] = b.String()
		order = append(order, file)
	}
	add("bootstrap.sql", boot)
	for _, m := range all {
		add(m.File, got[m.Version])
	}
	golden := filepath.Join("testdata", "cluster.golden")
	if *update {
		var b strings.Builder
		for _, f := range order {
			b.WriteString(goldenHeader + f + "\n" + sections[f])
		}
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./deploy/clickhouse/ -run Golden -update)", err)
	}
	want := map[string]string{}
	for _, part := range strings.Split(string(raw), goldenHeader)[1:] {
		file, body, _ := strings.Cut(part, "\n")
		want[file] = body
	}
	for _, f := range order {
		w, ok := want[f]
		if !ok {
			t.Logf("%s has no golden section yet; its rendering passed the checks (go test ./deploy/clickhouse/ -run Golden -update adds it)", f)
			continue
		}
		if diff := cmp.Diff(w, sections[f]); diff != "" {
			t.Errorf("%s: cluster rendering changed (-golden +got); if intended, run go test ./deploy/clickhouse/ -run Golden -update:\n%s", f, diff)
		}
		delete(want, f)
	}
	for f := range want {
		t.Errorf("golden section %s names no migration", f)
	}
}

// checkInvariants holds for every rendered statement, whatever migrations
// exist: all DDL runs ON CLUSTER, no plain MergeTree engine is left, and
// every table a migration creates has its Distributed twin.
func checkInvariants(t *testing.T, all []Migration, got map[int][]string) {
	t.Helper()
	for _, m := range all {
		for _, s := range got[m.Version] {
			up := strings.ToUpper(s)
			if strings.HasPrefix(up, "INSERT") {
				continue
			}
			if !strings.Contains(up, " ON CLUSTER AGENTAUDIT") {
				t.Errorf("%s: statement without ON CLUSTER: %s", m.File, firstLine(s))
			}
			if e := engineRE.FindStringSubmatch(s); e != nil && strings.HasSuffix(e[1], "MergeTree") && !strings.HasPrefix(e[1], "Replicated") {
				t.Errorf("%s: unreplicated engine %s: %s", m.File, e[1], firstLine(s))
			}
		}
	}
}

func TestRenderCases(t *testing.T) {
	c := Cluster{Name: "c1"}
	tests := []struct {
		name string
		sql  string
		want []string
		err  bool
	}{
		{
			name: "table with session shards by session",
			sql:  "CREATE TABLE IF NOT EXISTS {db}.t\n(\n    -- the session\n    session_id String,\n    n UInt64\n)\nENGINE = ReplacingMergeTree()\nORDER BY (session_id, n);",
			want: []string{
				"CREATE TABLE IF NOT EXISTS d.t_local ON CLUSTER c1 (\n    -- the session\n    session_id String,\n    n UInt64\n)\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/t_local', '{replica}')\nORDER BY (session_id, n)",
				"CREATE TABLE IF NOT EXISTS d.t ON CLUSTER c1 AS d.t_local ENGINE = Distributed(c1, d, t_local, sipHash64(session_id))",
			},
		},
		{
			name: "table without session shards by sorting key, engine args kept",
			sql:  "CREATE TABLE {db}.agg (day Date, tenant String, n UInt64) ENGINE = SummingMergeTree((n)) PARTITION BY toYYYYMM(day) ORDER BY (tenant, day)",
			want: []string{
				"CREATE TABLE d.agg_local ON CLUSTER c1 (day Date, tenant String, n UInt64)\nENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/d/agg_local', '{replica}', (n)) PARTITION BY toYYYYMM(day) ORDER BY (tenant, day)",
				"CREATE TABLE d.agg ON CLUSTER c1 AS d.agg_local ENGINE = Distributed(c1, d, agg_local, sipHash64(tenant, day))",
			},
		},
		{
			name: "a table over one system table reads it on every shard",
			sql:  "CREATE TABLE IF NOT EXISTS {db}.shards AS system.one ENGINE = Merge(system, '^one$')",
			want: []string{
				"CREATE TABLE IF NOT EXISTS d.shards ON CLUSTER c1 AS system.one ENGINE = Distributed(c1, system, one, rand())",
			},
		},
		{
			name: "a Merge over other system tables stays one per server",
			sql:  "CREATE TABLE {db}.m AS system.one ENGINE = Merge(system, '^numbers$')",
			want: []string{
				"CREATE TABLE d.m ON CLUSTER c1 AS system.one ENGINE = Merge(system, '^numbers$')",
			},
		},
		{
			name: "bare sorting key",
			sql:  "CREATE TABLE {db}.k (id UInt64) ENGINE = MergeTree ORDER BY id SETTINGS index_granularity = 8192",
			want: []string{
				"CREATE TABLE d.k_local ON CLUSTER c1 (id UInt64)\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/k_local', '{replica}') ORDER BY id SETTINGS index_granularity = 8192",
				"CREATE TABLE d.k ON CLUSTER c1 AS d.k_local ENGINE = Distributed(c1, d, k_local, sipHash64(id))",
			},
		},
		{
			name: "column alters go to the local table and re-create the Distributed one once",
			sql: "CREATE TABLE {db}.t (session_id String) ENGINE = MergeTree() ORDER BY session_id;" +
				"ALTER TABLE {db}.t ADD COLUMN a UInt8 AFTER session_id;" +
				"ALTER TABLE {db}.t ADD COLUMN b UInt8 AFTER a;" +
				"ALTER TABLE {db}.t MATERIALIZE INDEX i",
			want: []string{
				"CREATE TABLE d.t_local ON CLUSTER c1 (session_id String)\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t_local', '{replica}') ORDER BY session_id",
				"CREATE TABLE d.t ON CLUSTER c1 AS d.t_local ENGINE = Distributed(c1, d, t_local, sipHash64(session_id))",
				"ALTER TABLE d.t_local ON CLUSTER c1 ADD COLUMN a UInt8 AFTER session_id",
				"ALTER TABLE d.t_local ON CLUSTER c1 ADD COLUMN b UInt8 AFTER a",
				"ALTER TABLE d.t_local ON CLUSTER c1 MATERIALIZE INDEX i",
				"DROP TABLE IF EXISTS d.t ON CLUSTER c1",
				"CREATE TABLE IF NOT EXISTS d.t ON CLUSTER c1 AS d.t_local ENGINE = Distributed(c1, d, t_local, sipHash64(session_id))",
			},
		},
		{
			name: "views read Distributed names; drops of sharded tables drop both",
			sql: "CREATE TABLE {db}.t (session_id String) ENGINE = MergeTree() ORDER BY session_id;" +
				"DROP TABLE IF EXISTS {db}.v; CREATE VIEW IF NOT EXISTS {db}.v AS SELECT count() FROM {db}.t FINAL;" +
				"DROP TABLE {db}.t",
			want: []string{
				"CREATE TABLE d.t_local ON CLUSTER c1 (session_id String)\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t_local', '{replica}') ORDER BY session_id",
				"CREATE TABLE d.t ON CLUSTER c1 AS d.t_local ENGINE = Distributed(c1, d, t_local, sipHash64(session_id))",
				"DROP TABLE IF EXISTS d.v ON CLUSTER c1",
				"CREATE VIEW IF NOT EXISTS d.v ON CLUSTER c1 AS SELECT count() FROM d.t FINAL",
				"DROP TABLE d.t ON CLUSTER c1",
				"DROP TABLE d.t_local ON CLUSTER c1",
			},
		},
		{
			name: "materialized view TO a sharded target reads and writes local tables",
			sql: "CREATE TABLE {db}.events (session_id String, n UInt64) ENGINE = MergeTree() ORDER BY session_id;" +
				"CREATE TABLE {db}.agg (session_id String, n UInt64) ENGINE = SummingMergeTree() ORDER BY session_id;" +
				"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.agg_mv TO {db}.agg AS SELECT session_id, sum(n) AS n FROM {db}.events GROUP BY session_id;" +
				"INSERT INTO {db}.agg SELECT session_id, sum(n) FROM {db}.events GROUP BY session_id",
			want: []string{
				"CREATE TABLE d.events_local ON CLUSTER c1 (session_id String, n UInt64)\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/events_local', '{replica}') ORDER BY session_id",
				"CREATE TABLE d.events ON CLUSTER c1 AS d.events_local ENGINE = Distributed(c1, d, events_local, sipHash64(session_id))",
				"CREATE TABLE d.agg_local ON CLUSTER c1 (session_id String, n UInt64)\nENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/d/agg_local', '{replica}') ORDER BY session_id",
				"CREATE TABLE d.agg ON CLUSTER c1 AS d.agg_local ENGINE = Distributed(c1, d, agg_local, sipHash64(session_id))",
				"CREATE MATERIALIZED VIEW IF NOT EXISTS d.agg_mv ON CLUSTER c1 TO d.agg_local AS SELECT session_id, sum(n) AS n FROM d.events_local GROUP BY session_id",
				"INSERT INTO d.agg SELECT session_id, sum(n) FROM d.events GROUP BY session_id",
			},
		},
		{
			name: "materialized view with an inner engine",
			sql: "CREATE TABLE {db}.events (session_id String, n UInt64) ENGINE = MergeTree() ORDER BY session_id;" +
				"CREATE MATERIALIZED VIEW {db}.per_day ENGINE = SummingMergeTree() ORDER BY (day) AS SELECT toDate(now()) AS day, count() AS c FROM {db}.events GROUP BY day",
			want: []string{
				"CREATE TABLE d.events_local ON CLUSTER c1 (session_id String, n UInt64)\nENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/events_local', '{replica}') ORDER BY session_id",
				"CREATE TABLE d.events ON CLUSTER c1 AS d.events_local ENGINE = Distributed(c1, d, events_local, sipHash64(session_id))",
				"CREATE MATERIALIZED VIEW d.per_day_local ON CLUSTER c1 ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/d/per_day_local', '{replica}') ORDER BY (day) AS SELECT toDate(now()) AS day, count() AS c FROM d.events_local GROUP BY day",
				"CREATE TABLE d.per_day ON CLUSTER c1 AS d.per_day_local ENGINE = Distributed(c1, d, per_day_local, sipHash64(day))",
			},
		},
		{
			name: "roles and grants",
			sql:  "CREATE ROLE IF NOT EXISTS w; GRANT SELECT ON {db}.* TO w",
			want: []string{"CREATE ROLE IF NOT EXISTS w ON CLUSTER c1", "GRANT ON CLUSTER c1 SELECT ON d.* TO w"},
		},
		{name: "unknown statement fails", sql: "RENAME TABLE {db}.a TO {db}.b", err: true},
		{name: "reserved suffix fails", sql: "CREATE TABLE {db}.x_local (id UInt64) ENGINE = MergeTree() ORDER BY id", err: true},
		{name: "no key fails", sql: "CREATE TABLE {db}.x (id UInt64) ENGINE = MergeTree() ORDER BY tuple()", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{"m/0001_x.sql": {Data: []byte(tt.sql)}}
			ms, err := Load(fsys, "m")
			if err != nil {
				t.Fatal(err)
			}
			got, err := Render(ms, "d", c)
			if tt.err {
				if !errors.Is(err, ErrCluster) {
					t.Fatalf("err = %v; want ErrCluster", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got[1]); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
