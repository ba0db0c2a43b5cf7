package events

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// A chain is the sequence of events one emitter writes into one session: it
// is keyed by (session_id, runner_id). runner_id names the emitting process
// (a runner, the approvals service, a detector), so several emitters can
// write into one session without sharing a counter. In each chain seq runs
// 1, 2, 3, … without gaps, and
//
//	hash = hex(sha256(prev_hash || canonical event without its hash field))
//
// where prev_hash is the previous event's hash as 64 lower-case hex
// characters (GenesisHash for seq 1) and || is byte concatenation of that
// ASCII text with the canonical bytes.

// GenesisHash is the prev_hash of the first event (seq 1) of every chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ChainKey identifies a chain.
type ChainKey struct {
	SessionID string
	RunnerID  string
}

func (k ChainKey) String() string { return k.SessionID + "/" + k.RunnerID }

// ErrChainKey reports an event stamped on a chain of another session/runner.
var ErrChainKey = errors.New("events: event does not belong to this chain")

// Chain stamps seq, prev_hash and hash on the events of one chain. It is
// safe for concurrent use; events must be sent in the order they were
// stamped.
type Chain struct {
	mu   sync.Mutex
	key  ChainKey
	seq  uint64
	prev string
	// Reused encoding buffers: the wire bytes and the hashed bytes.
	buf, scratch []byte
}

// NewChain starts a chain at seq 1.
func NewChain(k ChainKey) *Chain { return &Chain{key: k, prev: GenesisHash} }

// ResumeChain continues a chain whose last event had seq and hash, for an
// emitter that restarts and finds its head in the spool or in storage.
func ResumeChain(k ChainKey, seq uint64, hash string) *Chain {
	if seq == 0 {
		hash = GenesisHash
	}
	return &Chain{key: k, seq: seq, prev: hash}
}

// Key returns the chain's key.
func (c *Chain) Key() ChainKey { return c.key }

// Head returns the seq and hash of the last stamped event (0 and
// GenesisHash before the first).
func (c *Chain) Head() (seq uint64, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq, c.prev
}

// Stamp sets env's session and runner (when empty), seq, prev_hash and hash,
// then validates the result. The chain advances only when env is valid, so a
// refused event leaves no gap. The error is *ValidationError, ErrChainKey or
// ErrNotCanonical.
func (c *Chain) Stamp(env *Envelope) error {
	_, err := c.stamp(nil, env, false)
	return err
}

// StampAppend is Stamp that also appends env's wire bytes (what Marshal
// returns) to dst, saving the producer a second encoding.
func (c *Chain) StampAppend(dst []byte, env *Envelope) ([]byte, error) {
	return c.stamp(dst, env, true)
}

func (c *Chain) stamp(dst []byte, env *Envelope, out bool) ([]byte, error) {
	if env.SessionID == "" {
		env.SessionID = c.key.SessionID
	}
	if env.RunnerID == "" {
		env.RunnerID = c.key.RunnerID
	}
	if env.Key() != c.key {
		return dst, fmt.Errorf("%w: event %s is %s, chain is %s", ErrChainKey, env.EventID, env.Key(), c.key)
	}
	env.EventTime = normTime(env.EventTime)

	c.mu.Lock()
	defer c.mu.Unlock()
	env.Seq = c.seq + 1
	env.PrevHash = c.prev
	var err error
	if c.buf, c.scratch, err = appendHash(c.buf, c.scratch, env); err != nil {
		return dst, err
	}
	if err := ValidateBytes(c.buf); err != nil {
		return dst, err
	}
	c.seq, c.prev = env.Seq, env.Hash
	if out {
		dst = append(dst, c.buf...)
	}
	return dst, nil
}

// appendHash computes and sets env.Hash and returns the canonical wire
// bytes of env (hash included) in dst, using scratch for the hashed bytes.
// The event is encoded once; the hash member is spliced in at its sorted
// place.
func appendHash(dst, scratch []byte, env *Envelope) (wire, scratchOut []byte, err error) {
	scratch = append(scratch[:0], env.PrevHash...)
	scratch, at, err := encodeEnvelope(scratch, env, false)
	if err != nil {
		return dst, scratch, err
	}
	sum := sha256.Sum256(scratch)
	var hx [64]byte
	hex.Encode(hx[:], sum[:])
	env.Hash = string(hx[:])
	body := scratch[len(env.PrevHash):]
	at -= len(env.PrevHash)
	dst = append(dst[:0], body[:at]...)
	dst = append(dst, `,"hash":"`...)
	dst = append(dst, hx[:]...)
	dst = append(dst, '"')
	return append(dst, body[at:]...), scratch, nil
}

// ComputeHash returns the hash env should carry given its prev_hash and
// content.
func ComputeHash(env *Envelope) (string, error) {
	b := make([]byte, 0, 1024)
	b = append(b, env.PrevHash...)
	b, err := appendEnvelope(b, env, false)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
