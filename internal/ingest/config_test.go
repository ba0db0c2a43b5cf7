package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/eventlog"
)

func TestConfigValidate(t *testing.T) {
	ok := func() Config {
		return Config{Brokers: []string{"127.0.0.1:9092"}, ClickHouseAddr: "127.0.0.1:9000"}
	}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "Brokers (-brokers)"},
		{"broker not host:port", func(c *Config) { c.Brokers = []string{"kafka"} }, "Brokers (-brokers)"},
		{"no clickhouse", func(c *Config) { c.ClickHouseAddr = "" }, "ClickHouseAddr (-clickhouse-addr)"},
		{"negative batch rows", func(c *Config) { c.BatchRows = -1 }, "BatchRows (-batch-rows)"},
		{"tiny batch wait", func(c *Config) { c.BatchWait = time.Microsecond }, "BatchWait (-batch-wait)"},
		{"too many workers", func(c *Config) { c.Workers = 1000 }, "Workers (-workers)"},
		{"dlq consumed", func(c *Config) {
			c.Topics = eventlog.Topics{Events: "a", Approvals: "b", DLQ: "a"}
		}, "Topics.DLQ (-topic-dlq)"},
		{"empty approvals topic", func(c *Config) { c.Topics = eventlog.Topics{Events: "a", DLQ: "c"} }, "Topics.Approvals (-topic-approvals)"},
		{"metrics on all interfaces", func(c *Config) { c.MetricsAddr = "0.0.0.0:9464" }, "MetricsAddr (-metrics-addr)"},
		{"metrics on a public address", func(c *Config) { c.MetricsAddr = "192.0.2.1:9464" }, "MetricsAddr (-metrics-addr)"},
		{"metrics off", func(c *Config) { c.MetricsAddr = "off" }, ""},
		{"retry max below min", func(c *Config) { c.RetryMin, c.RetryMax = time.Second, time.Millisecond }, "RetryMax (-retry-max)"},
		{"instance id", func(c *Config) { c.InstanceID = "ingest-0.eu_1" }, ""},
		{"instance id with a space", func(c *Config) { c.InstanceID = "ingest 0" }, "InstanceID (-instance-id)"},
		{"instance id too long", func(c *Config) { c.InstanceID = strings.Repeat("i", 250) }, "InstanceID (-instance-id)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Validate = %v, want ErrConfig naming %s", err, tc.field)
			}
		})
	}
	c := ok()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	got := []any{c.Group, c.Topics, c.Database, c.BatchRows, c.BatchWait, c.MetricsAddr, c.ChainGrace}
	want := []any{DefaultGroup, eventlog.DefaultTopics, DefaultDatabase, DefaultBatchRows, DefaultBatchWait, DefaultMetricsAddr, DefaultChainGrace}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}
