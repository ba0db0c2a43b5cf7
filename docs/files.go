package docs

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"github.com/agentaudit/agentaudit/internal/approvals"
	"github.com/agentaudit/agentaudit/internal/policy"
)

// fileKey is one documented key of a configuration file.
type fileKey struct {
	key, typ, meaning string
}

// fileSection is one mapping of a configuration file.
type fileSection struct {
	title, intro string
	keys         []fileKey
}

// ---- approvers.yaml ----

// approverDocs describes every key of approvals.Config, by Go type and
// YAML key; TestApproversReference fails on a key without one.
var approverDocs = map[string]string{
	"Config.approvers":            "The people who may answer, triage or suppress.",
	"Config.groups":               "What each group's members may do.",
	"Config.restricted":           "Requests only the named groups may answer, whatever other groups' `may_answer` says.",
	"Config.two_person":           "Requests that need two distinct approvers.",
	"ApproverConfig.id":           "Approver id as it appears in approval.decided (`approver.id`); unique.",
	"ApproverConfig.name":         "Display name.",
	"ApproverConfig.groups":       "Groups the approver belongs to; each must be defined under `groups`.",
	"ApproverConfig.token_sha256": "Hex sha256 of the approver's bearer token (`approve token` prints the line); never the token itself.",
	"ApproverConfig.cert_sha256":  "Hex sha256 of an mTLS client certificate (DER). An approver needs this or `token_sha256`.",
	"GroupPolicy.name":            "Group name; unique.",
	"GroupPolicy.may_answer":      "Approval requests the group's members may answer: any match grants.",
	"GroupPolicy.may_triage":      "Alerts the members may acknowledge, assign, mark true or false positive and comment on, by `rule_ids` and `min_risk`/`max_risk` (the alert's severity); `kinds` must be empty.",
	"GroupPolicy.may_suppress":    "Rules the members may suppress for a scope and a time, and lift, selected like `may_triage`.",
	"Restriction.match":           "Which requests are reserved.",
	"Restriction.groups":          "The only groups that may answer them.",
	"Match.kinds":                 "Request kinds: `tool_call`, `egress`, `session_hold`; empty matches any.",
	"Match.rule_ids":              "Rule id patterns (`path.Match`: `deploy-*`); empty matches any.",
	"Match.min_risk":              "Lowest risk matched: `low`, `medium`, `high`, `critical`.",
	"Match.max_risk":              "Highest risk matched; an unknown risk is above every max_risk.",
}

// approverTypes are the document's types, in the order they are shown.
var approverTypes = []reflect.Type{
	reflect.TypeFor[approvals.Config](), reflect.TypeFor[approvals.ApproverConfig](),
	reflect.TypeFor[approvals.GroupPolicy](), reflect.TypeFor[approvals.Restriction](), reflect.TypeFor[approvals.Match](),
}

var approverTitles = map[string]string{
	"Config": "File", "ApproverConfig": "Approver (`approvers:` items)", "GroupPolicy": "Group (`groups:` items)",
	"Restriction": "Restriction (`restricted:` items)", "Match": "Match (`may_answer`, `may_triage`, `may_suppress`, `restricted[].match`, `two_person` items)",
}

// approversExample is shown in the reference and must load.
const approversExample = `approvers:
  - id: alice
    name: Alice Example
    groups: [oncall, secops]
    token_sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
  - id: bob
    name: Bob Example
    groups: [release]
    token_sha256: fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9
groups:
  - name: oncall
    may_answer:
      - kinds: [tool_call, egress]
        max_risk: high
  - name: release
    may_answer:
      - rule_ids: ["deploy-*"]
  - name: secops
    may_triage:
      - rule_ids: ["*"]
    may_suppress:
      - rule_ids: ["egress.*"]
restricted:
  - match: {rule_ids: ["deploy-*"]}
    groups: [release]
two_person:
  - kinds: [session_hold]
`

func approverSections() []fileSection {
	var out []fileSection
	for _, t := range approverTypes {
		s := fileSection{title: approverTitles[t.Name()]}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			s.keys = append(s.keys, fileKey{name, goTypeName(f.Type), approverDocs[t.Name()+"."+name]})
		}
		out = append(out, s)
	}
	return out
}

func goTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice:
		return "list of " + goTypeName(t.Elem())
	case reflect.Struct:
		return "mapping (" + t.Name() + ")"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	}
	return t.String()
}

