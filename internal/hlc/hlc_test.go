package hlc

import (
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
