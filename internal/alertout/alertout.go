// Package alertout delivers alerts to where people watch for them: a
// webhook with a generic JSON body, a Slack-compatible incoming webhook,
// and the Alertmanager v2 API.
//
// It reads alert.raised from the events topic as a consumer group of its
// own, beside detect, so alerts reach the outputs whether they came from a
// streaming rule, an SQL rule or a replay, and several copies can share the
// work. An alert's offset is committed only once every output has taken it
// or given up on it: a delivery is retried with exponential back-off while
// the receiver fails in a way that may pass (a network error, a 5xx, 429,
// 408); one it refuses outright (any other 4xx), or that still fails after
// the last attempt, is dead-lettered: counted per output and logged with
// the alert's event id, so nothing is dropped silently. Delivery is at
// least once; every body carries the alert's event id for receivers that
// deduplicate (Alertmanager does so by labels).
package alertout

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
)

// Format is the body an output expects.
type Format string

// The formats.
const (
	// FormatJSON is the generic body: {"alert": Alert}.
	FormatJSON Format = "json"
	// FormatSlack is a Slack-compatible incoming-webhook message.
	FormatSlack Format = "slack"
	// FormatAlertmanager is a POST to Alertmanager's /api/v2/alerts.
	FormatAlertmanager Format = "alertmanager"
)

// Output is one receiver.
type Output struct {
	// Name labels the output in counts and logs (default: the format).
	Name   string
	Format Format
	// URL is where alerts are POSTed: the webhook, the Slack incoming
	// webhook, or Alertmanager's base URL (/api/v2/alerts is added when
	// the path is empty).
	URL string
	// Header is sent with every request (for example Authorization).
	Header map[string]string
	// MinSeverity drops alerts below it (default: all).
	MinSeverity events.Severity
}

// ErrOutput: an output is misconfigured.
var ErrOutput = errors.New("alertout: bad output")

// ParseOutput reads FORMAT=URL (for example slack=https://…), the form
// the command line takes.
func ParseOutput(s string) (Output, error) {
	f, u, ok := strings.Cut(s, "=")
	if !ok {
		return Output{}, fmt.Errorf("%w: %q is not FORMAT=URL (formats: json, slack, alertmanager)", ErrOutput, s)
	}
	o := Output{Format: Format(strings.ToLower(strings.TrimSpace(f))), URL: strings.TrimSpace(u)}
	return o, o.check()
}

func (o *Output) check() error {
	switch o.Format {
	case FormatJSON, FormatSlack, FormatAlertmanager:
	default:
		return fmt.Errorf("%w: unknown format %q (formats: json, slack, alertmanager)", ErrOutput, o.Format)
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: %s output URL %q is not an http(s) URL", ErrOutput, o.Format, o.URL)
	}
	if o.Format == FormatAlertmanager && (u.Path == "" || u.Path == "/") {
		u.Path = "/api/v2/alerts"
		o.URL = u.String()
	}
	if o.MinSeverity != "" && severityRank[o.MinSeverity] == 0 {
		return fmt.Errorf("%w: unknown severity %q", ErrOutput, o.MinSeverity)
	}
	if o.Name == "" {
		o.Name = string(o.Format)
	}
	return nil
}

var severityRank = map[events.Severity]int{
	events.SeverityInfo: 1, events.SeverityLow: 2, events.SeverityMedium: 3,
	events.SeverityHigh: 4, events.SeverityCritical: 5,
}

// wants reports whether the output takes alerts of severity s.
func (o *Output) wants(s events.Severity) bool {
	return o.MinSeverity == "" || severityRank[s] >= severityRank[o.MinSeverity]
}

// Alert is what every format is built from: the alert.raised payload with
// the envelope fields that place it.
type Alert struct {
	EventID   string    `json:"event_id"`
	Time      time.Time `json:"time"`
	Tenant    string    `json:"tenant"`
	SessionID string    `json:"session_id"`
	// RunnerID is the detect instance that raised it.
	RunnerID string `json:"raised_by"`
	events.AlertRaised
}

