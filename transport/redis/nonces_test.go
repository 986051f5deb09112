package redis

import (
	"context"
	"testing"
	"time"

	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/testserver"
)

// Two replicas of a receiver sharing a NonceStore accept a batch once
// between them; the nonce's key expires with the skew window.
func TestNonceStore(t *testing.T) {
	r := testserver.StartRedis(t)
	client := newClient(t, r.Addr())
	store := NewNonceStore(client, "test")
	var _ auth.NonceStore = store
	secrets := map[string][]byte{"unicom": []byte("0123456789abcdef")}
	var replicas []*auth.Verifier
	for range 2 {
		v, err := auth.NewVerifier(auth.VerifierConfig{Secrets: secrets, Nonces: store, MaxSkew: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, v)
	}
	signer, err := auth.NewSigner("unicom", secrets["unicom"])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := signer.Sign([]byte("body"))
	if err := replicas[0].Verify(ctx, &st, []byte("body")); err != nil {
		t.Fatal(err)
	}
	if err := replicas[1].Verify(ctx, &st, []byte("body")); err == nil {
		t.Fatal("a batch accepted by one replica was accepted by the other")
	}
	keys, err := client.Keys(ctx, "test:nonce:unicom:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if ttl := client.PTTL(ctx, keys[0]).Val(); ttl <= 0 || ttl > time.Minute+2*time.Second {
		t.Fatalf("nonce kept for %v", ttl)
	}
	fresh, err := store.Claim(ctx, "unicom", []byte{1, 2}, time.Second)
	if err != nil || !fresh {
		t.Fatalf("fresh nonce: %v %v", fresh, err)
	}
	if fresh, err := store.Claim(ctx, "unicom", []byte{1, 2}, time.Second); err != nil || fresh {
		t.Fatalf("seen nonce: %v %v", fresh, err)
	}
}
