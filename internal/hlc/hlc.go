// Package hlc is a hybrid logical clock: a 64-bit reading whose upper 48 bits
// are wall-clock milliseconds and whose lower 16 bits count events within one
// millisecond. Readings compare as plain integers.
//
// # What the clock guarantees
//
// Readings of one Clock are strictly increasing, and after Observe(v) every
// reading is greater than v. A datacenter observes the version of every
// write it collects before applying it, so a write made after another write
// was applied there — by a reader who saw the first value, or by the same
// key's next writer — carries the greater version. This holds whatever the
// skew between the datacenters' wall clocks: a peer whose clock runs seconds
// ahead cannot make its older write win over a write that followed it.
//
// # What skew still does
//
// Writes that are concurrent — made in two datacenters, neither having
// observed the other's — are ordered by their wall clocks, since nothing
// else relates them. A datacenter whose clock runs ahead by d wins such a
// conflict against a write made in another datacenter up to d later in real
// time. Last writer wins is then "last by the clocks", which is as good as
// the clocks are synchronised; keep them under NTP.
//
// A clock that observed a reading from a peer ahead of it issues readings
// at least that far ahead until its own wall clock catches up: the skew of
// the fastest peer spreads to every datacenter that hears from it, and the
// wall-clock part of a version (Time) can be ahead of the local wall clock by
// that much. Ordering stays correct; what reads the wall-clock part as a
// time, such as a reconciler's window over write times, must allow for it.
// ObserveWithin lets a receiver refuse readings too far ahead, so one
// misconfigured clock cannot drag every datacenter's versions into the
// future.
//
// # Overflow of the counter
//
// More than 65536 readings in one millisecond carry into the millisecond
// part: the reading runs ahead of the wall clock by a millisecond and stays
// strictly increasing.
//
// # No wrap-around
//
// Observe and ObserveWithin ignore (refuse) readings above Max, whose
// wall-clock part is after the year 6400, so a peer sending 2^64-1 cannot
// make the next reading wrap to zero: from Max the clock would need 2^63
// more readings to wrap.
package hlc

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// logicalBits is the width of the logical counter.
const logicalBits = 16

// Clock issues hybrid logical clock readings. The zero value is ready to use
// and reads the system clock.
type Clock struct {
	last atomic.Uint64
	// Wall, when set, replaces time.Now; tests use it to skew a datacenter.
	Wall func() time.Time
}

func (c *Clock) wall() uint64 {
	now := time.Now
	if c.Wall != nil {
		now = c.Wall
	}
	return FromTime(now())
}

// Now returns a reading greater than every reading issued or observed before.
func (c *Clock) Now() uint64 {
	pt := c.wall()
	for {
		last := c.last.Load()
		next := max(pt, last+1)
		if c.last.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Max is the greatest reading a clock observes; see "No wrap-around".
const Max uint64 = 1<<63 - 1

// ErrBeyond is returned by ObserveWithin for a reading above Max.
var ErrBeyond = errors.New("hlc: reading beyond the clock's range")

// Observe merges a reading received from another clock, so that later local
// readings order after it. A reading above Max is ignored.
func (c *Clock) Observe(v uint64) {
	if v > Max {
		return
	}
	for {
		last := c.last.Load()
		if v <= last || c.last.CompareAndSwap(last, v) {
			return
		}
	}
}

// ErrAhead is returned by ObserveWithin for a reading too far ahead of the
// local wall clock.
var ErrAhead = errors.New("hlc: reading too far ahead of the local clock")

// ObserveWithin observes v unless its wall-clock part is more than maxAhead
// after the local wall clock; then it leaves the clock as it was and returns
// an error matching ErrAhead. The error is worth retrying: the same reading
// is accepted once the local wall clock has caught up. A reading above Max
// is refused with ErrBeyond, for good. A reading not above the clock's last
// is accepted without reading the wall clock: it moves nothing.
func (c *Clock) ObserveWithin(v uint64, maxAhead time.Duration) error {
	if v > Max {
		return fmt.Errorf("%w: %d, at most %d", ErrBeyond, v, Max)
	}
	if v <= c.last.Load() {
		return nil // nothing to merge: the clock is there already
	}
	wall := c.wall()
	if v > wall && Time(v).Sub(Time(wall)) > maxAhead {
		return fmt.Errorf("%w: %v ahead, bound %v", ErrAhead, Time(v).Sub(Time(wall)), maxAhead)
	}
	c.Observe(v)
	return nil
}

// Last returns the greatest reading issued or observed so far, without
// issuing one; 0 before the first. Time(c.Last()) is how far this clock's
// versions have run, which may be ahead of its wall clock (see the package
// documentation).
func (c *Clock) Last() uint64 { return c.last.Load() }

// Time returns the wall-clock part of a reading.
func Time(v uint64) time.Time {
	return time.UnixMilli(int64(v >> logicalBits))
}

// FromTime returns the smallest reading at t; useful as a range bound.
func FromTime(t time.Time) uint64 {
	return uint64(t.UnixMilli()) << logicalBits
}
