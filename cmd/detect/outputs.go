package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/alertout"
	"github.com/agentaudit/agentaudit/internal/envflag"
	"github.com/agentaudit/agentaudit/internal/eventlog"
	"github.com/agentaudit/agentaudit/internal/events"
)

// outputsCmd is `detect outputs`: alerts from the events topic to
// webhooks, Slack and Alertmanager.
func outputsCmd(ctx context.Context, args []string) error {
	fs := envflag.New("detect outputs", flag.ContinueOnError)
	var brokers []string
	brokersFlag(fs, &brokers)
	var group, topic, minSev, auth string
	var attempts int
	var outputs outputList
	fs.StringEnv(&group, "group", "DETECT_OUTPUTS_GROUP", "detect-outputs", "consumer group shared by every instance")
	fs.StringEnv(&topic, "events-topic", "DETECT_EVENTS_TOPIC", eventlog.DefaultTopics.Events, "events topic")
	fs.VarEnv(&outputs, "output", "DETECT_OUTPUTS", "FORMAT=URL, repeatable or comma-separated; FORMAT is json, slack or alertmanager")
	fs.StringEnv(&minSev, "min-severity", "DETECT_OUTPUTS_MIN_SEVERITY", "", "send only alerts at or above: info, low, medium, high, critical")
	fs.IntEnv(&attempts, "attempts", "DETECT_OUTPUTS_ATTEMPTS", 6, "attempts per alert and output before it is dead-lettered")
	fs.FromEnv(&auth, "DETECT_OUTPUTS_AUTHORIZATION", "Authorization header sent to every output")
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
	for i := range outputs {
		outputs[i].MinSeverity = events.Severity(minSev)
		if auth != "" {
			outputs[i].Header = map[string]string{"Authorization": auth}
		}
	}
	log := logger()
	d, err := alertout.NewDeliverer(outputs, alertout.WithLogger(log), alertout.WithRetry(attempts, 200*time.Millisecond, 10*time.Second))
	if err != nil {
		return err
	}
	c, err := eventlog.NewConsumer(brokers, group, []string{topic}, eventlog.WithConsumerLogger(log))
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
	log.Info("delivering alerts", "outputs", len(outputs), "topic", topic, "group", group)
	err = c.Run(ctx, d.Handler())
	log.Info("alert outputs stopped", "stats", d.Stats())
	return err
}

// outputList is --output and DETECT_OUTPUTS: FORMAT=URL entries,
// comma-separated or repeated.
type outputList []alertout.Output

func (l *outputList) String() string {
	if l == nil {
		return ""
	}
	return fmt.Sprint(len(*l), " outputs")
}

func (l *outputList) Set(s string) error {
	for _, e := range strings.Split(s, ",") {
		o, err := alertout.ParseOutput(e)
		if err != nil {
			return err
		}
		*l = append(*l, o)
	}
	return nil
}
