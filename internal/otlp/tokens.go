package otlp

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrTokenFile reports a bad token file; the message names the entry and
// field.
var ErrTokenFile = errors.New("otlp: bad token file")

// TokenFile is the standalone receiver's list of tenants, one bearer token
// each. Only the token's sha256 is stored:
//
//	# otlp-tokens.yaml
//	tenants:
//	  - tenant: acme                 # tenant written on the events
//	    token_sha256: 9f86d08…       # hex sha256 of the bearer token
//	    text: hash                   # store | hash (default) | drop
//	    operator: alice@acme.example # optional: who the agents run for
//
// `ingest otlp-token` prints a new token and its token_sha256 line. A
// tenant may be listed more than once (one entry per token, to rotate).
type TokenFile struct {
	Tenants []TokenEntry `yaml:"tenants"`
}

// TokenEntry is one tenant's token and settings.
type TokenEntry struct {
	Tenant      string `yaml:"tenant"`
	TokenSHA256 string `yaml:"token_sha256"`
	Text        string `yaml:"text"`
	Operator    string `yaml:"operator"`
}

var tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ParseTokens reads a token file.
func ParseTokens(data []byte) (*Tokens, error) {
	var f TokenFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenFile, err)
	}
	if len(f.Tenants) == 0 {
		return nil, fmt.Errorf("%w: tenants: none listed", ErrTokenFile)
	}
	t := &Tokens{}
	seen := map[[32]byte]bool{}
	for i, e := range f.Tenants {
		where := fmt.Sprintf("tenants[%d]", i)
		if !tenantRE.MatchString(e.Tenant) {
			return nil, fmt.Errorf("%w: %s.tenant %q: want lower-case letters, digits and . _ -, at most 64", ErrTokenFile, where, e.Tenant)
		}
		sum, err := hex.DecodeString(e.TokenSHA256)
		if err != nil || len(sum) != 32 || strings.ToLower(e.TokenSHA256) != e.TokenSHA256 {
			return nil, fmt.Errorf("%w: %s.token_sha256: want 64 lower-case hex digits", ErrTokenFile, where)
		}
		mode, err := ParseTextMode(e.Text)
		if err != nil {
			return nil, fmt.Errorf("%w: %s.text: %v", ErrTokenFile, where, err)
		}
		var h [32]byte
		copy(h[:], sum)
		if seen[h] {
			return nil, fmt.Errorf("%w: %s.token_sha256: the same token is listed twice", ErrTokenFile, where)
		}
		seen[h] = true
		t.entries = append(t.entries, tokenEntry{hash: h, tenant: Tenant{Name: e.Tenant, Text: mode, Operator: e.Operator}})
	}
	return t, nil
}

// LoadTokens reads a token file from disk.
func LoadTokens(file string) (*Tokens, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenFile, err)
	}
	t, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}

// Tokens authenticates requests by bearer token against a token file.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	hash   [32]byte
	tenant Tenant
}

// Authenticate implements Authenticator: the sha256 of the presented token
// is compared in constant time with every entry's, so the time taken
// says nothing about which entry (or how much of one) matched.
func (t *Tokens) Authenticate(r *http.Request) (Tenant, error) {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Tenant{}, ErrUnauthenticated
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	found := -1
	for i := range t.entries {
		if subtle.ConstantTimeCompare(sum[:], t.entries[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Tenant{}, ErrUnauthenticated
	}
	return t.entries[found].tenant, nil
}

// GenerateToken returns a new random bearer token and its hex sha256 for
// the token file.
func GenerateToken() (token, sum string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = "aao_" + base64.RawURLEncoding.EncodeToString(b[:])
	s := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(s[:]), nil
}
