package signing

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/events"
	"github.com/google/go-cmp/cmp"
)

func TestVerifyValidDecision(t *testing.T) {
	s, pub := mustKey(t, "k1")
	ks := mustKeySet(t, []PublicKey{pub}, t0.Add(time.Minute))
	req := requestEnv(t, "1001")
	ref := refOf(t, req)
	for name, d := range map[string]events.ApprovalDecided{
		"approve once":    approve("alice", events.ScopeOnce, t0.Add(time.Minute)),
		"approve session": approve("alice", events.ScopeSession, t0.Add(time.Minute)),
		"deny":            deny("alice", t0.Add(time.Minute)),
		"expired":         expiry(t0.Add(16 * time.Minute)),
		"at the deadline": approve("alice", events.ScopeOnce, t0.Add(15*time.Minute)),
	} {
		t.Run(name, func(t *testing.T) {
			env := signed(t, s, ref, "2001", d)
			got, err := ks.Verified(env, ref)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := d
			want.KeyID = "k1"
			want.Signature = got.Signature
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

// expiry is the service's "expired" decision, decided at at.
func expiry(at time.Time) events.ApprovalDecided {
	return events.ApprovalDecided{Decision: events.ApprovalExpired, ReasonCode: events.ReasonApprovalExpired,
		Approver: events.Actor{Type: events.ActorSystem, ID: serviceID}, DecidedAt: events.At(at)}
}

// TestVerifyRejects covers every way a decision must fail: forged, moved to
// another request, tampered in each signed field, late, partial.
func TestVerifyRejects(t *testing.T) {
	s, pub := mustKey(t, "k1")
	other, otherPub := mustKey(t, "k2")
	forger, _ := mustKey(t, "k1") // same key id, different key
	stranger, _ := mustKey(t, "k9")
	ks := mustKeySet(t, []PublicKey{pub, otherPub}, t0.Add(time.Minute))
	base := refOf(t, requestEnv(t, "1001"))
	at := t0.Add(time.Minute)

	type tc struct {
		name string
		// build returns the decision event and the ref to verify against.
		build func() (*events.Envelope, RequestRef)
		want  Code
	}
	good := func() *events.Envelope { return signed(t, s, base, "2001", approve("alice", events.ScopeOnce, at)) }
	// tamper signs correctly, then edits the payload after
	tamper := func(f func(*events.ApprovalDecided)) func() (*events.Envelope, RequestRef) {
		return func() (*events.Envelope, RequestRef) {
			env := good()
			p, _ := env.DecodePayload()
			d := p.(*events.ApprovalDecided)
			f(d)
			if err := env.SetPayload(d); err != nil {
				t.Fatal(err)
			}
			return env, base
		}
	}
	tamperEnv := func(f func(*events.Envelope)) func() (*events.Envelope, RequestRef) {
		return func() (*events.Envelope, RequestRef) { env := good(); f(env); return env, base }
	}
	tamperRef := func(f func(*RequestRef)) func() (*events.Envelope, RequestRef) {
		return func() (*events.Envelope, RequestRef) {
			ref := base
			ref.Scopes = append([]events.ApprovalScope(nil), base.Scopes...)
			f(&ref)
			return good(), ref
		}
	}
	cases := []tc{
		{"forged with another key under a trusted id", func() (*events.Envelope, RequestRef) {
			return signed(t, forger, base, "2001", approve("alice", events.ScopeOnce, at)), base
		}, CodeBadSignature},
		{"unknown key id", func() (*events.Envelope, RequestRef) {
			return signed(t, stranger, base, "2001", approve("alice", events.ScopeOnce, at)), base
		}, CodeUnknownKey},
		{"other approval id", tamperRef(func(r *RequestRef) { r.ApprovalID = "1002" }), CodeApprovalMismatch},
		{"other session", tamperRef(func(r *RequestRef) { r.SessionID = "sess-2" }), CodeSessionMismatch},
		{"other tenant", tamperRef(func(r *RequestRef) { r.Tenant = "other" }), CodeSessionMismatch},
		{"other request event", tamperRef(func(r *RequestRef) { r.RequestEventID = "1003" }), CodeRequestMismatch},
		{"moved envelope: approval id", tamperEnv(func(e *events.Envelope) { e.ApprovalID = "1002" }), CodeApprovalMismatch},
		{"moved envelope: session", tamperEnv(func(e *events.Envelope) { e.SessionID = "sess-2" }), CodeSessionMismatch},
		{"moved envelope: parent", tamperEnv(func(e *events.Envelope) { e.ParentEventID = "1003" }), CodeRequestMismatch},
		{"tampered event id", tamperEnv(func(e *events.Envelope) { e.EventID = "2002" }), CodeBadSignature},
		{"tampered decision", tamper(func(d *events.ApprovalDecided) {
			d.Decision = events.ApprovalDenied
			d.ReasonCode = events.ReasonApprovalDenied
			d.Scope = ""
		}), CodeBadSignature},
		{"tampered reason code (partial made final)", func() (*events.Envelope, RequestRef) {
			env := signed(t, s, base, "2001", partial("alice", events.ScopeOnce, at))
			p, _ := env.DecodePayload()
			d := p.(*events.ApprovalDecided)
			d.ReasonCode = events.ReasonApproved
			_ = env.SetPayload(d)
			return env, base
		}, CodeBadSignature},
		{"tampered scope", tamper(func(d *events.ApprovalDecided) {
			d.Scope = events.ScopeSession
			d.ReasonCode = events.ReasonApprovedForSession
		}), CodeBadSignature},
		{"tampered approver id", tamper(func(d *events.ApprovalDecided) { d.Approver.ID = "mallory" }), CodeBadSignature},
		{"tampered approver type", tamper(func(d *events.ApprovalDecided) { d.Approver.Type = events.ActorSystem }), CodeBadSignature},
		{"tampered comment", tamper(func(d *events.ApprovalDecided) { d.Comment = "fine" }), CodeBadSignature},
		{"tampered decided_at", tamper(func(d *events.ApprovalDecided) { d.DecidedAt = events.At(at.Add(time.Microsecond)) }), CodeBadSignature},
		{"tampered key id to another trusted key", tamper(func(d *events.ApprovalDecided) { d.KeyID = "k2" }), CodeBadSignature},
		{"signature of another decision", tamper(func(d *events.ApprovalDecided) {
			o := signed(t, s, base, "2009", approve("alice", events.ScopeOnce, at))
			p, _ := o.DecodePayload()
			d.Signature = p.(*events.ApprovalDecided).Signature
		}), CodeBadSignature},
		{"signature not base64", tamper(func(d *events.ApprovalDecided) { d.Signature = "!!" }), CodeBadSignature},
		{"signature empty", tamper(func(d *events.ApprovalDecided) { d.Signature = "" }), CodeBadSignature},
		{"signature truncated", tamper(func(d *events.ApprovalDecided) {
			raw, _ := base64.StdEncoding.DecodeString(d.Signature)
			d.Signature = base64.StdEncoding.EncodeToString(raw[:63])
		}), CodeBadSignature},
		{"request subject changed", tamperRef(func(r *RequestRef) { r.SubjectEventID = "901" }), CodeBadSignature},
		{"request kind changed", tamperRef(func(r *RequestRef) { r.Kind = events.ApprovalKindEgress }), CodeBadSignature},
		{"request rule changed", tamperRef(func(r *RequestRef) { r.RuleID = "other-rule" }), CodeBadSignature},
		{"request requester changed", tamperRef(func(r *RequestRef) { r.Requester.ID = "claude-2" }), CodeBadSignature},
		{"request deadline changed", tamperRef(func(r *RequestRef) { r.ExpiresAt = r.ExpiresAt.Add(time.Hour) }), CodeBadSignature},
		{"scope not offered", tamperRef(func(r *RequestRef) { r.Scopes = []events.ApprovalScope{events.ScopeSession} }), CodeScopeNotOffered},
		{"approved after the deadline", func() (*events.Envelope, RequestRef) {
			return signed(t, s, base, "2001", approve("alice", events.ScopeOnce, base.ExpiresAt.Add(time.Microsecond))), base
		}, CodeExpired},
		{"denied after the deadline", func() (*events.Envelope, RequestRef) {
			return signed(t, s, base, "2001", deny("alice", base.ExpiresAt.Add(time.Second))), base
		}, CodeExpired},
		{"expired before the deadline", func() (*events.Envelope, RequestRef) {
			d := events.ApprovalDecided{Decision: events.ApprovalExpired, ReasonCode: events.ReasonApprovalExpired,
				Approver: events.Actor{Type: events.ActorSystem, ID: serviceID}, DecidedAt: events.At(at)}
			return signed(t, s, base, "2001", d), base
		}, CodeNotDue},
		{"approved with a denial's reason", func() (*events.Envelope, RequestRef) {
			d := approve("alice", events.ScopeOnce, at)
			d.ReasonCode = events.ReasonApprovalDenied
			return signed(t, s, base, "2001", d), base
		}, CodeInvalidDecision},
		{"partial approval", func() (*events.Envelope, RequestRef) {
			return signed(t, s, base, "2001", partial("alice", events.ScopeOnce, at)), base
		}, CodePartial},
		{"not a decision", func() (*events.Envelope, RequestRef) { return requestEnv(t, "1001"), base }, CodeMalformed},
		{"signed by the other trusted key", func() (*events.Envelope, RequestRef) {
			return signed(t, other, base, "2001", approve("alice", events.ScopeOnce, at)), base
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, ref := c.build()
			err := ks.Verify(env, ref)
			if got := CodeOf(err); got != c.want {
				t.Fatalf("Verify = %v (code %q), want code %q", err, got, c.want)
			}
			if c.want != "" && !errors.Is(err, sentinelOf(c.want)) {
				t.Errorf("errors.Is(%v, %v) = false", err, sentinelOf(c.want))
			}
		})
	}
}

func TestSignRefusesAnotherRequest(t *testing.T) {
	s, _ := mustKey(t, "k1")
	ref := refOf(t, requestEnv(t, "1001"))
	env := decisionEnv(t, ref, "2001", approve("alice", events.ScopeOnce, t0))
	other := ref
	other.ApprovalID = "1002"
	if err := s.Sign(env, other); !errors.Is(err, ErrApprovalMismatch) {
		t.Fatalf("Sign for another approval = %v, want ErrApprovalMismatch", err)
	}
	if err := (Signer{}).Sign(env, ref); err == nil {
		t.Fatal("zero Signer signed")
	}
}

func TestReplayGuard(t *testing.T) {
	s, pub := mustKey(t, "k1")
	ks := mustKeySet(t, []PublicKey{pub}, t0)
	ref := refOf(t, requestEnv(t, "1001"))
	env := signed(t, s, ref, "2001", approve("alice", events.ScopeOnce, t0.Add(time.Minute)))
	clk := newClock(t0.Add(time.Minute))
	g := NewReplayGuard(clk.now)

	if _, err := g.Accept(ks, env, ref); err != nil {
		t.Fatalf("first Accept: %v", err)
	}
	if _, err := g.Accept(ks, env, ref); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed Accept = %v, want ErrReplay", err)
	}
	// The same decision re-signed under a fresh event id is still the same
	// approval: one action per approval id.
	again := signed(t, s, ref, "2002", approve("alice", events.ScopeOnce, t0.Add(2*time.Minute)))
	if _, err := g.Accept(ks, again, ref); !errors.Is(err, ErrReplay) {
		t.Fatalf("second decision for a used approval = %v, want ErrReplay", err)
	}
	// After the deadline the approval is refused as expired and forgotten.
	clk.add(time.Hour)
	if _, err := g.Accept(ks, env, ref); !errors.Is(err, ErrExpired) {
		t.Fatalf("Accept after the deadline = %v, want ErrExpired", err)
	}
	if n := g.Len(); n != 0 {
		t.Errorf("guard remembers %d approvals after their deadline, want 0", n)
	}
	// A forged decision never claims the approval id.
	ref2 := refOf(t, requestEnv(t, "1005", func(p *events.ApprovalRequested) { p.ExpiresAt = events.At(t0.Add(2 * time.Hour)) }))
	forger, _ := mustKey(t, "k1")
	if _, err := g.Accept(ks, signed(t, forger, ref2, "2003", approve("alice", events.ScopeOnce, t0.Add(61*time.Minute))), ref2); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged Accept = %v, want ErrBadSignature", err)
	}
	if _, err := g.Accept(ks, signed(t, s, ref2, "2004", approve("alice", events.ScopeOnce, t0.Add(61*time.Minute))), ref2); err != nil {
		t.Fatalf("genuine Accept after a forged one: %v", err)
	}
}

func TestKeyRotation(t *testing.T) {
	oldS, oldP := mustKey(t, "2026-01")
	newS, newP := mustKey(t, "2026-05")
	oldP.NotAfter = t0.Add(time.Hour)
	ref := refOf(t, requestEnv(t, "1001"))
	byOld := signed(t, oldS, ref, "2001", approve("alice", events.ScopeOnce, t0.Add(time.Minute)))
	byNew := signed(t, newS, ref, "2002", approve("alice", events.ScopeOnce, t0.Add(time.Minute)))

	data, err := MarshalKeySet([]PublicKey{oldP, newP})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at          time.Time
		old, newKey Code
	}{
		{t0.Add(30 * time.Minute), "", ""},
		{t0.Add(time.Hour), "", ""},
		{t0.Add(time.Hour + time.Second), CodeKeyRetired, ""},
	} {
		ks, err := ParseKeySet(data, WithKeyClock(func() time.Time { return c.at }))
		if err != nil {
			t.Fatal(err)
		}
		if got := CodeOf(ks.Verify(byOld, ref)); got != c.old {
			t.Errorf("at %s old key: code %q, want %q", c.at, got, c.old)
		}
		if got := CodeOf(ks.Verify(byNew, ref)); got != c.newKey {
			t.Errorf("at %s new key: code %q, want %q", c.at, got, c.newKey)
		}
	}
	// A runner that trusts only the old key set rejects the new key id.
	onlyOld := mustKeySet(t, []PublicKey{oldP}, t0)
	if err := onlyOld.Verify(byNew, ref); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key id: %v, want ErrUnknownKey", err)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	s1, p1 := mustKey(t, "k1")
	_, p2 := mustKey(t, "k2")
	p2.NotAfter = t0.Add(24 * time.Hour)

	// Signer round trip.
	priv, err := MarshalSigner(s1)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "signer.pem"), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadSigner(filepath.Join(dir, "signer.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if loaded.KeyID() != "k1" || !bytes.Equal(loaded.Public().Key, p1.Key) {
		t.Fatalf("loaded signer %s, want k1 with the same public key", loaded.KeyID())
	}

	// JSON key set file, and a PEM directory.
	js, err := MarshalKeySet([]PublicKey{p1, p2})
	if err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(jsonPath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	pemDir := filepath.Join(dir, "pem")
	if err := os.Mkdir(pemDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []PublicKey{p1, p2} {
		b, err := MarshalPublicPEM(p)
		if err != nil {
			t.Fatal(err)
		}
		// File names differ from key ids: the Key-Id header wins.
		if err := os.WriteFile(filepath.Join(pemDir, "file-"+p.ID+".pem"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	yamlPath := filepath.Join(dir, "keys.yaml")
	yml := "keys:\n  - id: k1\n    public_key: " + base64.StdEncoding.EncodeToString(p1.Key) + "\n"
	if err := os.WriteFile(yamlPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	want := []PublicKey{p1, p2}
	for _, path := range []string{jsonPath, pemDir} {
		ks, err := LoadKeySet(path)
		if err != nil {
			t.Fatalf("LoadKeySet(%s): %v", path, err)
		}
		if diff := cmp.Diff(want, ks.Keys()); diff != "" {
			t.Errorf("LoadKeySet(%s) (-want +got):\n%s", path, diff)
		}
	}
	ks, err := LoadKeySet(yamlPath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]PublicKey{p1}, ks.Keys()); diff != "" {
		t.Errorf("YAML key set (-want +got):\n%s", diff)
	}

	for name, doc := range map[string]string{
		"unknown field":  `{"keys":[{"id":"k1","public_key":"` + base64.StdEncoding.EncodeToString(p1.Key) + `","not_afer":"2026-01-01T00:00:00Z"}]}`,
		"short key":      `{"keys":[{"id":"k1","public_key":"AAAA"}]}`,
		"duplicate id":   `{"keys":[{"id":"k1","public_key":"` + base64.StdEncoding.EncodeToString(p1.Key) + `"},{"id":"k1","public_key":"` + base64.StdEncoding.EncodeToString(p2.Key) + `"}]}`,
		"bad id":         `{"keys":[{"id":"k 1","public_key":"` + base64.StdEncoding.EncodeToString(p1.Key) + `"}]}`,
		"bad not_after":  `{"keys":[{"id":"k1","public_key":"` + base64.StdEncoding.EncodeToString(p1.Key) + `","not_after":"tomorrow"}]}`,
		"no keys":        `{"keys":[]}`,
		"not a document": `[`,
	} {
		if _, err := ParseKeySet([]byte(doc)); !errors.Is(err, ErrKeyFile) {
			t.Errorf("%s: ParseKeySet = %v, want ErrKeyFile", name, err)
		}
	}
}

// FuzzVerify mutates the wire bytes of a signed decision: whatever decodes
// and still verifies must sign exactly what the original signed.
func FuzzVerify(f *testing.F) {
	s, pub := mustKey(f, "k1")
	ks := mustKeySet(f, []PublicKey{pub}, t0)
	ref := refOf(f, requestEnv(f, "1001"))
	orig := signed(f, s, ref, "2001", approve("alice", events.ScopeOnce, t0.Add(time.Minute)))
	p, _ := orig.DecodePayload()
	origBytes := SigningBytes(orig, p.(*events.ApprovalDecided), ref)
	wire, err := events.Marshal(orig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wire)
	f.Add(bytes.Replace(wire, []byte(`"once"`), []byte(`"session"`), 1))
	f.Add(bytes.Replace(wire, []byte(`"alice"`), []byte(`"mallory"`), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		var env events.Envelope
		if err := env.UnmarshalJSON(data); err != nil {
			return
		}
		d, err := ks.Verified(&env, ref)
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("Verify error without a code: %v", err)
			}
			return
		}
		d.Signature = ""
		if got := SigningBytes(&env, d, ref); !bytes.Equal(got, origBytes) {
			t.Fatalf("a mutated decision verified:\n%q", data)
		}
	})
}
