package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// NonceStore remembers the nonces of the batches the replicas of one RPC
// receiver accepted, in Redis, so that a batch captured on its way to one
// replica is refused by every other: set it as transport/http's
// HandlerConfig.Nonces or transport/grpc's ServerConfig.Nonces on each
// replica, with one Redis (and prefix) for them all. Each nonce is one key
// that expires once its batch's timestamp is stale everywhere (after the
// receivers' MaxSkew), so the keys follow the rate of batches, not the
// history.
type NonceStore struct {
	client goredis.UniversalClient
	prefix string
}

// NewNonceStore returns a NonceStore keeping nonces in client under keys
// "<prefix>:nonce:<peer>:<nonce>"; prefix "" selects "dcsync".
func NewNonceStore(client goredis.UniversalClient, prefix string) *NonceStore {
	if prefix == "" {
		prefix = "dcsync"
	}
	return &NonceStore{client: client, prefix: prefix + ":nonce:"}
}

// Claim records the nonce of a batch from peer for ttl and reports whether
// no replica recorded it before. An error means Redis could not say: the
// receiver refuses the batch as retryable.
func (s *NonceStore) Claim(ctx context.Context, peer string, nonce []byte, ttl time.Duration) (bool, error) {
	key := make([]byte, 0, len(s.prefix)+len(peer)+1+2*len(nonce))
	key = append(append(append(key, s.prefix...), peer...), ':')
	key = hex.AppendEncode(key, nonce)
	ok, err := s.client.SetArgs(ctx, string(key), 1, goredis.SetArgs{Mode: "NX", TTL: max(ttl, time.Millisecond)}).Result()
	if errors.Is(err, goredis.Nil) {
		return false, nil // NX: the key was there
	}
	if err != nil {
		return false, fmt.Errorf("redis: claim nonce: %w", err)
	}
	return ok == "OK", nil
}
