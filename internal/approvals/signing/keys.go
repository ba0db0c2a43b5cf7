package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"go.yaml.in/yaml/v3"
)

// ErrKeyFile reports a key file or key set that cannot be used.
var ErrKeyFile = errors.New("approvals: bad key file")

// maxKeyFile bounds what LoadKeySet and LoadSigner read: key files are tiny.
const maxKeyFile = 1 << 20

// PublicKey is one trusted verification key. A key with a NotAfter verifies
// decisions until that instant (a retired key stays usable while decisions
// signed before the rotation are still in flight); the zero NotAfter never
// retires.
type PublicKey struct {
	ID       string
	Key      ed25519.PublicKey
	NotAfter time.Time
}

// KeySet is the set of public keys a verifier trusts, by key id. It is
// immutable once built and safe for concurrent use.
type KeySet struct {
	keys map[string]PublicKey
	now  func() time.Time
}

// KeySetOption configures a KeySet.
type KeySetOption func(*KeySet)

// WithKeyClock makes the key set read the current time (for not_after)
// from now. For tests.
func WithKeyClock(now func() time.Time) KeySetOption { return func(k *KeySet) { k.now = now } }

// NewKeySet returns a key set of keys. Key ids must be unique and keys
// 32 bytes.
func NewKeySet(keys []PublicKey, opts ...KeySetOption) (*KeySet, error) {
	ks := &KeySet{keys: make(map[string]PublicKey, len(keys)), now: time.Now}
	for _, k := range keys {
		if err := checkKeyID(k.ID); err != nil {
			return nil, err
		}
		if len(k.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: key %q: ed25519 public key must be %d bytes, got %d", ErrKeyFile, k.ID, ed25519.PublicKeySize, len(k.Key))
		}
		if _, dup := ks.keys[k.ID]; dup {
			return nil, fmt.Errorf("%w: duplicate key id %q", ErrKeyFile, k.ID)
		}
		k.Key = slices.Clone(k.Key)
		ks.keys[k.ID] = k
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrKeyFile)
	}
	for _, o := range opts {
		o(ks)
	}
	return ks, nil
}

