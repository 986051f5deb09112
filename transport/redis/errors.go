package redis

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync"
)

// ErrUnavailable marks an error as the next hop being unreachable rather than
// the entry being bad: a worker that meets it keeps its entries and retries
// them with backoff until the hop is back, without counting an attempt
// against them. Connection failures to Redis match it by themselves; a
// Processor whose own store is down can wrap this error to get the same
// treatment at the apply hop.
var ErrUnavailable = errors.New("redis: next hop unavailable")

// outcome is what a worker does with an entry after handling it.
type outcome int

const (
	done    outcome = iota // acknowledge
	dead                   // dead-letter and acknowledge: retrying cannot help
	retry                  // leave pending, count an attempt: claimed again later
	stall                  // keep and retry here, counting nothing: the next hop is down
	abandon                // leave pending, count nothing: shutting down
)

// classify tells what to do after handling an entry returned err.
func classify(err error) outcome {
	switch {
	case err == nil:
		return done
	case dcsync.IsPermanent(err), errors.Is(err, ErrMalformed):
		return dead
	case errors.Is(err, dcsync.ErrClosed), errors.Is(err, goredis.ErrClosed),
		errors.Is(err, context.Canceled):
		return abandon
	case unavailable(err):
		return stall
	}
	return retry
}

// unavailable reports whether err says a Redis server (or, through
// ErrUnavailable, any next hop) could not be reached or is not serving yet.
func unavailable(err error) bool {
	var ne net.Error
	var re goredis.Error
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrUnreplicated), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, goredis.ErrPoolTimeout),
		errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &re):
		// A server still loading its data after a restart, or a replica that
		// lost its primary, answers with these; they pass by themselves.
		msg := re.Error()
		for _, p := range []string{"LOADING", "MASTERDOWN", "TRYAGAIN", "READONLY", "CLUSTERDOWN"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
	}
	return false
}
