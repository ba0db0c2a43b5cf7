package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/agentaudit/agentaudit/internal/approvals"
)

// runToken prints a new token on the first line (for the approver, shown
// once) and, after a comment, the approver's entry for approvers.yaml with
// the token's sha256: the service keeps only the hash.
func runToken(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("token", stderr)
	id := fs.String("id", "approver", "the approver's id, as decisions name them")
	name := fs.String("name", "", "the approver's display name (optional)")
	groups := fs.String("groups", "oncall", "comma-separated groups of approvers.yaml the approver belongs to")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: approve token [--id ID] [--name NAME] [--groups G1,G2]\n\n"+
			"Prints a new bearer token (give it to the approver; it is not stored) and the\n"+
			"approver's line for approvers.yaml, which holds only the token's sha256.\n\n")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\n"+approversFormat)
	}
	if _, err := parseArgs(fs, args); err != nil {
		return 2
	}
	token, sum, err := approvals.GenerateToken()
	if err != nil {
		return fail(stderr, "token", err)
	}
	fmt.Fprintln(stdout, token)
	fmt.Fprintln(stdout, "# Give the token above to the approver; it is shown only now. Add this under approvers: in approvers.yaml:")
	fmt.Fprintln(stdout, ApproverLine(*id, *name, splitList(*groups), sum))
	return 0
}

// ApproverLine is one approvers.yaml entry, in YAML flow style.
func ApproverLine(id, name string, groups []string, sum string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - {id: %q", id)
	if name != "" {
		fmt.Fprintf(&b, ", name: %q", name)
	}
	qs := make([]string, len(groups))
	for i, g := range groups {
		qs[i] = fmt.Sprintf("%q", g)
	}
	fmt.Fprintf(&b, ", groups: [%s], token_sha256: %s}", strings.Join(qs, ", "), sum)
	return b.String()
}

// approversFormat documents approvers.yaml for --help.
const approversFormat = `approvers.yaml (approve serve --approvers):

  approvers:                       # who may log in: one entry per person
    - id: alice                    # the id decisions are signed with
      name: Alice Example          # optional display name
      groups: [oncall]             # groups below
      token_sha256: 9f86d0...      # sha256 of the bearer token (approve token); never the token
      cert_sha256: 3b1e...         # optional: sha256 of an mTLS client certificate (DER)
  groups:
    - name: oncall
      may_answer:                  # any entry that matches grants
        - kinds: [tool_call, egress, session_hold]   # empty: any kind
          max_risk: high                             # empty: any risk
    - name: release
      may_answer:
        - rule_ids: ["deploy-*"]   # glob patterns of rule ids; empty: any
    - name: secops                 # alert triage (approve alerts, the inbox's Alerts)
      may_triage:                  # acknowledge, assign, true/false positive, comment
        - rule_ids: ["*"]          # rule_ids and min_risk/max_risk (the alert's severity)
      may_suppress:                # silence a rule for a scope and a time, and lift it
        - rule_ids: ["egress.*"]
  restricted:                      # requests only these groups may answer
    - match: {rule_ids: ["deploy-*"]}
      groups: [release]
  two_person:                      # requests that need two distinct approvers
    - rule_ids: ["deploy-prod-*"]
      min_risk: high

An approver never answers a request they made. The file is read at start.
`
