package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/events"
)

const alertsUsage = `usage:
  approve alerts [list] [--open] [--limit N] [--json]   recent alerts with their triage state
  approve alerts ack ID [--comment TEXT]                 acknowledge
  approve alerts assign ID --to APPROVER [--comment TEXT]
  approve alerts tp ID [--comment TEXT]                  true positive
  approve alerts fp ID --comment TEXT                    false positive (a comment is required)
  approve alerts comment ID --comment TEXT
  approve alerts suppress ID --scope KIND[=VALUE] --for 4h --comment TEXT
        silence the alert's rule, within its tenant, for a scope: tenant, session,
        agent=NAME or group_key (without a value: the alert's own session or group key)
  approve alerts suppress --rule RULE --tenant T --scope KIND=VALUE --for 4h --comment TEXT
  approve alerts suppressions [--all] [--json]
  approve alerts unsuppress SUPPRESSION_ID [--comment TEXT]

Triage needs a group with may_triage in approvers.yaml; suppressing needs
may_suppress. Every action is a signed event on the approvals topic.
`

// triageActions maps the CLI's verbs onto triage actions.
var triageActions = map[string]events.TriageAction{
	"ack": events.TriageAcknowledge, "assign": events.TriageAssign, "tp": events.TriageTruePositive,
	"fp": events.TriageFalsePositive, "comment": events.TriageComment,
}

func runAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list":
		return runAlertList(ctx, args, stdout, stderr)
	case "suppress":
		return runSuppress(ctx, args, stdout, stderr)
	case "suppressions":
		return runSuppressions(ctx, args, stdout, stderr)
	case "unsuppress":
		return runUnsuppress(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, alertsUsage)
		return 0
	}
	if action, ok := triageActions[sub]; ok {
		return runTriage(ctx, sub, action, args, stdout, stderr)
	}
	fmt.Fprintf(stderr, "approve alerts: unknown subcommand %q\n%s", sub, alertsUsage)
	return 2
}

func runAlertList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("alerts", stderr)
	var cc clientConfig
	cc.flags(fs)
	limit := fs.Int("limit", 50, "at most this many, newest first")
	open := fs.Bool("open", false, "only alerts without a true/false positive verdict")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 0 {
		fmt.Fprint(stderr, alertsUsage)
		return 2
	}
	c, code, ok := connect(cc, "alerts", stderr)
	if !ok {
		return code
	}
	as, err := c.TriagedAlerts(ctx, *limit, *open)
	if err != nil {
		return fail(stderr, "alerts", err)
	}
	if cc.JSON {
		err = printJSON(stdout, as)
	} else {
		err = approvals.WriteTriagedAlerts(stdout, as)
	}
	if err != nil {
		return fail(stderr, "alerts", err)
	}
	return 0
}

func runTriage(ctx context.Context, verb string, action events.TriageAction, args []string, stdout, stderr io.Writer) int {
	name := "alerts " + verb
	fs := newFlags(name, stderr)
	var cc clientConfig
	cc.flags(fs)
	in := approvals.TriageInput{Action: action}
	fs.StringVar(&in.Comment, "comment", "", "comment (required for fp and comment)")
	if action == events.TriageAssign {
		fs.StringVar(&in.Assignee, "to", "", "approver id to assign the alert to")
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, alertsUsage)
		return 2
	}
	if err := approvals.CheckTriage(in.Action, in.Assignee, in.Comment); err != nil {
		return fail(stderr, name, err)
	}
	c, code, ok := connect(cc, name, stderr)
	if !ok {
		return code
	}
	out, err := c.TriageAlert(ctx, pos[0], in)
	if err != nil {
		return fail(stderr, name, err)
	}
	if cc.JSON {
		err = printJSON(stdout, out)
	} else {
		_, err = fmt.Fprintf(stdout, "%s: %s (event %s)\n", pos[0], action, out.EventID)
	}
	if err != nil {
		return fail(stderr, name, err)
	}
	return 0
}

