package redis

import (
	"context"
	"fmt"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// roundTrips is a go-redis hook that counts, of a client's commands, the
// pipelines that read the dedupe store (HMGET) and those that run the
// handoff script, and every run of the per-request dedupe scripts.
type roundTrips struct {
	mu                          sync.Mutex
	reads, handoffs, perRequest int
}

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.count([]goredis.Cmder{cmd}, false)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.count(cmds, true)
		return next(ctx, cmds)
	}
}

// count counts cmds, sent in one round trip.
func (r *roundTrips) count(cmds []goredis.Cmder, pipeline bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	read, handoff := false, false
	for _, c := range cmds {
		args := c.Args()
		switch name := fmt.Sprint(args[0]); {
		case name == "hmget":
			read = true
		case name == "evalsha" && len(args) > 1:
			switch args[1] {
			case handoffScript.Hash():
				handoff = true
			case claimScript.Hash(), commitScript.Hash(), releaseClaimScript.Hash():
				r.perRequest++
			}
		}
	}
	if pipeline && read {
		r.reads++
	}
	if pipeline && handoff {
		r.handoffs++
	}
}

// The collect hop costs a batch two round trips to the dedupe store and the
// apply stream, whatever its size: one pipeline that reads the batch's IDs
// before the hop, one that runs the handoff scripts after; no request is
// claimed or committed on its own.
func TestCollectHopRoundTrips(t *testing.T) {
	rt := &roundTrips{}
	u, tc := pair(t, func(c *NodeConfig) {
		if c.DC == "telecom" {
			c.Client.(*goredis.Client).AddHook(rt)
		}
	})
	ids := write(t, u, "k", 500)
	converge(t, tc, ids)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.reads == 0 || rt.handoffs != rt.reads || rt.perRequest != 0 {
		t.Fatalf("%d read pipelines, %d handoff pipelines, %d per-request dedupe scripts; want one handoff "+
			"pipeline a read pipeline and no per-request script", rt.reads, rt.handoffs, rt.perRequest)
	}
}
