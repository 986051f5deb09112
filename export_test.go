package dcsync

// PeerState is peerState, for the tests.
type PeerState = peerState

// PeerStates returns the state of the delivery to each of s's peers.
func PeerStates(s *Syncer) map[string]PeerState { return s.queues.peerStates() }