func runSuppress(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const name = "alerts suppress"
	fs := newFlags(name, stderr)
	var cc clientConfig
	cc.flags(fs)
	var in approvals.SuppressInput
	scope := fs.String("scope", "", "tenant, session[=ID], agent=NAME or group_key[=VALUE]")
	fs.StringVar(&in.RuleID, "rule", "", "rule to suppress (default: the alert's)")
	fs.StringVar(&in.Tenant, "tenant", "", "tenant (default: the alert's)")
	fs.StringVar(&in.For, "for", "", "how long, for example 4h (at most 720h)")
	fs.StringVar(&in.Comment, "comment", "", "why (required)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 1 || (len(pos) == 0 && (in.RuleID == "" || in.Tenant == "")) || *scope == "" || in.For == "" || in.Comment == "" {
		fmt.Fprint(stderr, alertsUsage)
		return 2
	}
	kind, value, _ := strings.Cut(*scope, "=")
	in.Scope = events.SuppressionScope{Kind: events.SuppressionKind(kind), Value: value}
	c, code, ok := connect(cc, name, stderr)
	if !ok {
		return code
	}
	if len(pos) == 1 {
		in.AlertEventID = pos[0]
		if value == "" {
			// The alert's own session, group key or tenant.
			as, err := c.TriagedAlerts(ctx, 10000, false)
			if err != nil {
				return fail(stderr, name, err)
			}
			for _, a := range as {
				if a.EventID != pos[0] {
					continue
				}
				switch in.Scope.Kind {
				case events.SuppressSession:
					in.Scope.Value = a.SessionID
				case events.SuppressGroupKey:
					in.Scope.Value = a.GroupKey
				case events.SuppressTenant:
					in.Scope.Value = a.Tenant
				}
			}
		}
	} else if in.Scope.Kind == events.SuppressTenant && value == "" {
		in.Scope.Value = in.Tenant
	}
	out, err := c.Suppress(ctx, in)
	if err != nil {
		return fail(stderr, name, err)
	}
	if cc.JSON {
		err = printJSON(stdout, out)
	} else {
		s := out.Suppression
		_, err = fmt.Fprintf(stdout, "suppressed %s for %s=%s in %s until %s (event %s)\n", s.RuleID, s.Scope.Kind, s.Scope.Value,
			s.Tenant, s.ExpiresAt.UTC().Format(time.RFC3339), out.EventID)
	}
	if err != nil {
		return fail(stderr, name, err)
	}
	return 0
}

func runSuppressions(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const name = "alerts suppressions"
	fs := newFlags(name, stderr)
	var cc clientConfig
	cc.flags(fs)
	all := fs.Bool("all", false, "also lifted and expired suppressions")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 0 {
		fmt.Fprint(stderr, alertsUsage)
		return 2
	}
	c, code, ok := connect(cc, name, stderr)
	if !ok {
		return code
	}
	ss, err := c.Suppressions(ctx, *all)
	if err != nil {
		return fail(stderr, name, err)
	}
	if cc.JSON {
		err = printJSON(stdout, ss)
	} else {
		err = approvals.WriteSuppressions(stdout, ss, time.Now())
	}
	if err != nil {
		return fail(stderr, name, err)
	}
	return 0
}

func runUnsuppress(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const name = "alerts unsuppress"
	fs := newFlags(name, stderr)
	var cc clientConfig
	cc.flags(fs)
	var in approvals.LiftInput
	fs.StringVar(&in.Comment, "comment", "", "why")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, alertsUsage)
		return 2
	}
	c, code, ok := connect(cc, name, stderr)
	if !ok {
		return code
	}
	out, err := c.Unsuppress(ctx, pos[0], in)
	if err != nil {
		return fail(stderr, name, err)
	}
	if cc.JSON {
		err = printJSON(stdout, out)
	} else {
		_, err = fmt.Fprintf(stdout, "lifted %s (%s) (event %s)\n", pos[0], out.Suppression.RuleID, out.EventID)
	}
	if err != nil {
		return fail(stderr, name, err)
	}
	return 0
}

// connect validates the client flags and returns a client; ok false means
// return code.
func connect(cc clientConfig, name string, stderr io.Writer) (*approvals.Client, int, bool) {
	if err := cc.validate(); err != nil {
		return nil, fail(stderr, name, err), false
	}
	c, err := cc.client()
	if err != nil {
		return nil, fail(stderr, name, err), false
	}
	return c, 0, true
}