// ApproversReference renders docs/approvers.md.
func ApproversReference() []byte {
	var b bytes.Buffer
	b.WriteString("# approvers.yaml reference\n\n")
	b.WriteString("<!-- Generated from internal/approvals.Config by `go test ./docs -update`; do not edit. TestApproversReference checks it. -->\n\n")
	b.WriteString("`approve serve --approvers FILE` reads who may answer approval requests, triage alerts and suppress rules. Unknown keys are an error, so a misspelt key cannot silently widen access; every reference (a group, a kind, a risk, a pattern) is checked at load. Credentials are stored as sha256 hashes only: `approve token` creates a token and prints the approver's line.\n\n")
	b.WriteString("```yaml\n" + approversExample + "```\n\n")
	writeSections(&b, approverSections())
	return b.Bytes()
}

// ---- policy files ----

// policySections documents the tool-call policy file. The loader is a
// hand-written strict parser, so TestPolicyReference checks this table
// against it: every key here is accepted, and every key the loader's
// source names is here.
var policySections = []fileSection{
	{title: "File", intro: "A policy file maps a tool call to allow, ask or deny. Rules are tried in order; the first that matches decides; no match asks (default deny for what nobody approves). Every rule's `match` and `not_match` examples are checked when the policy loads, so a policy whose examples fail does not load. `runner` takes it with `--policy FILE`; without one the shipped `internal/policy/default.yaml` applies.",
		keys: []fileKey{
			{"id", "string", "Policy name (letters, digits, `.`, `_`, `-`); recorded in every decision as `policy.id`, with the file's sha256. Required."},
			{"version", "string", "Version of the policy."},
			{"description", "string", "What the policy is for."},
			{"approval_mode", "string", "`untrusted` (ask for everything not known safe), `on-request` (ask only where a rule says so) or `never` (asks become denies)."},
			{"protected_paths", "list of globs", "Paths in the workspace whose writes ask; the runner also reverts changes to them that no approved call made. Globs (below) are relative to the workspace: one without `/` matches at any depth, a leading `/` anchors it at the workspace root."},
			{"default_protected_paths", "bool", "Add `.git/hooks/**`, `.git/config`, `.env` and `.env.*` to `protected_paths` (default true)."},
			{"known_safe", "list", "Commands that only read, allowed without a rule: an argv prefix (`[git, status]`) or a mapping (below)."},
			{"default_known_safe", "bool", "Add the shipped read-only commands (ls, cat, grep, git status, …) to `known_safe` (default true)."},
			{"rules", "list of mappings", "The rules, in order (below)."},
		}},
	{title: "Known-safe entry (`known_safe:` mapping items)",
		keys: []fileKey{
			{"prefix", "list of strings", "Argv prefix of the command."},
			{"forbid", "list of argument globs", "Arguments that make the command write or run something else; a command with one is not known safe. An argument glob (below) matches the whole argument."},
		}},
	{title: "Rule (`rules:` items)",
		keys: []fileKey{
			{"id", "string", "Rule id; recorded as `rule_id` in the decision. Required."},
			{"description", "string", "What the rule is for."},
			{"tool", "list of patterns", "Tool names the rule applies to (`path.Match` patterns); default the shell tools."},
			{"prefix", "list of argv prefixes", "Commands the rule applies to, each an argv prefix (a list) or a list of alternatives per position (`[[rm, rmdir]]`); wrappers (sudo, env, bash -c) are unwrapped first."},
			{"args", "list of argument globs", "The command must have one of these arguments."},
			{"outside_workspace", "bool", "The command names a path outside the workspace."},
			{"piped", "bool", "The command's output is piped into another command (true) or not (false)."},
			{"wipes_workspace", "bool", "The command deletes every file in the workspace (rm -r of its root or `*`, find from the root with -delete)."},
			{"paths", "list of globs", "The call reads or writes one of these paths."},
			{"write", "bool", "The call writes (true) or only reads (false) `paths`."},
			{"decision", "string", "`allow`, `ask` or `deny`. Required."},
			{"justification", "string", "Why, shown to the approver and returned to the agent. Required."},
			{"reason", "string", "Reason code recorded in the decision (default: `allowlisted`, `needs_approval` or `denied_by_rule` by decision); must be a known code."},
			{"match", "list of examples", "Calls the rule must match (checked at load)."},
			{"not_match", "list of examples", "Calls the rule must not match (checked at load)."},
		}},
	{title: "Example (`match` / `not_match` items)", intro: "An example is a shell command line (a string), an argv (a list), or a mapping:",
		keys: []fileKey{
			{"tool", "string", "Tool name (default a shell tool)."},
			{"command", "string", "Shell command line."},
			{"argv", "list of strings", "Argv."},
			{"path", "string", "A path the call touches."},
			{"paths", "list of strings", "Paths the call touches."},
			{"write", "bool", "The call writes its paths."},
			{"cwd", "string", "Working directory of the call."},
		}},
}

