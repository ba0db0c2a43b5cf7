//go:build chdb

package store

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	chschema "github.com/agentaudit/agentaudit/deploy/clickhouse"
)

// chDB has no cluster, ZooKeeper or Keeper, so the cluster DDL is checked
// in two steps on its current engine (26.x):
//   - parse: every rendered statement, ON CLUSTER, Replicated engine and
//     Distributed table as written, goes through formatQuery;
//   - plan: the same statements projected onto one server (ON CLUSTER
//     dropped, Replicated engines without their ZooKeeper arguments,
//     Distributed replaced by Merge over the local table, which reads the
//     same rows a one-shard Distributed would) are executed, the sharding
//     keys are evaluated on the local tables, and the example events go
//     through the local table, the Distributed names and the views.
var (
	onClusterRE   = regexp.MustCompile(`\s+ON CLUSTER \w+`)
	replicatedRE  = regexp.MustCompile(`Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(, )?`)
	distributedRE = regexp.MustCompile(`ENGINE = Distributed\(\w+, (\w+), (\w+), (.*)\)$`)
	insertRE      = regexp.MustCompile(`^INSERT INTO (\w+)\.(\w+)`)
)

func TestChdbClusterDDL(t *testing.T) {
	s := chdbSession(t)
	const db = "audit_chdb_cluster"
	c := chschema.Cluster{Name: "agentaudit"}
	all, err := chschema.All()
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := chschema.Render(all, db, c)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := chschema.RenderBootstrap(db, c)
	if err != nil {
		t.Fatal(err)
	}
	chdbQuery(t, s, "CREATE DATABASE IF NOT EXISTS "+db)
	var keys []string
	merged := map[string]bool{} // local tables a Merge table stands in front of
	run := func(file string, stmt string, rbac bool) {
		t.Helper()
		chdbQuery(t, s, fmt.Sprintf("SELECT formatQuery('%s')", strings.ReplaceAll(stmt, "'", "\\'")))
		if rbac {
			return // chDB has no writable access storage: parsed only
		}
		one := onClusterRE.ReplaceAllString(stmt, "")
		one = replicatedRE.ReplaceAllString(one, "$1(")
		if m := distributedRE.FindStringSubmatch(one); m != nil {
			keys = append(keys, fmt.Sprintf("SELECT %s FROM %s.%s LIMIT 1", m[3], m[1], m[2]))
			one = distributedRE.ReplaceAllString(one, "ENGINE = Merge($1, '^$2$$')")
			merged[m[2]] = true
		}
		// A backfill through a Distributed name: a one-shard Distributed
		// writes to its local table, and Merge cannot be written to.
		if m := insertRE.FindStringSubmatch(one); m != nil && merged[m[2]+chschema.LocalSuffix] {
			one = insertRE.ReplaceAllString(one, "INSERT INTO ${1}.${2}"+chschema.LocalSuffix)
		}
		if _, err := s.Query(one, "TSV"); err != nil {
			t.Fatalf("%s: %v\nrendered: %s\none server: %s", file, err, stmt, one)
		}
	}
	for _, stmt := range boot {
		run("bootstrap.sql", stmt, false)
	}
	for _, m := range all {
		for _, stmt := range rendered[m.Version] {
			run(m.File, stmt, len(m.Requires) > 0)
		}
	}
	for _, q := range keys {
		chdbQuery(t, s, q)
	}
	rows := mappedExamples(t)
	var body strings.Builder
	for range 2 {
		for i := range rows {
			body.Write(jsonEachRow(t, &rows[i]))
			body.WriteByte('\n')
		}
	}
	chdbQuery(t, s, "INSERT INTO "+db+".events_local ("+strings.Join(eventColumns, ", ")+") FORMAT JSONEachRow\n"+body.String())
	if got := chdbQuery(t, s, "SELECT count() FROM "+db+".events FINAL"); got != strconv.Itoa(len(rows)) {
		t.Errorf("events FINAL through the Distributed name = %s, want %d", got, len(rows))
	}
	for _, v := range []string{"tool_calls", "approvals", "egress", "alerts", "sessions", "execs", "model_calls"} {
		t.Logf("%s: %s rows", v, chdbQuery(t, s, "SELECT count() FROM "+db+"."+v))
	}
	got := chdbQuery(t, s, "SELECT tool_call_id, status FROM "+db+".tool_calls ORDER BY tool_call_id")
	var want []string
	for _, c := range expectedToolCalls(t, rows) {
		want = append(want, c.ToolCallID+"\t"+c.Status)
	}
	if diff := cmp.Diff(strings.Join(want, "\n"), got); diff != "" {
		t.Errorf("tool_calls on the rendered schema (-want +got):\n%s", diff)
	}
}