// Keys returns the keys sorted by id.
func (ks *KeySet) Keys() []PublicKey {
	out := make([]PublicKey, 0, len(ks.keys))
	for _, k := range ks.keys {
		k.Key = slices.Clone(k.Key)
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b PublicKey) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// keySetFile is the JSON/YAML form of a key set.
type keySetFile struct {
	Keys []keyEntry `json:"keys" yaml:"keys"`
}

type keyEntry struct {
	ID        string `json:"id" yaml:"id"`
	PublicKey string `json:"public_key" yaml:"public_key"` // base64 of the 32 raw bytes
	NotAfter  string `json:"not_after,omitempty" yaml:"not_after,omitempty"`
}

// MarshalKeySet encodes keys as the JSON document LoadKeySet and
// ParseKeySet read:
//
//	{"keys":[{"id":"k1","public_key":"<base64>","not_after":"2026-01-01T00:00:00Z"}]}
func MarshalKeySet(keys []PublicKey) ([]byte, error) {
	f := keySetFile{Keys: make([]keyEntry, 0, len(keys))}
	for _, k := range keys {
		if len(k.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: key %q: not an ed25519 public key", ErrKeyFile, k.ID)
		}
		e := keyEntry{ID: k.ID, PublicKey: base64.StdEncoding.EncodeToString(k.Key)}
		if !k.NotAfter.IsZero() {
			e.NotAfter = k.NotAfter.UTC().Format(time.RFC3339Nano)
		}
		f.Keys = append(f.Keys, e)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseKeySet reads a key set document in JSON or YAML (see MarshalKeySet).
// Unknown fields are an error, so a misspelt not_after cannot silently
// leave a retired key trusted forever.
func ParseKeySet(data []byte, opts ...KeySetOption) (*KeySet, error) {
	var f keySetFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	keys := make([]PublicKey, 0, len(f.Keys))
	for i, e := range f.Keys {
		raw, err := base64.StdEncoding.DecodeString(e.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: keys[%d].public_key: %v", ErrKeyFile, i, err)
		}
		k := PublicKey{ID: e.ID, Key: raw}
		if e.NotAfter != "" {
			if k.NotAfter, err = time.Parse(time.RFC3339Nano, e.NotAfter); err != nil {
				return nil, fmt.Errorf("%w: keys[%d].not_after: %v", ErrKeyFile, i, err)
			}
		}
		keys = append(keys, k)
	}
	return NewKeySet(keys, opts...)
}

// PEM block types and headers of this package's key files.
const (
	pemPublic      = "PUBLIC KEY"  // PKIX, as openssl writes it
	pemPrivate     = "PRIVATE KEY" // PKCS #8
	pemHdrKeyID    = "Key-Id"
	pemHdrNotAfter = "Not-After"
)

// LoadKeySet reads a key set from path: a JSON or YAML document (see
// MarshalKeySet), or a directory of PEM files, one "PUBLIC KEY" (PKIX) block
// each, whose key id is the Key-Id header or else the file name without
// ".pem", and whose optional Not-After header (RFC 3339) retires it.
func LoadKeySet(path string, opts ...KeySetOption) (*KeySet, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	if !fi.IsDir() {
		data, err := readBounded(path)
		if err != nil {
			return nil, err
		}
		return ParseKeySet(data, opts...)
	}
	names, err := filepath.Glob(filepath.Join(path, "*.pem"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	slices.Sort(names)
	keys := make([]PublicKey, 0, len(names))
	for _, name := range names {
		data, err := readBounded(name)
		if err != nil {
			return nil, err
		}
		k, err := ParsePublicPEM(data, strings.TrimSuffix(filepath.Base(name), ".pem"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		keys = append(keys, k)
	}
	return NewKeySet(keys, opts...)
}

// ParsePublicPEM reads one PKIX "PUBLIC KEY" block; defaultID names it when
// the block has no Key-Id header.
func ParsePublicPEM(data []byte, defaultID string) (PublicKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != pemPublic {
		return PublicKey{}, fmt.Errorf("%w: no %q PEM block", ErrKeyFile, pemPublic)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	ed, ok := pub.(ed25519.PublicKey)
	if !ok {
		return PublicKey{}, fmt.Errorf("%w: not an ed25519 key", ErrKeyFile)
	}
	k := PublicKey{ID: defaultID, Key: ed}
	if id := blk.Headers[pemHdrKeyID]; id != "" {
		k.ID = id
	}
	if na := blk.Headers[pemHdrNotAfter]; na != "" {
		if k.NotAfter, err = time.Parse(time.RFC3339Nano, na); err != nil {
			return PublicKey{}, fmt.Errorf("%w: %s: %v", ErrKeyFile, pemHdrNotAfter, err)
		}
	}
	return k, checkKeyID(k.ID)
}

// MarshalPublicPEM encodes k as a PKIX "PUBLIC KEY" block with Key-Id (and
// Not-After) headers.
func MarshalPublicPEM(k PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	h := map[string]string{pemHdrKeyID: k.ID}
	if !k.NotAfter.IsZero() {
		h[pemHdrNotAfter] = k.NotAfter.UTC().Format(time.RFC3339Nano)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Headers: h, Bytes: der}), nil
}

// MarshalSigner encodes the signer's private key as a PKCS #8 "PRIVATE KEY"
// block with a Key-Id header. The result is a secret: write it 0600.
func MarshalSigner(s Signer) ([]byte, error) {
	if s.priv == nil {
		return nil, errors.New("approvals: zero Signer")
	}
	der, err := x509.MarshalPKCS8PrivateKey(s.priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Headers: map[string]string{pemHdrKeyID: s.keyID}, Bytes: der}), nil
}

// ParseSigner reads a key written by MarshalSigner.
func ParseSigner(data []byte) (Signer, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != pemPrivate {
		return Signer{}, fmt.Errorf("%w: no %q PEM block", ErrKeyFile, pemPrivate)
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return Signer{}, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	ed, ok := key.(ed25519.PrivateKey)
	if !ok {
		return Signer{}, fmt.Errorf("%w: not an ed25519 key", ErrKeyFile)
	}
	return NewSigner(blk.Headers[pemHdrKeyID], ed)
}

// LoadSigner reads a signer from a file written with MarshalSigner.
func LoadSigner(path string) (Signer, error) {
	data, err := readBounded(path)
	if err != nil {
		return Signer{}, err
	}
	return ParseSigner(data)
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyFile, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKeyFile, path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrKeyFile, path, maxKeyFile)
	}
	return data, nil
}

// checkKeyID keeps key ids printable and short: they travel in events and
// PEM headers.
func checkKeyID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: key id must be 1..64 characters, got %q", ErrKeyFile, id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: key id %q: only letters, digits, '-', '_' and '.'", ErrKeyFile, id)
		}
	}
	return nil
}

// Verify checks that env is an authentic, final approval.decided for req:
// the envelope names req's approval id, tenant and session and answers
// req's approval.requested event; the key id is in the set and not retired
// now; the signature verifies; and the outcome fits the request (an offered
// scope; approvals and denials no later than req.ExpiresAt). A partial
// approval of a two-person request verifies but is refused with ErrPartial.
// Errors are *Error with the failing Code. Verify is stateless: use a
// ReplayGuard to act on each approval at most once.
func (ks *KeySet) Verify(env *events.Envelope, req RequestRef) error {
	_, err := ks.Verified(env, req)
	return err
}

// Verified is Verify returning the verified decision.
func (ks *KeySet) Verified(env *events.Envelope, req RequestRef) (*events.ApprovalDecided, error) {
	d, err := ks.VerifyAt(env, req, ks.now())
	if err != nil {
		return nil, err
	}
	if isPartial(d) {
		return nil, Fail(CodePartial, "approver %s; the request needs a second approver", d.Approver.ID)
	}
	return d, nil
}

// VerifyAt is Verified with key retirement judged at the instant at (the
// service judges a decision by when it was made, not when it is read). It
// accepts partial approvals; callers decide what they mean.
func (ks *KeySet) VerifyAt(env *events.Envelope, req RequestRef, at time.Time) (*events.ApprovalDecided, error) {
	d, err := DecisionOf(env)
	if err != nil {
		return nil, err
	}
	if err := matchRequest(env, req); err != nil {
		return nil, err
	}
	k, ok := ks.keys[d.KeyID]
	if !ok {
		return nil, Fail(CodeUnknownKey, "key id %q", d.KeyID)
	}
	if !k.NotAfter.IsZero() && at.After(k.NotAfter) {
		return nil, Fail(CodeKeyRetired, "key %q retired at %s", k.ID, k.NotAfter.UTC().Format(time.RFC3339))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(d.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, Fail(CodeBadSignature, "signature is not %d bytes of base64", ed25519.SignatureSize)
	}
	signed := *d
	signed.Signature = ""
	if !ed25519.Verify(k.Key, SigningBytes(env, &signed, req), sig) {
		return nil, Fail(CodeBadSignature, "key %q", k.ID)
	}
	if err := checkOutcome(d, req); err != nil {
		return nil, err
	}
	return d, nil
}

// ReplayGuard lets a runner act on at most one decision per approval id,
// however often a valid signed decision is delivered (Kafka redelivery, or a
// copy written by someone with topic access). It remembers an approval id
// until its request's deadline; after the deadline it refuses the decision
// outright (the runner has denied the call as approval_expired by then), so
// memory stays bounded by the approvals in flight.
type ReplayGuard struct {
	mu   sync.Mutex
	used map[string]time.Time // approval id → expires_at
	now  func() time.Time
}

// NewReplayGuard returns an empty guard reading time from now (time.Now
// when nil).
func NewReplayGuard(now func() time.Time) *ReplayGuard {
	if now == nil {
		now = time.Now
	}
	return &ReplayGuard{used: make(map[string]time.Time), now: now}
}

// Accept verifies env against req with ks and, when it verifies, claims the
// approval id: the first call for an approval id returns the decision, every
// later one ErrReplay. A decision that arrives after req.ExpiresAt is
// refused with ErrExpired.
func (g *ReplayGuard) Accept(ks *KeySet, env *events.Envelope, req RequestRef) (*events.ApprovalDecided, error) {
	d, err := ks.Verified(env, req)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for id, exp := range g.used {
		if now.After(exp) {
			delete(g.used, id)
		}
	}
	if _, dup := g.used[req.ApprovalID]; dup {
		return nil, Fail(CodeReplay, "approval %s already used", req.ApprovalID)
	}
	if now.After(req.ExpiresAt) {
		return nil, Fail(CodeExpired, "received at %s, request expired at %s", stampOf(now), stampOf(req.ExpiresAt))
	}
	g.used[req.ApprovalID] = req.ExpiresAt
	return d, nil
}

// Len returns how many approval ids the guard remembers.
func (g *ReplayGuard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.used)
}