// PolicyReference renders docs/policy.md.
func PolicyReference() []byte {
	var b bytes.Buffer
	b.WriteString("# Policy file reference\n\n")
	b.WriteString("<!-- Generated from docs/files.go by `go test ./docs -update`; do not edit. TestPolicyReference checks it against internal/policy's loader. -->\n\n")
	b.WriteString("Unknown keys are an error with their line. The shipped policy, `internal/policy/default.yaml`, is the worked example; an excerpt:\n\n")
	b.WriteString("```yaml\n" + policyExample() + "```\n\n")
	writeSections(&b, policySections)
	writeGlobs(&b)
	return b.Bytes()
}

// globIntro describes the glob dialect of package internal/glob, which
// TestGlobExamples checks globExamples against.
const globIntro = "Paths and arguments are globs in one dialect, the one of the `glob` function of detection rules and of a sandbox profile's `protected_paths` (package `internal/glob`). A glob is split at `/` into segments; in a segment `*` is any run of characters, `?` one character, `[a-z]` one of a class (`[^a-z]` one not in it) and `\\c` the character c. A segment `**` matches any number of segments, none included, but as the last segment one or more: `.git/hooks/**` is what is under `.git/hooks`, and removing `.git/hooks` or `.git` writes it. `**` inside a longer segment is an error. A path glob is relative to the workspace: one without `/` (but a trailing one, which is ignored) matches the base name at any depth, and a leading `/` anchors it at the workspace root. An argument glob matches the whole argument, `/` included. In a `known_safe` entry's `forbid` list, where matching more is the safe side, `*` crosses `/` too: `--output=*` forbids `--output=dir/x`."

// globExamples are the examples of the dialect in policy.md.
var globExamples = []struct {
	glob    string
	arg     bool // an argument glob (forbid, args), else a path glob
	yes, no []string
}{
	{"*.pem", false, []string{"key.pem", "certs/key.pem"}, []string{"key.pem.bak"}},
	{"/.env", false, []string{".env"}, []string{"app/.env"}},
	{".github/workflows/**", false, []string{".github/workflows/ci.yml", ".github/workflows/a/b.yml"}, []string{".github/workflows"}},
	{"src/**/test_*.py", false, []string{"src/test_a.py", "src/x/y/test_b.py"}, []string{"test_a.py"}},
	{"deploy/[a-c]?.sh", false, []string{"deploy/a1.sh"}, []string{"deploy/d1.sh", "deploy/a12.sh"}},
	{"--output=*", true, []string{"--output=x"}, []string{"--output=dir/x"}},
}

func writeGlobs(b *bytes.Buffer) {
	b.WriteString("## Globs\n\n" + globIntro + "\n\n")
	b.WriteString("| glob | kind | matches | does not match |\n|---|---|---|---|\n")
	code := func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = "`" + s + "`"
		}
		return strings.Join(out, ", ")
	}
	for _, e := range globExamples {
		kind := "path"
		if e.arg {
			kind = "argument"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", e.glob, kind, code(e.yes), code(e.no))
	}
	b.WriteString("\n")
}

// policyExample is the head of the shipped policy, through its first rule.
func policyExample() string {
	lines := strings.Split(string(policy.DefaultYAML()), "\n")
	var out []string
	rules := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "  - id: ") {
			rules++
			if rules == 2 {
				break
			}
		}
		out = append(out, l)
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
}

func writeSections(b *bytes.Buffer, sections []fileSection) {
	for _, s := range sections {
		fmt.Fprintf(b, "## %s\n\n", s.title)
		if s.intro != "" {
			b.WriteString(s.intro + "\n\n")
		}
		b.WriteString("| key | type | meaning |\n|---|---|---|\n")
		for _, k := range s.keys {
			fmt.Fprintf(b, "| `%s` | %s | %s |\n", k.key, k.typ, cell(k.meaning))
		}
		b.WriteString("\n")
	}
}
