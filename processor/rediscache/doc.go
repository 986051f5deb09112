// Package rediscache is a dcsync.Processor that keeps a Redis cache
// converged across datacenters: it applies a write only when the write is
// newer than what the cache holds, so every datacenter ends with the same
// value whatever the order, the duplicates and the replays of delivery.
//
// # Last writer wins
//
// Every entry remembers the Version and Origin of the write that set it. A
// write is applied when its (Version, Origin) is greater — the greater
// Version, and for equal versions the greater origin name, compared byte by
// byte: the rule of dcsync.Request.Newer. An older or equal write is
// acknowledged and dropped. The check and the update are one Lua script
// (EVALSHA; the script is loaded into Redis once and reloaded if Redis
// restarts), so they are atomic against every other writer of the key.
//
// Two ops are known: "set" (OpSet) stores the payload, "delete" (OpDelete)
// removes it and leaves a tombstone that carries the delete's version, so a
// set that was written before the delete but arrives after it does not bring
// the value back. Tombstones expire after Options.TombstoneTTL; a write older
// than a delete that arrives after its tombstone expired is applied. Any
// other op is a permanent error matching dcsync.ErrInvalid.
//
// # Layout
//
// Each key is one Redis hash named Options.Prefix + key, readable with
// redis-cli (HGETALL prefix+key):
//
//	v       the value; absent in a tombstone
//	ver     the version, in decimal; ver >> 16 is the write's Unix time in milliseconds
//	origin  the datacenter where the write entered
//	id      the request ID of the write
//	del     "1" in a tombstone, absent otherwise
//
// A tombstone hash carries a TTL (PTTL shows it); a live value has none.
// Get and GetVersioned read this layout and hide tombstones.
//
// # Versions under clock skew
//
// Versions come from each datacenter's hybrid logical clock. A datacenter
// takes in the version of every write it collects before applying it, so a
// write made after a replicated value was read in that datacenter carries a
// greater version and wins, even when the first write's datacenter runs
// seconds ahead. Writes made concurrently in two datacenters, neither having
// seen the other, are ordered by their clocks: a datacenter whose clock runs
// ahead by d wins such conflicts against writes made up to d later. See the
// internal/hlc documentation for the details.
package rediscache
