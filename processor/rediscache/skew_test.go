package rediscache_test

import (
	"context"
	"testing"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/processor/rediscache"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// fixed returns a wall clock stopped at t, so that versions depend on the
// skew under test and not on the speed of the machine.
func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

// The reconcilers read a clock past every fixed clock of these tests.
func later() time.Time { return time.Now().Add(time.Minute) }

// A write made after a replicated value was read carries a greater version
// than that value, even when the value came from a datacenter whose clock
// runs 5s ahead: the collector observes the version before applying it.
func TestCausallyLaterWriteWinsUnderSkew(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	m := newMesh(t, 1, map[string]func() time.Time{"unicom": fixed(now), "telecom": fixed(now.Add(5 * time.Second))},
		"unicom", "telecom")
	first := m.write("telecom", "user:1", rediscache.OpSet, "from telecom", dcsync.WaitAll())
	if v, found, err := m.caches["unicom"].Get(ctx, "user:1"); err != nil || !found || string(v) != "from telecom" {
		t.Fatalf("unicom reads %q, %v, %v after WaitAll", v, found, err)
	}
	second := m.write("unicom", "user:1", rediscache.OpSet, "from unicom", dcsync.WaitAll())
	if !second.Newer(first.Version, first.Origin) {
		t.Fatalf("unicom's later write has version %d, not after telecom's %d", second.Version, first.Version)
	}
	m.checkConverged([]*dcsync.Request{first, second})
}

// Writes made concurrently, neither datacenter having seen the other's,
// are ordered by their clocks: the datacenter 5s ahead wins, though its
// write was made first. This is the documented cost of skew; the test pins
// it down so that the documentation stays true.
func TestConcurrentWritesUnderSkewFavourTheClockAhead(t *testing.T) {
	now := time.Now()
	m := newMesh(t, 2, map[string]func() time.Time{"unicom": fixed(now), "telecom": fixed(now.Add(5 * time.Second))},
		"unicom", "telecom")
	m.ahead = later
	m.fault(memtransport.Faults{Fail: 1}) // partitioned: neither observes the other
	early := m.write("telecom", "user:1", rediscache.OpSet, "made first, in telecom")
	late := m.write("unicom", "user:1", rediscache.OpSet, "made second, in unicom")
	m.quiesce()
	m.fault(memtransport.Faults{})
	m.reconcile(5)
	if !early.Newer(late.Version, late.Origin) {
		t.Fatalf("telecom's version %d should be ahead of unicom's %d", early.Version, late.Version)
	}
	m.checkConverged([]*dcsync.Request{early, late})
}

// A set written before a delete but delivered after it — held back by a
// failed link and brought by the reconciler — leaves the key deleted.
func TestDeleteThenLateSetKeepsDelete(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	m := newMesh(t, 3, map[string]func() time.Time{"unicom": fixed(now), "telecom": fixed(now.Add(time.Second))},
		"unicom", "telecom")
	m.ahead = later
	m.net.SetFaults("unicom", "telecom", memtransport.Faults{Fail: 1})
	set := m.write("unicom", "user:1", rediscache.OpSet, "alice")
	del := m.write("telecom", "user:1", rediscache.OpDelete, "", dcsync.WaitAll())
	m.quiesce()
	if _, found, _ := m.caches["telecom"].Get(ctx, "user:1"); found {
		t.Fatal("telecom holds a value it never received")
	}
	m.net.SetFaults("unicom", "telecom", memtransport.Faults{})
	m.reconcile(5)
	m.checkConverged([]*dcsync.Request{set, del})
	for _, dc := range m.names {
		if v, found, err := m.caches[dc].Get(ctx, "user:1"); err != nil || found {
			t.Errorf("%s: Get = %q, %v, %v; want deleted", dc, v, found, err)
		}
	}
	if st := m.caches["telecom"].Stats(); st.Stale == 0 {
		t.Errorf("telecom stats %+v: the late set should have been dropped", st)
	}
}
