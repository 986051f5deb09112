// Package auth authenticates batches between datacenters, for both RPC
// transports. Each pair of datacenters shares a secret; the sender stamps
// every batch with its name, the receiver's name (when it knows it), a
// timestamp, a random nonce, the body's content encoding and an
// HMAC-SHA256 over those and the body. The receiver checks, before it
// decodes anything, that the sender is known, the timestamp is recent, the
// signature is right and the nonce was not seen before.
//
// The signed message is
//
//	"dcsync-v2\n" from "\n" to "\n" timestamp "\n" hex(nonce) "\n" encoding "\n" body
//
// with timestamp in decimal Unix nanoseconds, to empty when the sender does
// not name the receiver, and encoding "" (identity) or "gzip", so a batch can
// be signed by hand for debugging:
//
//	printf 'dcsync-v2\n%s\n\n%s\n%s\n\n' "$from" "$ts" "$nonce" | cat - body | openssl dgst -sha256 -hmac "$secret"
//
// The gRPC transport signs two more kinds of message, each with a first line
// of its own so that no signature of one kind verifies as another: a
// stream's opening stamp ("dcsync-v2-stream", the same lines and an empty
// body), and each envelope on the stream ("dcsync-v2-envelope", the same
// lines, then the envelope's sequence number and deadline in decimal, one a
// line, then the body).
//
// # Rotating a secret
//
// A Verifier accepts two secrets per peer, the current one and the next
// (VerifierConfig.NextSecrets), so a secret changes without downtime:
// give every receiver the new secret as the next one, then switch the
// senders to it, then make it the receivers' current secret and drop the old.
//
// # Replays
//
// Each peer has a replay cache of its own, bounded in size: a peer that
// overflows it (or whose clock is skewed) can only get its own batches
// refused, never another peer's. The cache is per process; replicas behind
// a load balancer share replay state through a NonceStore.
package auth

import (
	"context"
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
	// MaxName is the longest datacenter name a stamp may carry.
	MaxName = 128
)

// Errors of Verify. All but ErrBusy match dcsync.ErrUnauthenticated, so a
// sender does not retry them.
var (
	ErrBadSignature  = fmt.Errorf("%w: bad signature", dcsync.ErrUnauthenticated)
	ErrStale         = fmt.Errorf("%w: timestamp outside the allowed clock skew", dcsync.ErrUnauthenticated)
	ErrReplay        = fmt.Errorf("%w: replayed batch (nonce seen before)", dcsync.ErrUnauthenticated)
	ErrMalformed     = fmt.Errorf("%w: malformed stamp", dcsync.ErrUnauthenticated)
	ErrWrongReceiver = fmt.Errorf("%w: batch signed for another datacenter", dcsync.ErrUnauthenticated)
	// ErrBusy is returned when the peer's replay cache overflowed and had
	// to forget nonces newer than the stamp's timestamp, or when the shared
	// NonceStore failed. It is retryable: a retry carries a fresh stamp.
	ErrBusy = errors.New("auth: replay state unavailable or full, retry with a fresh stamp")
)

// Kind is what a stamp authenticates; it selects the signed message's
// layout. The receiver sets it from what it is verifying, never from the
// wire.
type Kind uint8

// Kinds of stamps.
const (
	KindBatch    Kind = iota // an HTTP batch: the body
	KindEnvelope             // a gRPC envelope: Seq, Deadline and the body
	KindStream               // a gRPC stream's opening: no body
)

// versions prefix the signed message by Kind, so a change of its layout can
// never make an old signature valid for a different reading.
var versions = [...]string{KindBatch: "dcsync-v2\n", KindEnvelope: "dcsync-v2-envelope\n", KindStream: "dcsync-v2-stream\n"}

