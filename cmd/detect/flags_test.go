package main

import (
	"flag"
	"testing"

	"github.com/google/go-cmp/cmp"

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
