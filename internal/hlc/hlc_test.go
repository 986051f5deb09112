package hlc

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestNowIsStrictlyIncreasing(t *testing.T) {
	var c Clock
	fixed := time.UnixMilli(1_700_000_000_000)
	c.Wall = func() time.Time { return fixed }
	prev := c.Now()
	for range 1000 {
		v := c.Now()
		if v <= prev {
			t.Fatalf("reading %d not after %d", v, prev)
		}
		prev = v
	}
	if !Time(prev).Equal(fixed) {
		t.Fatalf("wall part = %v, want %v", Time(prev), fixed)
	}
}

func TestObserveOrdersLaterReadingsAfterRemote(t *testing.T) {
	var behind, ahead Clock
	now := time.Now()
	behind.Wall = func() time.Time { return now }
	ahead.Wall = func() time.Time { return now.Add(5 * time.Second) }
	remote := ahead.Now()
	if behind.Now() >= remote {
		t.Fatal("skewed clock should be ahead before observing")
	}
	behind.Observe(remote)
	if v := behind.Now(); v <= remote {
		t.Fatalf("after Observe, Now()=%d must exceed remote %d", v, remote)
	}
}

func TestConcurrentReadingsAreUnique(t *testing.T) {
	var c Clock
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]uint64, 0, 1000)
			for range 1000 {
				local = append(local, c.Now())
			}
			mu.Lock()
			defer mu.Unlock()
			for _, v := range local {
				if seen[v] {
					t.Errorf("duplicate reading %d", v)
				}
				seen[v] = true
			}
		}()
	}
	wg.Wait()
}

func TestFromTimeRoundTrips(t *testing.T) {
	at := time.UnixMilli(1_700_000_123_456)
	if got := Time(FromTime(at)); !got.Equal(at) {
		t.Fatalf("Time(FromTime(%v)) = %v", at, got)
	}
}

// A chain of causally related writes bouncing between two datacenters —
// each observes the previous write's version before making its own — has
// strictly increasing versions for any skew between their clocks.
func TestCausalChainIncreasesUnderAnySkew(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	for _, skew := range []time.Duration{-time.Hour, -5 * time.Second, -time.Millisecond, 0,
		time.Millisecond, 5 * time.Second, time.Hour} {
		var a, b Clock
		a.Wall = func() time.Time { return base }
		b.Wall = func() time.Time { return base.Add(skew) }
		clocks := [2]*Clock{&a, &b}
		prev := uint64(0)
		for i := range 100 {
			c := clocks[i%2]
			c.Observe(prev)
			v := c.Now()
			if v <= prev {
				t.Fatalf("skew %v, step %d: version %d not after the write it follows, %d", skew, i, v, prev)
			}
			prev = v
		}
	}
}

// Concurrent readings are ordered by the wall clocks: a clock ahead by d
// wins over readings taken up to d later on a clock that has not observed
// it. This is the documented cost of skew.
func TestConcurrentReadingsFollowTheWallClocks(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	var ahead, behind Clock
	ahead.Wall = func() time.Time { return base.Add(5 * time.Second) }
	first := ahead.Now()
	behind.Wall = func() time.Time { return base.Add(4 * time.Second) } // 4s later in real time
	if second := behind.Now(); second >= first {
		t.Fatalf("reading %d of the clock behind should order before %d of the clock ahead", second, first)
	}
}

// Observing a peer ahead carries its skew: the observer's readings run
// ahead of its own wall clock until that catches up, and Last tells how far.
func TestObservedSkewSpreads(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	var c Clock
	c.Wall = func() time.Time { return base }
	remote := FromTime(base.Add(5 * time.Second))
	c.Observe(remote)
	if c.Last() != remote {
		t.Fatalf("Last = %d, want the observed %d", c.Last(), remote)
	}
	if got := Time(c.Now()).Sub(base); got != 5*time.Second {
		t.Fatalf("reading runs %v ahead of the wall clock, want 5s", got)
	}
}

func TestObserveWithinRefusesReadingsTooFarAhead(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	var c Clock
	c.Wall = func() time.Time { return base }
	before := c.Now()
	if err := c.ObserveWithin(FromTime(base.Add(time.Hour)), time.Minute); !errors.Is(err, ErrAhead) {
		t.Fatalf("ObserveWithin an hour ahead = %v, want ErrAhead", err)
	}
	if c.Last() != before {
		t.Fatalf("a refused reading moved the clock: Last %d, was %d", c.Last(), before)
	}
	near := FromTime(base.Add(5 * time.Second))
	if err := c.ObserveWithin(near, time.Minute); err != nil {
		t.Fatalf("ObserveWithin 5s ahead: %v", err)
	}
	if err := c.ObserveWithin(FromTime(base.Add(-time.Hour)), time.Minute); err != nil {
		t.Fatalf("ObserveWithin a reading behind: %v", err)
	}
	if v := c.Now(); v <= near {
		t.Fatalf("Now %d not after the observed %d", v, near)
	}
}

// More than 65536 readings in one millisecond carry into the millisecond
// part and stay strictly increasing.
func TestCounterOverflowCarries(t *testing.T) {
	fixed := time.UnixMilli(1_700_000_000_000)
	var c Clock
	c.Wall = func() time.Time { return fixed }
	prev := c.Now()
	for range 1<<logicalBits + 10 {
		v := c.Now()
		if v <= prev {
			t.Fatalf("reading %d not after %d", v, prev)
		}
		prev = v
	}
	if got := Time(prev); !got.Equal(fixed.Add(time.Millisecond)) {
		t.Fatalf("after overflow, wall part = %v, want one millisecond on", got)
	}
}

// Observe and Now racing from many goroutines: every reading taken after an
// Observe returned is greater than what it observed.
func TestObserveRacesWithNow(t *testing.T) {
	var c Clock
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				remote := FromTime(time.Now().Add(time.Duration(g*i) * time.Microsecond))
				c.Observe(remote)
				if v := c.Now(); v <= remote {
					t.Errorf("Now %d after Observe(%d)", v, remote)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A reading of 2^64-1 (or anything past Max) never moves the clock, so the
// next reading cannot wrap to zero.
func TestNoWrapAround(t *testing.T) {
	var c Clock
	before := c.Now()
	for _, v := range []uint64{1<<64 - 1, Max + 1} {
		c.Observe(v)
		if err := c.ObserveWithin(v, 1<<62); !errors.Is(err, ErrBeyond) {
			t.Fatalf("ObserveWithin(%d): %v, want ErrBeyond", v, err)
		}
	}
	if next := c.Now(); next <= before || next > Max {
		t.Fatalf("after observing 2^64-1: %d, before %d", next, before)
	}
	c.Observe(Max)
	if next := c.Now(); next != Max+1 {
		t.Fatalf("after Max: %d", next)
	}
}
