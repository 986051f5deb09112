package kafka

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dcsync/dcsync"
)

// ErrUnavailable marks an error as the next hop being unreachable rather
// than the request being bad: a worker that meets it keeps the request and
// retries it with backoff until the hop is back, without counting an
// attempt against it. Broker connection failures match it by themselves;
// a Processor whose own store is down can wrap this error to get the same
// treatment at the apply hops.
var ErrUnavailable = errors.New("kafka: next hop unavailable")

// outcome is what a worker does with a request after handling it.
type outcome int

const (
	done    outcome = iota // hand on: commit
	dead                   // dead-letter: retrying cannot help
	retry                  // retry, counting an attempt
	stall                  // retry, counting nothing: the next hop is down
	abandon                // stop, commit nothing: shutting down
)

// classify tells what to do after handling a request returned err; with
// stallAll, every failure that is not permanent is the next hop's.
func classify(err error, stallAll bool) outcome {
	if err == nil {
		return done
	}
	if dcsync.IsPermanent(err) {
		return dead
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, dcsync.ErrClosed) || errors.Is(err, kgo.ErrClientClosed) {
		return abandon
	}
	if stallAll || unavailable(err) {
		return stall
	}
	return retry
}

// unavailable reports whether err says a broker (or, through
// ErrUnavailable, any next hop) could not be reached or is not serving,
// or that a write is held by another collector (dcsync.ErrInFlight).
func unavailable(err error) bool {
	var ne net.Error
	return errors.Is(err, ErrUnavailable) || errors.As(err, &ne) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, dcsync.ErrInFlight) ||
		kerr.IsRetriable(err)
}
