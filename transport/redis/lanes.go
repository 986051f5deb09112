package redis

import (
	"context"
	"sync"

	"github.com/dcsync/dcsync"
)

// lanes is the Processor that Wire installs over one that is not a
// dcsync.BatchProcessor, so that the apply hops hand it a batch at a
// time and it applies the batch in up to n calls at once, each lane with
// the requests of some keys, in stream order. A batch then costs the
// Syncer one call (its validation, records and stats) rather than one per
// lane. Writes of Syncer.Write go through it one by one.
type lanes struct {
	dcsync.Processor
	n int
}

// ProcessBatch implements dcsync.BatchProcessor.
func (l lanes) ProcessBatch(ctx context.Context, reqs []*dcsync.Request) error {
	k := min(l.n, len(reqs))
	errs := make([]error, len(reqs))
	failed := false
	if k <= 1 {
		for i, req := range reqs {
			errs[i] = l.Process(ctx, req)
			failed = failed || errs[i] != nil
		}
		return batchResult(errs, failed)
	}
	// Group the requests by lane, keeping stream order within each: a
	// counting sort, so the lanes share two slices.
	lane := make([]int32, len(reqs))
	start := make([]int, k+1)
	for i, req := range reqs {
		lane[i] = int32(keyHash(req.Key) % uint32(k))
		start[lane[i]+1]++
	}
	for j := range k {
		start[j+1] += start[j]
	}
	order := make([]int, len(reqs)) // the indexes of reqs, lane after lane
	next := append([]int(nil), start[:k]...)
	for i := range reqs {
		order[next[lane[i]]] = i
		next[lane[i]]++
	}
	var mu sync.Mutex
	run := func(j int) {
		laneFailed := false
		for _, i := range order[start[j]:start[j+1]] {
			errs[i] = l.Process(ctx, reqs[i])
			laneFailed = laneFailed || errs[i] != nil
		}
		if laneFailed {
			mu.Lock()
			failed = true
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	last := -1 // runs here rather than in a goroutine of its own
	for j := range k {
		if start[j] == start[j+1] {
			continue
		}
		if prev := last; prev >= 0 {
			wg.Go(func() { run(prev) })
		}
		last = j
	}
	run(last)
	wg.Wait()
	return batchResult(errs, failed)
}

// batchResult returns nil, or a *dcsync.BatchError of errs when some failed.
func batchResult(errs []error, failed bool) error {
	if !failed {
		return nil
	}
	return &dcsync.BatchError{Errs: errs}
}

// keyHash is FNV-1a of key, inlined: hash/fnv would allocate a hasher a
// request.
func keyHash(key string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return h
}
