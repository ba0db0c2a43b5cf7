package approvals

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"

	"github.com/agentaudit/agentaudit/internal/events"
	"go.yaml.in/yaml/v3"
)

// ErrConfig reports an approvers configuration that cannot be used; the
// message names the bad field.
var ErrConfig = errors.New("approvals: bad approvers config")

// maxConfig bounds an approvers file.
const maxConfig = 4 << 20

// Config is the approvers configuration (YAML):
//
//	approvers:
//	  - id: alice
//	    name: Alice Example
//	    groups: [oncall]
//	    token_sha256: 9f86d0…            # sha256 of the bearer token, hex; never the token
//	    cert_sha256: 3b1e…               # optional: sha256 of an mTLS client certificate (DER)
//	groups:
//	  - name: oncall
//	    may_answer:                      # any match grants
//	      - kinds: [tool_call, egress]   # empty: any kind
//	        max_risk: high               # empty: any risk
//	  - name: release
//	    may_answer:
//	      - rule_ids: ["deploy-*"]       # path.Match patterns; empty: any
//	  - name: secops
//	    may_triage:                      # alerts: acknowledge, assign, true/false positive, comment
//	      - rule_ids: ["*"]              # rule_ids and min/max_risk (the alert's severity); kinds must be empty
//	    may_suppress:                    # silence a rule for a scope and a time, and lift it
//	      - rule_ids: ["egress/*"]
//	restricted:                          # requests only these groups may answer,
//	  - match: {rule_ids: ["deploy-*"]}  # whatever other groups' may_answer says
//	    groups: [release]
//	two_person:                          # requests that need two distinct approvers
//	  - kinds: [session_hold]
//	  - rule_ids: ["deploy-prod-*"]
//	    min_risk: high
type Config struct {
	Approvers  []ApproverConfig `yaml:"approvers"`
	Groups     []GroupPolicy    `yaml:"groups"`
	Restricted []Restriction    `yaml:"restricted"`
	TwoPerson  []Match          `yaml:"two_person"`
}

// ApproverConfig is one approver and its credentials, stored as hashes.
type ApproverConfig struct {
	ID          string   `yaml:"id"`
	Name        string   `yaml:"name"`
	Groups      []string `yaml:"groups"`
	TokenSHA256 string   `yaml:"token_sha256"`
	CertSHA256  string   `yaml:"cert_sha256"`
}

// GroupPolicy says which requests a group's members may answer.
type GroupPolicy struct {
	Name      string  `yaml:"name"`
	MayAnswer []Match `yaml:"may_answer"`
	// MayTriage and MaySuppress select, by rule and severity, the alerts
	// the group may triage and the rules it may suppress.
	MayTriage   []Match `yaml:"may_triage"`
	MaySuppress []Match `yaml:"may_suppress"`
}

// Restriction reserves the requests it matches to its groups.
type Restriction struct {
	Match  Match    `yaml:"match"`
	Groups []string `yaml:"groups"`
}

// Match selects requests. Every non-empty field must match.
type Match struct {
	Kinds   []string    `yaml:"kinds"`
	RuleIDs []string    `yaml:"rule_ids"`
	MinRisk events.Risk `yaml:"min_risk"`
	MaxRisk events.Risk `yaml:"max_risk"`
}

// Matches reports whether r is selected by m.
func (m Match) Matches(r Request) bool {
	if len(m.Kinds) > 0 && !slices.Contains(m.Kinds, r.Kind) {
		return false
	}
	if len(m.RuleIDs) > 0 && !slices.ContainsFunc(m.RuleIDs, func(p string) bool {
		ok, _ := path.Match(p, r.RuleID)
		return ok
	}) {
		return false
	}
	rank := riskRank(r.Risk)
	if m.MinRisk != "" && rank < riskRank(m.MinRisk) {
		return false
	}
	// An unknown risk ranks above critical, so no max_risk admits it.
	if m.MaxRisk != "" && rank > riskRank(m.MaxRisk) {
		return false
	}
	return true
}

func riskRank(r events.Risk) int {
	switch r {
	case events.RiskLow:
		return 1
	case events.RiskMedium:
		return 2
	case events.RiskHigh:
		return 3
	case events.RiskCritical:
		return 4
	}
	return 5
}

var requestKinds = []string{events.ApprovalKindToolCall, events.ApprovalKindEgress, events.ApprovalKindSessionHold}

