package main

import (
	"flag"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentaudit/agentaudit/internal/detect"
	"github.com/agentaudit/agentaudit/internal/envflag"
)

// Without KAFKA_BROKERS or --brokers, detect refuses to start instead of
// quietly trying 127.0.0.1:9092.
func TestBrokersAreRequired(t *testing.T) {
	cases := []struct {
		name, env string
		args      []string
		want      []string
		ok        bool
	}{
		{"neither", "", nil, nil, false},
		{"flag", "", []string{"--brokers", "127.0.0.1:9092,127.0.0.1:9093"}, []string{"127.0.0.1:9092", "127.0.0.1:9093"}, true},
		{"environment", "127.0.0.1:19092", nil, []string{"127.0.0.1:19092"}, true},
		{"flag beats environment", "127.0.0.1:19092", []string{"--brokers", "127.0.0.1:9092"}, []string{"127.0.0.1:9092"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KAFKA_BROKERS", tc.env)
			var b []string
			fs := envflag.New("t", flag.ContinueOnError)
			brokersFlag(fs, &b)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, b); d != "" {
				t.Errorf("brokers (-want +got)\n%s", d)
			}
			if err := needBrokers(b); (err == nil) != tc.ok {
				t.Errorf("needBrokers(%q) = %v", b, err)
			}
		})
	}
}

// The topics `detect run` creates: flags beat the environment, the
// replication factor defaults to the brokers' own (-1), and a value the
// Kafka protocol cannot carry is refused.
func TestTopicFlags(t *testing.T) {
	type topics struct {
		Partitions, Repartition int32
		Replication             int16
	}
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want topics
		err  bool
	}{
		{"defaults", nil, nil, topics{6, 6, -1}, false},
		{"flags", nil, []string{"--topic-partitions", "12", "--repartition-partitions", "3", "--topic-replication", "3"}, topics{12, 3, 3}, false},
		{"environment", map[string]string{"DETECT_TOPIC_PARTITIONS": "24", "DETECT_REPARTITION_PARTITIONS": "8", "DETECT_TOPIC_REPLICATION": "2"}, nil, topics{24, 8, 2}, false},
		{"flag beats environment", map[string]string{"DETECT_TOPIC_REPLICATION": "2"}, []string{"--topic-replication", "3"}, topics{6, 6, 3}, false},
		{"broker default asked for", map[string]string{"DETECT_TOPIC_REPLICATION": "3"}, []string{"--topic-replication", "-1"}, topics{6, 6, -1}, false},
		{"replication over int16", nil, []string{"--topic-replication", "40000"}, topics{}, true},
		{"partitions over int32", map[string]string{"DETECT_TOPIC_PARTITIONS": "3000000000"}, nil, topics{}, true},
		{"not a number", map[string]string{"DETECT_TOPIC_REPLICATION": "three"}, nil, topics{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"DETECT_TOPIC_PARTITIONS", "DETECT_REPARTITION_PARTITIONS", "DETECT_TOPIC_REPLICATION"} {
				t.Setenv(v, tc.env[v])
			}
			var c detect.Config
			fs := envflag.New("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			topicFlags(fs, &c)
			err := fs.Parse(tc.args)
			if (err != nil) != tc.err {
				t.Fatalf("Parse: %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			got := topics{c.Partitions, c.RepartitionPartitions, c.Replication}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("parsed (-want +got)\n%s", d)
			}
			// Validate keeps what the flags set.
			c.Brokers, c.RulesDir = []string{"127.0.0.1:9092"}, "rules"
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			got = topics{c.Partitions, c.RepartitionPartitions, c.Replication}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("validated (-want +got)\n%s", d)
			}
		})
	}
}