// FromEnvelope returns the alert an alert.raised event carries.
func FromEnvelope(env *events.Envelope) (Alert, error) {
	if env.EventType != events.TypeAlertRaised {
		return Alert{}, fmt.Errorf("alertout: %s is not an alert", env.EventType)
	}
	p, err := env.DecodePayload()
	if err != nil {
		return Alert{}, err
	}
	ar, ok := p.(*events.AlertRaised)
	if !ok {
		return Alert{}, fmt.Errorf("alertout: alert.raised payload is %T", p)
	}
	return Alert{EventID: env.EventID, Time: env.EventTime, Tenant: env.Tenant, SessionID: env.SessionID,
		RunnerID: env.RunnerID, AlertRaised: *ar}, nil
}

// Body is the request body of a for format f.
func Body(f Format, a Alert) ([]byte, error) {
	switch f {
	case FormatJSON:
		return json.Marshal(struct {
			Alert Alert `json:"alert"`
		}{a})
	case FormatSlack:
		return json.Marshal(slackBody(a))
	case FormatAlertmanager:
		return json.Marshal([]amAlert{alertmanagerBody(a)})
	}
	return nil, fmt.Errorf("%w: unknown format %q", ErrOutput, f)
}

// summary is the alert in one line.
func summary(a Alert) string {
	msg := a.Message
	if msg == "" {
		msg = a.RuleID
	}
	return fmt.Sprintf("[%s] %s: %s", strings.ToUpper(string(a.Severity)), a.RuleID, msg)
}

type slackMsg struct {
	Text        string            `json:"text"`
	Attachments []slackAttachment `json:"attachments"`
}

type slackAttachment struct {
	Color  string       `json:"color"`
	Fields []slackField `json:"fields"`
	Footer string       `json:"footer"`
	TS     int64        `json:"ts"`
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

var slackColors = map[events.Severity]string{
	events.SeverityCritical: "#8b0000", events.SeverityHigh: "#d93025", events.SeverityMedium: "#f29900",
	events.SeverityLow: "#1a73e8", events.SeverityInfo: "#9aa0a6",
}

func slackBody(a Alert) slackMsg {
	f := []slackField{
		{Title: "Rule", Value: a.RuleID, Short: true},
		{Title: "Severity", Value: string(a.Severity), Short: true},
		{Title: "Tenant", Value: a.Tenant, Short: true},
		{Title: "Session", Value: a.SessionID, Short: true},
		{Title: "Matches", Value: fmt.Sprintf("%d (%d folded by dedup)", a.Count, a.Suppressed), Short: true},
	}
	if a.Action != "" {
		f = append(f, slackField{Title: "Action", Value: a.Action, Short: true})
	}
	return slackMsg{Text: summary(a), Attachments: []slackAttachment{{
		Color: slackColors[a.Severity], Fields: f, Footer: "agentaudit alert " + a.EventID, TS: a.Time.Unix(),
	}}}
}

// amAlert is one alert of Alertmanager's v2 API (postableAlert).
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func alertmanagerBody(a Alert) amAlert {
	start := a.FirstSeen.Time
	if start.IsZero() {
		start = a.Time
	}
	return amAlert{
		// Labels identify the alert to Alertmanager, which deduplicates
		// and groups on them: one per rule and group key.
		Labels: map[string]string{
			"alertname": a.RuleID, "severity": string(a.Severity), "tenant": a.Tenant,
			"session_id": a.SessionID, "group_key": a.GroupKey, "source": "agentaudit",
		},
		Annotations: map[string]string{
			"summary": summary(a), "description": a.Message, "event_id": a.EventID,
			"count": fmt.Sprint(a.Count), "rule_version": a.RuleVersion,
		},
		StartsAt: start.UTC(),
	}
}
