package dcsync

import (
	crand "crypto/rand"
	"encoding/binary"
	"math/rand/v2"
	"sync"

	"github.com/google/uuid"
)

// newID returns a UUIDv7 (RFC 9562) for a write of the given version: its
// timestamp is the version's millisecond, its 12-bit rand_a the low bits
// of the version's counter, so the IDs of one datacenter sort as their
// versions do within a millisecond, and its 62-bit rand_b random. Taking
// the time from the version reads the clock once a write, and the random
// bits come from per-CPU ChaCha8 generators seeded from crypto/rand, so
// that concurrent writers neither make a system call nor share a lock —
// what uuid.NewV7 does for every ID.
func newID(version uint64) string {
	g := idRand.Get().(*rand.ChaCha8)
	r := g.Uint64()
	idRand.Put(g)
	var u uuid.UUID
	// The version's upper 48 bits are its millisecond, where UUIDv7 wants it.
	binary.BigEndian.PutUint64(u[0:8], version&^0xffff|0x7000|version&0x0fff)
	binary.BigEndian.PutUint64(u[8:16], r>>2|1<<63)
	return u.String()
}

var idRand = sync.Pool{New: func() any {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails on supported platforms
	return rand.NewChaCha8(seed)
}}
