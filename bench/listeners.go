package main

import (
	"net"
)

// listeners hands out one counted loopback listener per datacenter, made
// on first use: a Sender needs its peer's address before the peer's
// Syncer, and so its server, exists.
type listeners struct {
	byDC  map[string]net.Listener
	other map[string]string // each datacenter's peer, as config was told
}

func (ls *listeners) get(e *env, dc string) (net.Listener, error) {
	if l := ls.byDC[dc]; l != nil {
		return l, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l = e.wire.listener(l)
	e.onClose(func() { l.Close() })
	if ls.byDC == nil {
		ls.byDC, ls.other = map[string]net.Listener{}, map[string]string{}
	}
	ls.byDC[dc] = l
	return l, nil
}
