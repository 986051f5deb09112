package dcsync

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces out the retries of a failed delivery: exponential, with
// jitter so that many senders do not retry in step. The zero value of each
// field selects its default.
type Backoff struct {
	Initial  time.Duration // first delay; default 10ms
	Max      time.Duration // cap of one delay; default 5s
	Attempts int           // tries in all, the first included; default 5
}

func (b Backoff) withDefaults() Backoff {
	b.Initial = or(b.Initial, 10*time.Millisecond)
	b.Max = or(b.Max, 5*time.Second)
	b.Attempts = or(b.Attempts, 5)
	return b
}

// Delay returns the wait before try number attempt+1 (attempt counts from 1):
// a random duration between half and all of Initial·2^(attempt-1), capped at
// Max.
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Max
	if attempt < 32 {
		d = min(b.Initial<<(attempt-1), b.Max)
	}
	return d/2 + rand.N(d/2+1)
}
