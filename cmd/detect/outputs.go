package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/alertout"
	"github.com/agentaudit/agentaudit/internal/events"
)

// outputsCmd is `detect outputs`: alerts from the events topic to
// webhooks, Slack and Alertmanager.
func outputsCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("detect outputs", flag.ContinueOnError)
	var brokers []string
	brokersFlag(fs, &brokers)
	group := fs.String("group", env("DETECT_OUTPUTS_GROUP", "detect-outputs"), "consumer group shared by every instance (env DETECT_OUTPUTS_GROUP)")
	topic := fs.String("events-topic", env("DETECT_EVENTS_TOPIC", events.DefaultTopics.Events), "events topic (env DETECT_EVENTS_TOPIC)")
	var outputs []alertout.Output
	if v := os.Getenv("DETECT_OUTPUTS"); v != "" {
		for _, s := range strings.Split(v, ",") {
			o, err := alertout.ParseOutput(s)
			if err != nil {
				return fmt.Errorf("DETECT_OUTPUTS: %w", err)
			}
			outputs = append(outputs, o)
		}
	}
	fs.Func("output", "FORMAT=URL, repeatable; FORMAT is json, slack or alertmanager (env DETECT_OUTPUTS, comma-separated)", func(s string) error {
		o, err := alertout.ParseOutput(s)
		outputs = append(outputs, o)
		return err
	})
	minSev := fs.String("min-severity", env("DETECT_OUTPUTS_MIN_SEVERITY", ""), "send only alerts at or above: info, low, medium, high, critical (env DETECT_OUTPUTS_MIN_SEVERITY)")
	attempts := fs.Int("attempts", envInt("DETECT_OUTPUTS_ATTEMPTS", 6), "attempts per alert and output before it is dead-lettered (env DETECT_OUTPUTS_ATTEMPTS)")
	logFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: detect outputs --output FORMAT=URL [--output …] [flags]

Delivers every alert.raised on the events topic to each output, retrying
with back-off; what an output refuses, or still fails after the last
attempt, is dead-lettered (counted and logged with the alert's event id).
An Authorization header for every output comes from the environment
(DETECT_OUTPUTS_AUTHORIZATION), never from a flag.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needBrokers(brokers); err != nil {
		return err
	}
	if len(outputs) == 0 {
		return fmt.Errorf("no outputs: give --output FORMAT=URL (or DETECT_OUTPUTS)")
	}
	auth := os.Getenv("DETECT_OUTPUTS_AUTHORIZATION")
	for i := range outputs {
		outputs[i].MinSeverity = events.Severity(*minSev)
		if auth != "" {
			outputs[i].Header = map[string]string{"Authorization": auth}
		}
	}
	log := logger()
	d, err := alertout.NewDeliverer(outputs, alertout.WithLogger(log), alertout.WithRetry(*attempts, 200*time.Millisecond, 10*time.Second))
	if err != nil {
		return err
	}
	c, err := events.NewConsumer(brokers, *group, []string{*topic}, events.WithConsumerLogger(log))
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				log.Info("alert outputs", "stats", d.Stats())
			}
		}
	}()
	log.Info("delivering alerts", "outputs", len(outputs), "topic", *topic, "group", *group)
	err = c.Run(ctx, d.Handler())
	log.Info("alert outputs stopped", "stats", d.Stats())
	return err
}
