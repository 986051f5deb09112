package dcsync

import "time"

// PeerStats is the delivery status of one peer, so an operator (and a
// test) can see writes stranded on their way to it.
type PeerStats struct {
	// Queued is how many writes wait in memory for a Send to the peer, or
	// are in one (the built-in Reship only).
	Queued int
	// Backlog is how many writes of this datacenter the peer has not
	// acknowledged, as the Journal knows them: queued, given up, or from
	// before a restart. Zero without a Journal.
	Backlog int
	// Oldest is the age of the oldest write in Backlog; zero when none.
	Oldest time.Duration
	// DownSince is when the peer was last seen failing whole batches, in a
	// row up to now; zero while it answers.
	DownSince time.Time
}

// peerStats returns the status of every peer.
func (s *Syncer) peerStats() map[string]PeerStats {
	if len(s.peers) == 0 {
		return nil
	}
	m := make(map[string]PeerStats, len(s.peers))
	now := time.Now()
	for name := range s.peers {
		var ps PeerStats
		if s.journal != nil {
			var oldest time.Time
			ps.Backlog, oldest = s.journal.Backlog(name)
			if ps.Backlog > 0 {
				ps.Oldest = now.Sub(oldest)
			}
		}
		m[name] = ps
	}
	if s.queues != nil {
		s.queues.peerStats(m)
	}
	return m
}

// held returns how many deliveries the queues hold.
func (q *queueReship) held() int {
	n := 0
	for _, p := range q.peers {
		for _, l := range p.lanes {
			l.mu.Lock()
			n += l.held
			l.mu.Unlock()
		}
	}
	return n
}

// peerStats fills the queue side of each peer's status.
func (q *queueReship) peerStats(m map[string]PeerStats) {
	for _, p := range q.peers {
		ps := m[p.name]
		for _, l := range p.lanes {
			l.mu.Lock()
			ps.Queued += l.held
			l.mu.Unlock()
		}
		p.mu.Lock()
		ps.DownSince = p.downSince
		p.mu.Unlock()
		m[p.name] = ps
	}
}
