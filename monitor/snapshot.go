package monitor

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/dcsync/dcsync"
)

// Snapshot is the state of a datacenter at one moment. It marshals to the
// JSON that the status page serves and `dcsync status -json` prints.
type Snapshot struct {
	DC       string    `json:"dc"`
	Time     time.Time `json:"time"`
	Started  time.Time `json:"started"`
	Written  uint64    `json:"written"`  // writes accepted here
	Rejected uint64    `json:"rejected"` // writes the Processor refused
	Peers    []Peer    `json:"peers"`
	Failing  []Failing `json:"failing"` // writes whose last delivery to a peer failed, oldest first
	Passes   []Pass    `json:"passes"`  // the last reconciler passes, newest first
	// Audit is the state of the audit log, when a Source fills it.
	Audit *Audit `json:"audit,omitempty"`
	// DeadLetters are those of the MQ wiring, when a Source fills them.
	DeadLetters []DeadLetter `json:"dead_letters,omitempty"`
	// Refused counts, by reason ("unauthenticated", "invalid", "too_large":
	// batches a transport refused whole; "clock_skew": writes whose version
	// was too far ahead), what peers sent that was refused before it was
	// collected, when SyncerSource fills it.
	Refused map[string]uint64 `json:"refused,omitempty"`
	// Problems are what a Source could not read.
	Problems []string `json:"problems,omitempty"`
}

// Peer is the state of one peer, as seen from here.
type Peer struct {
	Name string `json:"name"`
	// Down is set while every batch sent to the peer since DownSince failed.
	Down      bool      `json:"down"`
	DownSince time.Time `json:"down_since,omitzero"`
	LastOK    time.Time `json:"last_ok,omitzero"` // last batch the peer accepted
	LastError string    `json:"last_error,omitempty"`
	Shipped   uint64    `json:"shipped"`  // deliveries the peer accepted
	Failed    uint64    `json:"failed"`   // deliveries given up, left to the reconciler
	Repaired  uint64    `json:"repaired"` // deliveries of the reconciler the peer accepted
	// Backlog is how many writes wait to be sent to the peer, or are on
	// their way: exact with SyncerSource (the Syncer's PeerStats: its
	// queue, or its Journal's unacknowledged writes when larger), else
	// derived from the events observed, which may briefly count a write
	// still in its first send.
	Backlog uint64 `json:"backlog"`
	// Oldest is the age of the oldest write of the Journal's backlog
	// (with SyncerSource and a Journal).
	Oldest   time.Duration `json:"oldest_ns,omitempty"`
	InFlight int64         `json:"in_flight"` // batches being sent
	// From the peer: writes collected, duplicates dropped, requests failed,
	// batches rejected whole.
	Collected  uint64 `json:"collected"`
	Duplicates uint64 `json:"duplicates"`
	Errors     uint64 `json:"errors"`
	Invalid    uint64 `json:"invalid"`
	// Lag is, minute by minute (oldest first, minutes with no write left
	// out), how long after their origin's clock the peer's writes were
	// applied here.
	Lag []LagPoint `json:"lag"`
}

