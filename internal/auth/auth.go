// Package auth authenticates batches between datacenters, for both RPC
// transports. Each pair of datacenters shares a secret; the sender stamps
// every batch with its name, a timestamp, a random nonce and an HMAC-SHA256
// over those and the body. The receiver checks, before it decodes anything,
// that the sender is known, the timestamp is recent, the signature is right
// and the nonce was not seen before.
//
// The signed message is
//
//	from "\n" timestamp "\n" hex(nonce) "\n" body
//
// with timestamp in decimal Unix nanoseconds, so a batch can be signed by
// hand for debugging:
//
//	printf '%s\n%s\n%s\n' "$from" "$ts" "$nonce" | cat - body | openssl dgst -sha256 -hmac "$secret"
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/dcsync/dcsync"
)

// Sizes of a Stamp's fields.
const (
	NonceSize     = 16
	SignatureSize = sha256.Size
	// MinSecret is the shortest secret accepted: a shorter one can be
	// guessed.
	MinSecret = 16
)

// Errors of Verify. All but ErrBusy match dcsync.ErrUnauthenticated, so a
// sender does not retry them.
var (
	ErrBadSignature = fmt.Errorf("%w: bad signature", dcsync.ErrUnauthenticated)
	ErrStale        = fmt.Errorf("%w: timestamp outside the allowed clock skew", dcsync.ErrUnauthenticated)
	ErrReplay       = fmt.Errorf("%w: replayed batch (nonce seen before)", dcsync.ErrUnauthenticated)
	ErrMalformed    = fmt.Errorf("%w: malformed stamp", dcsync.ErrUnauthenticated)
	// ErrBusy is returned when the replay cache overflowed and had to
	// forget nonces newer than the stamp's timestamp. It is retryable: a
	// retry carries a fresh stamp.
	ErrBusy = errors.New("auth: replay cache full, retry with a fresh stamp")
)

// Stamp authenticates one batch.
type Stamp struct {
	From      string // sending datacenter
	Timestamp int64  // when signed, Unix nanoseconds
	Nonce     [NonceSize]byte
	Signature [SignatureSize]byte
}

// macs hands out HMAC states for one secret; hmac.New costs two hash
// allocations and a key schedule, too much for every batch.
type macs struct{ pool sync.Pool }

func newMACs(secret []byte) *macs {
	key := append([]byte(nil), secret...)
	m := &macs{}
	m.pool.New = func() any { return hmac.New(sha256.New, key) }
	return m
}

// sum writes the MAC of (from, ts, nonce, body) into out.
func (m *macs) sum(out *[SignatureSize]byte, from string, ts int64, nonce *[NonceSize]byte, body []byte) {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	var pre [128 + 3 + 20 + 2*NonceSize]byte
	b := append(pre[:0], from...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '\n')
	b = hex.AppendEncode(b, nonce[:])
	b = append(b, '\n')
	h.Write(b)
	h.Write(body)
	h.Sum(out[:0])
	m.pool.Put(h)
}

// Signer stamps the batches one datacenter sends to one peer. It is safe
// for concurrent use.
type Signer struct {
	from string
	macs *macs
	// Now reads the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// NewSigner returns a Signer for batches sent by datacenter from with the
// secret it shares with the receiver.
func NewSigner(from string, secret []byte) (*Signer, error) {
	if from == "" || len(from) > 128 {
		return nil, fmt.Errorf("auth: invalid datacenter name %q", from)
	}
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("auth: secret of %d bytes, need at least %d", len(secret), MinSecret)
	}
	return &Signer{from: from, macs: newMACs(secret)}, nil
}

// Sign returns a fresh stamp for body.
func (s *Signer) Sign(body []byte) Stamp {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	st := Stamp{From: s.from, Timestamp: now().UnixNano()}
	if _, err := rand.Read(st.Nonce[:]); err != nil {
		panic(err) // crypto/rand.Read never fails on supported platforms
	}
	s.macs.sum(&st.Signature, st.From, st.Timestamp, &st.Nonce, body)
	return st
}

