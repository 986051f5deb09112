package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
)

var otherSecret = []byte("fedcba9876543210")

// One peer overflowing its replay cache, or sending one stamp dated far
// ahead, never gets another peer's batches refused.
func TestReplayPerPeer(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	v, err := NewVerifier(VerifierConfig{Secrets: map[string][]byte{"unicom": secret, "mobile": otherSecret},
		ReplayCache: 50, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	noisy, _ := NewSigner("unicom", secret)
	quiet, _ := NewSigner("mobile", otherSecret)
	// A benign clock ahead by four minutes, once, then a flood.
	noisy.Now = func() time.Time { return now.Add(4 * time.Minute) }
	st := noisy.Sign(nil)
	if err := v.Verify(ctx, &st, nil); err != nil {
		t.Fatal(err)
	}
	noisy.Now = clock
	quiet.Now = clock
	for i := range 500 {
		now = now.Add(time.Millisecond)
		st := noisy.Sign(nil)
		if err := v.Verify(ctx, &st, nil); err != nil && !errors.Is(err, ErrBusy) {
			t.Fatalf("noisy stamp %d: %v", i, err)
		}
		if i%10 == 0 {
			st := quiet.Sign(nil)
			if err := v.Verify(ctx, &st, nil); err != nil {
				t.Fatalf("quiet peer refused after %d noisy stamps: %v", i, err)
			}
		}
	}
	if n := v.peers["unicom"].replay.len(); n > 50 {
		t.Fatalf("noisy peer's cache holds %d, bound 50", n)
	}
	// The stamp dated ahead did not hold the others back: the noisy peer's
	// own fresh stamps still pass.
	now = now.Add(time.Second)
	st = noisy.Sign(nil)
	if err := v.Verify(ctx, &st, nil); err != nil {
		t.Fatalf("noisy peer's fresh stamp: %v", err)
	}
}

// Two secrets per peer: stamps under either verify; a third is refused.
func TestNextSecret(t *testing.T) {
	v, err := NewVerifier(VerifierConfig{Secrets: map[string][]byte{"unicom": secret},
		NextSecrets: map[string][]byte{"unicom": otherSecret}})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range [][]byte{secret, otherSecret} {
		s, _ := NewSigner("unicom", sec)
		st := s.Sign([]byte("b"))
		if err := v.Verify(ctx, &st, []byte("b")); err != nil {
			t.Fatalf("secret %q: %v", sec, err)
		}
	}
	s, _ := NewSigner("unicom", []byte("a third secret, never configured"))
	st := s.Sign(nil)
	if err := v.Verify(ctx, &st, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("third secret: %v", err)
	}
	if _, err := NewVerifier(VerifierConfig{Secrets: map[string][]byte{"unicom": secret},
		NextSecrets: map[string][]byte{"mobile": otherSecret}}); err == nil {
		t.Fatal("next secret without a current one accepted")
	}
}

// The MAC binds the receiver and the content encoding: changing either
// breaks it, and a stamp for another receiver is refused before the MAC.
func TestBinds(t *testing.T) {
	v, err := NewVerifier(VerifierConfig{Secrets: map[string][]byte{"unicom": secret}, DC: "telecom"})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSigner("unicom", secret)
	s.To, s.Encoding = "telecom", "gzip"
	st := s.Sign([]byte("b"))
	for _, c := range []struct {
		name   string
		change func(*Stamp)
		want   error
	}{
		{"encoding dropped", func(st *Stamp) { st.Encoding = "" }, ErrBadSignature},
		{"receiver dropped", func(st *Stamp) { st.To = "" }, ErrBadSignature},
		{"other receiver", func(st *Stamp) { st.To = "mobile" }, ErrWrongReceiver},
		{"odd encoding", func(st *Stamp) { st.Encoding = "br" }, ErrMalformed},
	} {
		forged := st
		c.change(&forged)
		if err := v.Verify(ctx, &forged, []byte("b")); !errors.Is(err, c.want) || !dcsync.IsPermanent(err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if err := v.Verify(ctx, &st, []byte("b")); err != nil {
		t.Fatal(err)
	}
}

// nonceMap is a NonceStore in memory, standing for the one replicas share.
type nonceMap struct {
	mu   sync.Mutex
	seen map[string]bool
	err  error
}

func (m *nonceMap) Claim(_ context.Context, from string, nonce []byte, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return false, m.err
	}
	if ttl <= 0 {
		return false, errors.New("no ttl")
	}
	k := from + string(nonce)
	if m.seen[k] {
		return false, nil
	}
	m.seen[k] = true
	return true, nil
}

// Two replicas sharing a NonceStore accept a batch once between them.
func TestSharedNonces(t *testing.T) {
	store := &nonceMap{seen: map[string]bool{}}
	var vs []*Verifier
	for range 2 {
		v, err := NewVerifier(VerifierConfig{Secrets: map[string][]byte{"unicom": secret}, Nonces: store})
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	s, _ := NewSigner("unicom", secret)
	st := s.Sign(nil)
	if err := vs[0].Verify(ctx, &st, nil); err != nil {
		t.Fatal(err)
	}
	if err := vs[1].Verify(ctx, &st, nil); !errors.Is(err, ErrReplay) {
		t.Fatalf("other replica: %v, want ErrReplay", err)
	}
	store.err = errors.New("down")
	st = s.Sign(nil)
	if err := vs[1].Verify(ctx, &st, nil); !errors.Is(err, ErrBusy) || dcsync.IsPermanent(err) {
		t.Fatalf("store down: %v, want retryable ErrBusy", err)
	}
}
