package main

import (
	"flag"
	"testing"
)

// Without KAFKA_BROKERS or --brokers, detect refuses to start instead of
// quietly trying 127.0.0.1:9092.
func TestBrokersAreRequired(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "")
	var b []string
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	brokersFlag(fs, &b)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := needBrokers(b); err == nil {
		t.Errorf("no brokers accepted: %q", b)
	}
	if err := fs.Parse([]string{"--brokers", "127.0.0.1:9092,127.0.0.1:9093"}); err != nil {
		t.Fatal(err)
	}
	if err := needBrokers(b); err != nil || len(b) != 2 {
		t.Errorf("--brokers: %q %v", b, err)
	}
	t.Setenv("KAFKA_BROKERS", "127.0.0.1:19092")
	b = nil
	brokersFlag(flag.NewFlagSet("t", flag.ContinueOnError), &b)
	if len(b) != 1 || b[0] != "127.0.0.1:19092" {
		t.Errorf("from the environment: %q", b)
	}
}