// LagPoint is the lag of one minute's applied writes.
type LagPoint struct {
	Minute time.Time     `json:"minute"`
	Count  int           `json:"count"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
}

// Failing is a write whose delivery to a peer is failing.
type Failing struct {
	ID       string    `json:"id"`
	Peer     string    `json:"peer"`
	TraceID  string    `json:"trace_id,omitempty"` // W3C trace ID from the write's header
	Since    time.Time `json:"since"`
	Last     time.Time `json:"last"`
	Attempts int       `json:"attempts"` // failed batches, each with its retries
	Error    string    `json:"error"`
}

// Pass is one reconciler pass.
type Pass struct {
	Time   time.Time     `json:"time"`
	Error  string        `json:"error,omitempty"`
	Report dcsync.Report `json:"report"`
}

// Audit is the state of the audit log. SyncerSource fills the Syncer's
// side (its queue); the audit log's Source (audit/elastic's Log.Source) the
// store's side.
type Audit struct {
	Appended   uint64 `json:"appended"`
	Indexed    uint64 `json:"indexed"`
	Rejected   uint64 `json:"rejected"`
	Spooled    uint64 `json:"spooled"`
	Pending    int64  `json:"spool_pending"`         // records waiting in the spool
	SpoolBytes int64  `json:"spool_bytes,omitempty"` // size of the spool's files
	Queued     int64  `json:"queued,omitempty"`      // records waiting in the Syncer's audit queue
	Dropped    uint64 `json:"dropped,omitempty"`     // records the Syncer gave up: the log failed to take them
	FullWaits  uint64 `json:"full_waits,omitempty"`  // writes that waited for a log full of incomplete writes
}

// DeadLetter is one dead letter of the MQ wiring.
type DeadLetter struct {
	ID        string `json:"id"`
	Hop       string `json:"hop"`
	RequestID string `json:"request_id,omitempty"`
	Reason    string `json:"reason"`
}

// Snapshot returns the state now, with what the Sources add.
func (m *Monitor) Snapshot(ctx context.Context) Snapshot {
	now := m.now()
	s := Snapshot{DC: m.dc, Time: now, Started: m.started, Written: m.written.Load(), Rejected: m.rejected.Load()}
	queued := m.queued.Load()
	for _, name := range m.names {
		p := m.peers[name]
		ps := Peer{Name: name, Shipped: p.shipped.Load(), Failed: p.failed.Load(), Repaired: p.repaired.Load(),
			InFlight: p.inFlight.Load(), Collected: p.collected.Load(), Duplicates: p.dups.Load(),
			Errors: p.errors.Load(), Invalid: p.invalid.Load()}
		if sent := p.sent.Load(); queued > sent {
			ps.Backlog = queued - sent
		}
		p.mu.Lock()
		ps.DownSince, ps.LastOK, ps.LastError = p.downSince, p.lastOK, p.lastErr
		ps.Down = !p.downSince.IsZero()
		minute := now.Unix() / 60
		for i := minute - LagMinutes + 1; i <= minute; i++ {
			l := &p.lag[i%LagMinutes]
			if l.minute == i && l.n > 0 {
				ps.Lag = append(ps.Lag, l.point())
			}
		}
		p.mu.Unlock()
		s.Peers = append(s.Peers, ps)
	}
	m.mu.Lock()
	for _, f := range m.failing {
		s.Failing = append(s.Failing, f)
	}
	for i := len(m.passes) - 1; i >= 0; i-- {
		s.Passes = append(s.Passes, m.passes[i])
	}
	m.mu.Unlock()
	slices.SortFunc(s.Failing, func(a, b Failing) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(a.ID+a.Peer, b.ID+b.Peer)
	})
	for _, src := range m.sources {
		src.Fill(ctx, &s)
	}
	return s
}

// Peer returns the peer named name, or nil.
func (s *Snapshot) Peer(name string) *Peer {
	for i := range s.Peers {
		if s.Peers[i].Name == name {
			return &s.Peers[i]
		}
	}
	return nil
}

// lagBuckets bounds the lag buckets: 100µs times powers of √2, up to about
// half an hour; the last bucket holds everything longer.
const lagBuckets = 50

var lagBounds = func() (b [lagBuckets]time.Duration) {
	for i := range b {
		b[i] = time.Duration(float64(100*time.Microsecond) * math.Pow(math.Sqrt2, float64(i)))
	}
	b[lagBuckets-1] = math.MaxInt64
	return b
}()

// lagMinute is a histogram of the lags of one minute.
type lagMinute struct {
	minute int64 // Unix minute
	n      int
	max    time.Duration
	counts [lagBuckets]uint32
}

// lagAt returns the histogram of the minute of now, reset if it held an
// older minute. p.mu is held.
func (p *peerState) lagAt(now time.Time) *lagMinute {
	minute := now.Unix() / 60
	l := &p.lag[minute%LagMinutes]
	if l.minute != minute {
		*l = lagMinute{minute: minute}
	}
	return l
}

func (l *lagMinute) add(d time.Duration) {
	d = max(d, 0) // clocks of two datacenters differ
	i, _ := slices.BinarySearch(lagBounds[:], d)
	l.counts[i]++
	l.n++
	l.max = max(l.max, d)
}

func (l *lagMinute) point() LagPoint {
	return LagPoint{Minute: time.Unix(l.minute*60, 0).UTC(), Count: l.n,
		P50: l.quantile(0.5), P99: l.quantile(0.99), Max: l.max}
}

// quantile returns the upper bound of the bucket holding quantile q, or the
// maximum when that is smaller.
func (l *lagMinute) quantile(q float64) time.Duration {
	rank := int(math.Ceil(q * float64(l.n)))
	seen := 0
	for i, c := range l.counts {
		seen += int(c)
		if seen >= rank {
			return min(lagBounds[i], l.max)
		}
	}
	return l.max
}
