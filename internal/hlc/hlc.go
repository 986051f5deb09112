// Package hlc is a hybrid logical clock: a 64-bit reading whose upper 48 bits
// are wall-clock milliseconds and whose lower 16 bits count events within one
// millisecond. Readings are strictly increasing on one clock and never fall
// behind a reading the clock has observed from another datacenter, so a write
// that causally follows another always carries the greater version, whatever
// the skew between the two datacenters' wall clocks.
package hlc

import (
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
	return uint64(now().UnixMilli()) << logicalBits
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

// Observe merges a reading received from another clock, so that later local
// readings order after it.
func (c *Clock) Observe(v uint64) {
	for {
		last := c.last.Load()
		if v <= last || c.last.CompareAndSwap(last, v) {
			return
		}
	}
}

// Time returns the wall-clock part of a reading.
func Time(v uint64) time.Time {
	return time.UnixMilli(int64(v >> logicalBits))
}

// FromTime returns the smallest reading at t; useful as a range bound.
func FromTime(t time.Time) uint64 {
	return uint64(t.UnixMilli()) << logicalBits
}
