// Package memlock is an in-process dcsync.LeaderLock for the tests: the
// reconcilers of a test that share one Lock elect one of them. A service
// uses a lock its processes share (transport/redis's Lock).
package memlock

import (
	"context"
	"sync"
	"time"
)

// Lock is an in-process LeaderLock: reconcilers sharing one Lock
// elect one of them. The zero value is unlocked.
type Lock struct {
	mu     sync.Mutex
	holder string
	until  time.Time
}

// Acquire implements dcsync.LeaderLock.
func (l *Lock) Acquire(_ context.Context, token string, ttl time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.holder != "" && l.holder != token && now.Before(l.until) {
		return false, nil
	}
	l.holder, l.until = token, now.Add(ttl)
	return true, nil
}

// Release implements dcsync.LeaderLock.
func (l *Lock) Release(_ context.Context, token string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder == token {
		l.holder = ""
	}
	return nil
}