func (m Match) validate(field string) error {
	for i, k := range m.Kinds {
		if !slices.Contains(requestKinds, k) {
			return fmt.Errorf("%w: %s.kinds[%d]: unknown request kind %q (want one of %v)", ErrConfig, field, i, k, requestKinds)
		}
	}
	for i, p := range m.RuleIDs {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return fmt.Errorf("%w: %s.rule_ids[%d]: bad pattern %q", ErrConfig, field, i, p)
		}
	}
	for _, r := range []struct {
		name string
		risk events.Risk
	}{{"min_risk", m.MinRisk}, {"max_risk", m.MaxRisk}} {
		if r.risk != "" && riskRank(r.risk) > 4 {
			return fmt.Errorf("%w: %s.%s: unknown risk %q", ErrConfig, field, r.name, r.risk)
		}
	}
	if m.MinRisk != "" && m.MaxRisk != "" && riskRank(m.MinRisk) > riskRank(m.MaxRisk) {
		return fmt.Errorf("%w: %s: min_risk %s above max_risk %s", ErrConfig, field, m.MinRisk, m.MaxRisk)
	}
	return nil
}

// emptyTokenHash is sha256(""): a config holding it would let an empty
// bearer token in.
var emptyTokenHash = sha256.Sum256(nil)

// ParseConfig reads and validates an approvers configuration. Unknown
// fields are an error, so a misspelt key cannot silently widen access.
func ParseConfig(data []byte) (*Config, error) {
	if len(data) > maxConfig {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrConfig, maxConfig)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty document", ErrConfig)
		}
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadConfig reads an approvers configuration file.
func LoadConfig(file string) (*Config, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, file, err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

func (c *Config) validate() error {
	groups := make(map[string]bool, len(c.Groups))
	for i, g := range c.Groups {
		field := fmt.Sprintf("groups[%d]", i)
		if g.Name == "" {
			return fmt.Errorf("%w: %s.name: empty", ErrConfig, field)
		}
		if groups[g.Name] {
			return fmt.Errorf("%w: %s.name: duplicate group %q", ErrConfig, field, g.Name)
		}
		groups[g.Name] = true
		if len(g.MayAnswer) == 0 && len(g.MayTriage) == 0 && len(g.MaySuppress) == 0 {
			return fmt.Errorf("%w: %s.may_answer: empty (a group that may answer, triage and suppress nothing)", ErrConfig, field)
		}
		for j, m := range g.MayAnswer {
			if err := m.validate(fmt.Sprintf("%s.may_answer[%d]", field, j)); err != nil {
				return err
			}
		}
		if err := validateTriageMatches(field, g); err != nil {
			return err
		}
	}
	for i, r := range c.Restricted {
		field := fmt.Sprintf("restricted[%d]", i)
		if err := r.Match.validate(field + ".match"); err != nil {
			return err
		}
		if len(r.Groups) == 0 {
			return fmt.Errorf("%w: %s.groups: empty", ErrConfig, field)
		}
		for j, g := range r.Groups {
			if !groups[g] {
				return fmt.Errorf("%w: %s.groups[%d]: unknown group %q", ErrConfig, field, j, g)
			}
		}
	}
	for i, m := range c.TwoPerson {
		if err := m.validate(fmt.Sprintf("two_person[%d]", i)); err != nil {
			return err
		}
	}
	ids := make(map[string]bool, len(c.Approvers))
	hashes := make(map[[32]byte]string, 2*len(c.Approvers))
	for i, a := range c.Approvers {
		field := fmt.Sprintf("approvers[%d]", i)
		if err := checkApproverID(a.ID); err != nil {
			return fmt.Errorf("%w: %s.id: %v", ErrConfig, field, err)
		}
		if ids[a.ID] {
			return fmt.Errorf("%w: %s.id: duplicate approver %q", ErrConfig, field, a.ID)
		}
		ids[a.ID] = true
		for j, g := range a.Groups {
			if !groups[g] {
				return fmt.Errorf("%w: %s.groups[%d]: unknown group %q", ErrConfig, field, j, g)
			}
		}
		if a.TokenSHA256 == "" && a.CertSHA256 == "" {
			return fmt.Errorf("%w: %s: needs token_sha256 or cert_sha256", ErrConfig, field)
		}
		for _, cred := range [][2]string{{"token_sha256", a.TokenSHA256}, {"cert_sha256", a.CertSHA256}} {
			name, v := cred[0], cred[1]
			if v == "" {
				continue
			}
			h, err := parseHash(v)
			if err != nil {
				return fmt.Errorf("%w: %s.%s: %v", ErrConfig, field, name, err)
			}
			if h == emptyTokenHash {
				return fmt.Errorf("%w: %s.%s: hash of the empty string", ErrConfig, field, name)
			}
			if other, dup := hashes[h]; dup {
				return fmt.Errorf("%w: %s.%s: same credential as %s", ErrConfig, field, name, other)
			}
			hashes[h] = a.ID
		}
	}
	return nil
}

func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	if len(s) != 64 {
		return h, fmt.Errorf("want 64 hex digits, got %d characters", len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("not hex: %v", err)
	}
	return h, nil
}

// checkApproverID keeps approver ids printable: they are actor ids in events.
func checkApproverID(id string) error {
	if id == "" || len(id) > 128 {
		return errors.New("must be 1..128 characters")
	}
	for _, c := range id {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("%q: no spaces or control characters", id)
		}
	}
	return nil
}
