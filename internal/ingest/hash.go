package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"

	"github.com/agentaudit/agentaudit/internal/events"
)

var hashMember = []byte(`,"hash":"`)

// contentOK reports whether env's content matches its hash:
// hash = sha256(prev_hash || canonical event without its hash member).
// Producers send the canonical encoding, so the record bytes with the hash
// member cut out are already what was hashed; hashing them directly skips
// re-encoding the event (events.ComputeHash), which was a fifth of the
// decode stage. When that does not match (edited, or not canonical) the
// answer comes from ComputeHash.
func contentOK(raw []byte, env *events.Envelope) bool {
	if fastHashOK(raw, env.PrevHash, env.Hash) {
		return true
	}
	h, err := events.ComputeHash(env)
	return err == nil && h == env.Hash
}

func fastHashOK(raw []byte, prev, hash string) bool {
	// The first `,"hash":"` is the top-level member: in canonical order
	// only actor, agent, approval_id, event_id, event_time and event_type
	// precede it, and a quote inside their strings is escaped.
	i := bytes.Index(raw, hashMember)
	end := i + len(hashMember) + 64
	if i < 0 || len(hash) != 64 || end >= len(raw) || raw[end] != '"' || string(raw[i+len(hashMember):end]) != hash {
		return false
	}
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write(raw[:i])
	h.Write(raw[end+1:])
	var sum [sha256.Size]byte
	var hx [64]byte
	hex.Encode(hx[:], h.Sum(sum[:0]))
	return string(hx[:]) == hash
}
