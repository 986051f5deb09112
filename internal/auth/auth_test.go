package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

var secret = []byte("0123456789abcdef")

var ctx = context.Background()

func newPair(t *testing.T, cfg VerifierConfig) (*Signer, *Verifier) {
	t.Helper()
	s, err := NewSigner("unicom", secret)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Secrets == nil {
		cfg.Secrets = map[string][]byte{"unicom": secret}
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestVerify(t *testing.T) {
	s, v := newPair(t, VerifierConfig{})
	body := []byte("a batch")
	st := s.Sign(body)
	if err := v.Verify(ctx, &st, body); err != nil {
		t.Fatal(err)
	}
	// The same stamp again is a replay.
	if err := v.Verify(ctx, &st, body); !errors.Is(err, ErrReplay) || !errors.Is(err, dcsync.ErrUnauthenticated) {
		t.Fatalf("replay: %v", err)
	}
	st = s.Sign(body)
	for _, c := range []struct {
		name   string
		change func(st *Stamp, body []byte) []byte
		want   error
	}{
		{"body changed", func(_ *Stamp, b []byte) []byte { return append(b, '!') }, ErrBadSignature},
		{"from changed", func(st *Stamp, b []byte) []byte { st.From = "telecom"; return b }, dcsync.ErrUnknownPeer},
		{"timestamp changed", func(st *Stamp, b []byte) []byte { st.Timestamp++; return b }, ErrBadSignature},
		{"nonce changed", func(st *Stamp, b []byte) []byte { st.Nonce[0]++; return b }, ErrBadSignature},
		{"signature changed", func(st *Stamp, b []byte) []byte { st.Signature[31]++; return b }, ErrBadSignature},
	} {
		forged := st
		b := c.change(&forged, append([]byte(nil), body...))
		if err := v.Verify(ctx, &forged, b); !errors.Is(err, c.want) || !dcsync.IsPermanent(err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// The forgeries did not burn the genuine stamp's nonce.
	if err := v.Verify(ctx, &st, body); err != nil {
		t.Fatal(err)
	}
}

func TestWrongSecret(t *testing.T) {
	s, err := NewSigner("unicom", []byte("another secret of 32 bytes......"))
	if err != nil {
		t.Fatal(err)
	}
	_, v := newPair(t, VerifierConfig{})
	st := s.Sign(nil)
	if err := v.Verify(ctx, &st, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("%v, want ErrBadSignature", err)
	}
}

func TestStale(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, v := newPair(t, VerifierConfig{MaxSkew: time.Minute, Now: func() time.Time { return now }})
	for _, skew := range []time.Duration{-2 * time.Minute, 2 * time.Minute} {
		s.Now = func() time.Time { return now.Add(skew) }
		st := s.Sign(nil)
		if err := v.Verify(ctx, &st, nil); !errors.Is(err, ErrStale) {
			t.Errorf("skew %v: %v, want ErrStale", skew, err)
		}
	}
	s.Now = func() time.Time { return now.Add(-59 * time.Second) }
	st := s.Sign(nil)
	if err := v.Verify(ctx, &st, nil); err != nil {
		t.Fatalf("within the skew: %v", err)
	}
}

// A full replay cache forgets the oldest nonces but refuses every stamp not
// newer than them, so no replay gets through; fresh stamps still pass.
func TestReplayCacheBound(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, v := newPair(t, VerifierConfig{ReplayCache: 100, Now: func() time.Time { return now }})
	var stamps []Stamp
	for i := range 250 {
		s.Now = func() time.Time { return now.Add(time.Duration(i) * time.Millisecond) }
		st := s.Sign(nil)
		if err := v.Verify(ctx, &st, nil); err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, st)
	}
	if n := v.peers["unicom"].replay.len(); n > 100 {
		t.Fatalf("cache holds %d nonces, bound 100", n)
	}
	for i, st := range stamps {
		err := v.Verify(ctx, &st, nil)
		switch {
		case err == nil:
			t.Fatalf("stamp %d replayed", i)
		case i < 150 && !errors.Is(err, ErrBusy):
			t.Fatalf("forgotten stamp %d: %v, want ErrBusy", i, err)
		case i >= 150 && !errors.Is(err, ErrReplay):
			t.Fatalf("remembered stamp %d: %v, want ErrReplay", i, err)
		}
	}
	if dcsync.IsPermanent(ErrBusy) {
		t.Fatal("ErrBusy must be retryable")
	}
	s.Now = func() time.Time { return now.Add(time.Second) }
	st := s.Sign(nil)
	if err := v.Verify(ctx, &st, nil); err != nil {
		t.Fatalf("fresh stamp after overflow: %v", err)
	}
}

// Nonces expire with the skew window: the cache follows the rate, not the
// history.
func TestReplayCacheExpires(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s, v := newPair(t, VerifierConfig{MaxSkew: time.Second, Now: func() time.Time { return clock() }})
	s.Now = func() time.Time { return clock() }
	for i := range 1000 {
		now = now.Add(10 * time.Millisecond)
		st := s.Sign(nil)
		if err := v.Verify(ctx, &st, nil); err != nil {
			t.Fatalf("stamp %d: %v", i, err)
		}
	}
	if n := v.peers["unicom"].replay.len(); n > 101 {
		t.Fatalf("cache holds %d nonces; 1s of stamps every 10ms is 100", n)
	}
}

func TestConfig(t *testing.T) {
	if _, err := NewSigner("unicom", []byte("short")); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := NewSigner("", secret); err == nil {
		t.Error("empty name accepted")
	}
	if _, err := NewVerifier(VerifierConfig{}); err == nil {
		t.Error("no secrets accepted")
	}
	if _, err := NewVerifier(VerifierConfig{Secrets: map[string][]byte{"a": []byte("short")}}); err == nil {
		t.Error("short peer secret accepted")
	}
}

func BenchmarkSignVerify(b *testing.B) {
	s, _ := NewSigner("unicom", secret)
	v, _ := NewVerifier(VerifierConfig{Secrets: map[string][]byte{"unicom": secret}, ReplayCache: 1 << 16})
	body := make([]byte, 90<<10) // a batch of 256 writes of 256 bytes
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		st := s.Sign(body)
		if err := v.Verify(ctx, &st, body); err != nil {
			b.Fatal(err)
		}
	}
}

// A stamp of one kind never verifies as another, and an envelope's
// sequence number and deadline are bound.
func TestKindsAndEnvelopeFields(t *testing.T) {
	s, v := newPair(t, VerifierConfig{})
	body := []byte("a batch")
	env := s.SignEnvelope(7, 1234, body)
	for _, c := range []struct {
		name   string
		change func(st *Stamp)
	}{
		{"as a batch", func(st *Stamp) { st.Kind = KindBatch }},
		{"as a stream", func(st *Stamp) { st.Kind = KindStream }},
		{"seq changed", func(st *Stamp) { st.Seq++ }},
		{"deadline changed", func(st *Stamp) { st.Deadline = 0 }},
	} {
		forged := env
		c.change(&forged)
		if err := v.Verify(ctx, &forged, body); !errors.Is(err, ErrBadSignature) {
			t.Errorf("envelope %s: %v, want a bad signature", c.name, err)
		}
	}
	if err := v.Verify(ctx, &env, body); err != nil {
		t.Fatalf("envelope: %v", err)
	}
	open := s.SignStream()
	batch := open
	batch.Kind = KindBatch
	if err := v.Verify(ctx, &batch, nil); !errors.Is(err, ErrBadSignature) {
		t.Errorf("stream opening as an empty batch: %v, want a bad signature", err)
	}
	if err := v.Verify(ctx, &open, nil); err != nil {
		t.Fatalf("stream opening: %v", err)
	}
}

// With RequireTo, a stamp naming no receiver is refused; one naming this
// datacenter passes and one naming another is refused.
func TestRequireTo(t *testing.T) {
	if _, err := NewVerifier(VerifierConfig{Secrets: map[string][]byte{"unicom": secret}, RequireTo: true}); err == nil {
		t.Fatal("RequireTo without DC accepted")
	}
	s, v := newPair(t, VerifierConfig{DC: "telecom", RequireTo: true})
	body := []byte("a batch")
	for _, c := range []struct {
		to   string
		want error
	}{{"", ErrWrongReceiver}, {"mobile", ErrWrongReceiver}, {"telecom", nil}} {
		s.To = c.to
		st := s.Sign(body)
		if err := v.Verify(ctx, &st, body); !errors.Is(err, c.want) || (c.want != nil && !dcsync.IsPermanent(err)) {
			t.Errorf("to %q: %v, want %v", c.to, err, c.want)
		}
	}
}
