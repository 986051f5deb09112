package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/dcsync/dcsync/internal/testserver"
)

// Three processes per datacenter, each running a Node of its own (its own
// consumer name) on its datacenter's Redis and writing. Mid-load, one
// process of each datacenter is killed with SIGKILL and not restarted: the
// others claim the entries it had read and not acknowledged, and every
// write any process acknowledged reaches both datacenters.
func TestThreeProcessesPerDatacenter(t *testing.T) {
	bin := build(t)
	addrs := map[string]string{"unicom": testserver.StartRedis(t).Addr(), "telecom": testserver.StartRedis(t).Addr()}
	peer := map[string]string{"unicom": "telecom", "telecom": "unicom"}
	a := &acks{keys: map[string]string{}, count: map[*proc]int{}}
	const bound = 60 * time.Second
	procs := map[string][]*proc{}
	for i := range 3 {
		writes := 400
		if i == 0 {
			writes = 5000 // the victim's: killed long before it is done
		}
		for dc, addr := range addrs {
			procs[dc] = append(procs[dc], a.run(t, bin, dc, fmt.Sprintf("%s-%d", dc, i), addr, peer[dc], addrs[peer[dc]],
				fmt.Sprintf("%s%d", dc[:1], i), writes))
		}
	}
	for dc := range addrs {
		victim := procs[dc][0]
		until(t, bound, victim.name+"'s first writes", func() bool { return a.of(victim) >= 200 })
		victim.kill(t)
		t.Logf("killed %s (SIGKILL) after %d acknowledged writes", victim.name, a.of(victim))
	}
	a.everywhere(t, bound, addrs, append(procs["unicom"][1:], procs["telecom"][1:]...)...)
}