// Stamp authenticates one batch.
type Stamp struct {
	Kind      Kind   // what is signed; KindBatch unless set
	Seq       uint64 // KindEnvelope: the envelope's sequence number
	Deadline  int64  // KindEnvelope: the envelope's deadline, Unix nanoseconds or 0
	From      string // sending datacenter
	To        string // receiving datacenter; empty when the sender does not name it
	Encoding  string // the body's content encoding: "" (identity) or "gzip"
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

// sum writes the MAC of st's fields and body into out.
func (m *macs) sum(out *[SignatureSize]byte, st *Stamp, body []byte) {
	h := m.pool.Get().(hash.Hash)
	h.Reset()
	var pre [32 + 2*MaxName + 20 + 2*NonceSize + 16 + 5 + 2*21]byte
	b := append(pre[:0], versions[st.Kind%Kind(len(versions))]...)
	b = append(b, st.From...)
	b = append(b, '\n')
	b = append(b, st.To...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, st.Timestamp, 10)
	b = append(b, '\n')
	b = hex.AppendEncode(b, st.Nonce[:])
	b = append(b, '\n')
	b = append(b, st.Encoding...)
	b = append(b, '\n')
	if st.Kind == KindEnvelope {
		b = strconv.AppendUint(b, st.Seq, 10)
		b = append(b, '\n')
		b = strconv.AppendInt(b, st.Deadline, 10)
		b = append(b, '\n')
	}
	h.Write(b)
	h.Write(body)
	h.Sum(out[:0])
	m.pool.Put(h)
}

// Signer stamps the batches one datacenter sends to one peer. It is safe
// for concurrent use once configured.
type Signer struct {
	from string
	macs *macs
	// To names the receiving datacenter in every stamp, so a batch cannot
	// be replayed to another datacenter sharing the secret; empty names
	// none.
	To string
	// Encoding is the content encoding of the bodies signed: "" or "gzip".
	Encoding string
	// Now reads the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// NewSigner returns a Signer for batches sent by datacenter from with the
// secret it shares with the receiver.
func NewSigner(from string, secret []byte) (*Signer, error) {
	if err := checkName(from); err != nil {
		return nil, err
	}
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("auth: secret of %d bytes, need at least %d", len(secret), MinSecret)
	}
	return &Signer{from: from, macs: newMACs(secret)}, nil
}

func checkName(name string) error {
	if name == "" || len(name) > MaxName {
		return fmt.Errorf("auth: invalid datacenter name %q", name)
	}
	return nil
}

// Sign returns a fresh stamp for body, an HTTP batch.
func (s *Signer) Sign(body []byte) Stamp {
	return s.sign(Stamp{Kind: KindBatch}, body)
}

// SignEnvelope returns a fresh stamp for a gRPC envelope: its sequence
// number, its deadline (Unix nanoseconds, 0 for none) and its body.
func (s *Signer) SignEnvelope(seq uint64, deadline int64, body []byte) Stamp {
	return s.sign(Stamp{Kind: KindEnvelope, Seq: seq, Deadline: deadline}, body)
}

// SignStream returns a fresh stamp that opens a gRPC stream.
func (s *Signer) SignStream() Stamp {
	return s.sign(Stamp{Kind: KindStream}, nil)
}

// sign completes st and signs it with body.
func (s *Signer) sign(st Stamp, body []byte) Stamp {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	st.From, st.To, st.Timestamp = s.from, s.To, now().UnixNano()
	if st.Kind != KindStream {
		st.Encoding = s.Encoding
	}
	if _, err := rand.Read(st.Nonce[:]); err != nil {
		panic(err) // crypto/rand.Read never fails on supported platforms
	}
	s.macs.sum(&st.Signature, &st, body)
	return st
}

// NonceStore remembers nonces across processes, so that replicas of a
// receiver behind a load balancer refuse a batch another replica accepted.
// transport/redis provides one.
type NonceStore interface {
	// Claim records the nonce of a stamp from peer from, to be remembered
	// for at least ttl, and reports whether it was new. An error refuses
	// the batch as retryable.
	Claim(ctx context.Context, from string, nonce []byte, ttl time.Duration) (fresh bool, err error)
}

// VerifierConfig configures a Verifier. Secrets is required; the zero value
// of every other field selects its default.
type VerifierConfig struct {
	// Secrets holds the secret shared with each peer, by datacenter name.
	Secrets map[string][]byte
	// NextSecrets holds a second secret accepted from a peer while its
	// secret rotates; a peer named here must be in Secrets too.
	NextSecrets map[string][]byte
	// DC names this datacenter; when set, stamps naming another receiver
	// are refused. Stamps naming none are accepted unless RequireTo.
	DC string
	// RequireTo refuses stamps that name no receiver, so that a batch can
	// only be accepted by the datacenter it was signed for even where a
	// secret is shared by more than two datacenters. It needs DC.
	RequireTo bool
	// MaxSkew is how far a stamp's timestamp may be from the receiver's
	// clock, either way; default 5 minutes. Nonces are remembered this long.
	MaxSkew time.Duration
	// ReplayCache is how many nonces are remembered at most for each peer;
	// default 1<<18 (about 20 MiB when full; a nonce per batch, so 870
	// batches a second for MaxSkew). When a peer's cache is full its oldest
	// nonces are forgotten and that peer's stamps not newer than them are
	// refused with ErrBusy, so no replay gets through; other peers are not
	// affected.
	ReplayCache int
	// Nonces, when set, also claims every nonce in a store shared by the
	// replicas of this receiver.
	Nonces NonceStore
	// Now reads the clock; default time.Now.
	Now func() time.Time
}

// Default values of VerifierConfig.
const (
	DefaultMaxSkew     = 5 * time.Minute
	DefaultReplayCache = 1 << 18
)

// peer is what a Verifier knows of one peer.
type peer struct {
	name   string
	macs   [2]*macs // current and next secret; next may be nil
	replay replayCache
}

// Verifier checks stamps. It is safe for concurrent use.
type Verifier struct {
	peers     map[string]*peer
	dc        string
	requireTo bool
	maxSkew   int64
	now       func() time.Time
	nonces    NonceStore
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("auth: no peer secrets")
	}
	if cfg.RequireTo && cfg.DC == "" {
		return nil, errors.New("auth: RequireTo needs this datacenter's name (DC)")
	}
	v := &Verifier{peers: map[string]*peer{}, dc: cfg.DC, requireTo: cfg.RequireTo, maxSkew: int64(cfg.MaxSkew), now: cfg.Now, nonces: cfg.Nonces}
	limit := cfg.ReplayCache
	if limit <= 0 {
		limit = DefaultReplayCache
	}
	for dc, secret := range cfg.Secrets {
		if err := checkName(dc); err != nil {
			return nil, err
		}
		if len(secret) < MinSecret {
			return nil, fmt.Errorf("auth: secret of peer %q has %d bytes, need at least %d", dc, len(secret), MinSecret)
		}
		p := &peer{name: dc}
		p.macs[0] = newMACs(secret)
		p.replay.max = limit
		v.peers[dc] = p
	}
	for dc, secret := range cfg.NextSecrets {
		p := v.peers[dc]
		if p == nil {
			return nil, fmt.Errorf("auth: next secret for %q, which has no current secret", dc)
		}
		if len(secret) < MinSecret {
			return nil, fmt.Errorf("auth: next secret of peer %q has %d bytes, need at least %d", dc, len(secret), MinSecret)
		}
		p.macs[1] = newMACs(secret)
	}
	if v.maxSkew <= 0 {
		v.maxSkew = int64(DefaultMaxSkew)
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Known reports whether from has a secret here.
func (v *Verifier) Known(from string) bool { return v.peers[from] != nil }

// Verify checks st against body. It returns nil when the batch is
// authentic and new, and otherwise an error matching
// dcsync.ErrUnauthenticated (or ErrBusy). A batch that passes once fails
// as a replay afterwards.
func (v *Verifier) Verify(ctx context.Context, st *Stamp, body []byte) error {
	p := v.peers[st.From]
	if p == nil {
		return fmt.Errorf("%w: no secret for datacenter %q", dcsync.ErrUnknownPeer, st.From)
	}
	if err := v.Check(st); err != nil {
		return err
	}
	var want [SignatureSize]byte
	p.macs[0].sum(&want, st, body)
	if !hmac.Equal(want[:], st.Signature[:]) {
		if p.macs[1] == nil {
			return fmt.Errorf("%w from %s", ErrBadSignature, st.From)
		}
		p.macs[1].sum(&want, st, body)
		if !hmac.Equal(want[:], st.Signature[:]) {
			return fmt.Errorf("%w from %s (neither its current nor its next secret)", ErrBadSignature, st.From)
		}
	}
	now := v.now().UnixNano()
	if err := p.replay.add(st, now-v.maxSkew); err != nil {
		return err
	}
	if v.nonces != nil {
		// Remembered until the stamp goes stale everywhere, with a margin.
		ttl := time.Duration(st.Timestamp+v.maxSkew-now) + time.Second
		fresh, err := v.nonces.Claim(ctx, st.From, st.Nonce[:], ttl)
		if err != nil {
			return fmt.Errorf("%w: shared nonce store: %v", ErrBusy, err)
		}
		if !fresh {
			return fmt.Errorf("%w from %s (seen by another replica)", ErrReplay, st.From)
		}
	}
	return nil
}

// Check runs the checks of Verify that need no body and no secret: a known
// sender, a well-formed stamp for this receiver, a recent timestamp. A
// transport runs it before reading a body, so that a stamp that can never
// verify costs nothing more.
func (v *Verifier) Check(st *Stamp) error {
	if v.peers[st.From] == nil {
		return fmt.Errorf("%w: no secret for datacenter %q", dcsync.ErrUnknownPeer, st.From)
	}
	if len(st.To) > MaxName {
		return fmt.Errorf("%w: receiver name of %d bytes", ErrMalformed, len(st.To))
	}
	if st.To != "" && v.dc != "" && st.To != v.dc {
		return fmt.Errorf("%w: signed for %q, this is %q", ErrWrongReceiver, st.To, v.dc)
	}
	if st.To == "" && v.requireTo {
		return fmt.Errorf("%w: the stamp names no receiver and %q requires it (the sender's To)", ErrWrongReceiver, v.dc)
	}
	switch st.Encoding {
	case "", "gzip":
	default:
		return fmt.Errorf("%w: encoding %q", ErrMalformed, st.Encoding)
	}
	now := v.now().UnixNano()
	// now-ts wraps only for timestamps far outside the window, which it
	// then still refuses.
	if d := now - st.Timestamp; d > v.maxSkew || d < -v.maxSkew {
		return fmt.Errorf("%w: %s from %s, %v off this clock", ErrStale,
			time.Unix(0, st.Timestamp).UTC().Format(time.RFC3339Nano), st.From, time.Duration(d))
	}
	return nil
}

// ParseStamp reads a stamp from its text form, as HTTP headers and gRPC
// metadata carry it: the names, the timestamp in decimal Unix nanoseconds,
// the nonce and the signature in hex. Every field is bounded before it is
// kept, whatever the strings hold; field names the fields in errors (for
// instance the header of each).
func ParseStamp(from, to, timestamp, nonce, signature string, field func(i int) string) (Stamp, error) {
	st := Stamp{From: from, To: to}
	if st.From == "" || len(st.From) > MaxName || len(st.To) > MaxName {
		return Stamp{}, fmt.Errorf("%w: %s and %s: want a datacenter name of at most %d bytes",
			ErrMalformed, field(0), field(1), MaxName)
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return st, fmt.Errorf("%w: %s: want Unix nanoseconds", ErrMalformed, field(2))
	}
	st.Timestamp = ts
	// The length first: hex.Decode writes past a destination too short.
	if len(nonce) != 2*NonceSize || !decodeHex(st.Nonce[:], nonce) {
		return st, fmt.Errorf("%w: %s: want %d hex bytes", ErrMalformed, field(3), NonceSize)
	}
	if len(signature) != 2*SignatureSize || !decodeHex(st.Signature[:], signature) {
		return st, fmt.Errorf("%w: %s: want %d hex bytes", ErrMalformed, field(4), SignatureSize)
	}
	return st, nil
}

// decodeHex decodes src, of twice len(dst) characters, into dst.
func decodeHex(dst []byte, src string) bool {
	n, err := hex.Decode(dst, []byte(src))
	return err == nil && n == len(dst)
}