// VerifierConfig configures a Verifier. Secrets is required; the zero value
// of every other field selects its default.
type VerifierConfig struct {
	// Secrets holds the secret shared with each peer, by datacenter name.
	Secrets map[string][]byte
	// MaxSkew is how far a stamp's timestamp may be from the receiver's
	// clock, either way; default 5 minutes. Nonces are remembered this long.
	MaxSkew time.Duration
	// ReplayCache is how many nonces are remembered at most; default 1<<18
	// (about 25 MiB; a nonce per batch, so 870 batches/s for MaxSkew). When full, the oldest are forgotten and stamps not
	// newer than them are refused with ErrBusy, so no replay gets through.
	ReplayCache int
	// Now reads the clock; default time.Now.
	Now func() time.Time
}

// Default values of VerifierConfig.
const (
	DefaultMaxSkew     = 5 * time.Minute
	DefaultReplayCache = 1 << 18
)

// Verifier checks stamps. It is safe for concurrent use.
type Verifier struct {
	peers   map[string]*macs
	maxSkew int64
	now     func() time.Time
	replay  replayCache
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("auth: no peer secrets")
	}
	v := &Verifier{peers: map[string]*macs{}, maxSkew: int64(cfg.MaxSkew), now: cfg.Now}
	for dc, secret := range cfg.Secrets {
		if len(secret) < MinSecret {
			return nil, fmt.Errorf("auth: secret of peer %q has %d bytes, need at least %d", dc, len(secret), MinSecret)
		}
		v.peers[dc] = newMACs(secret)
	}
	if v.maxSkew <= 0 {
		v.maxSkew = int64(DefaultMaxSkew)
	}
	if v.now == nil {
		v.now = time.Now
	}
	v.replay.max = cfg.ReplayCache
	if v.replay.max <= 0 {
		v.replay.max = DefaultReplayCache
	}
	return v, nil
}

// Known reports whether from has a secret here.
func (v *Verifier) Known(from string) bool { return v.peers[from] != nil }

// Verify checks st against body. It returns nil when the batch is
// authentic and new, and otherwise an error matching
// dcsync.ErrUnauthenticated (or ErrBusy). A batch that passes once fails
// as a replay afterwards.
func (v *Verifier) Verify(st *Stamp, body []byte) error {
	m := v.peers[st.From]
	if m == nil {
		return fmt.Errorf("%w: no secret for datacenter %q", dcsync.ErrUnknownPeer, st.From)
	}
	now := v.now().UnixNano()
	if d := now - st.Timestamp; d > v.maxSkew || d < -v.maxSkew {
		return fmt.Errorf("%w: %s from %s, %v off this clock", ErrStale,
			time.Unix(0, st.Timestamp).UTC().Format(time.RFC3339Nano), st.From, time.Duration(d))
	}
	var want [SignatureSize]byte
	m.sum(&want, st.From, st.Timestamp, &st.Nonce, body)
	if !hmac.Equal(want[:], st.Signature[:]) {
		return fmt.Errorf("%w from %s", ErrBadSignature, st.From)
	}
	return v.replay.add(st, now-v.maxSkew)
}

// replayCache remembers the nonces of recent stamps in arrival order,
// forgetting them once their timestamp is beyond the skew window (they are
// refused as stale from then on) or when full.
type replayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[replayKey]struct{}
	queue []replayEntry // arrival order; queue[head:] are live
	head  int
	floor int64 // stamps at or before floor are refused: their nonce may be forgotten
}

type replayKey struct {
	from  string
	nonce [NonceSize]byte
}

type replayEntry struct {
	key replayKey
	ts  int64
}

func (c *replayCache) add(st *Stamp, cutoff int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[replayKey]struct{}{}
	}
	// Expire from the front. Arrival order is nearly timestamp order; an
	// entry stuck behind a newer one is only remembered longer.
	for c.head < len(c.queue) && c.queue[c.head].ts < cutoff {
		c.pop()
	}
	if st.Timestamp <= c.floor {
		return ErrBusy
	}
	k := replayKey{st.From, st.Nonce}
	if _, ok := c.seen[k]; ok {
		return fmt.Errorf("%w from %s", ErrReplay, st.From)
	}
	for len(c.seen) >= c.max {
		c.floor = max(c.floor, c.queue[c.head].ts)
		c.pop()
	}
	c.seen[k] = struct{}{}
	if c.head > 0 && c.head >= len(c.queue)/2 {
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
	c.queue = append(c.queue, replayEntry{k, st.Timestamp})
	return nil
}

func (c *replayCache) pop() {
	delete(c.seen, c.queue[c.head].key)
	c.queue[c.head] = replayEntry{}
	c.head++
}
