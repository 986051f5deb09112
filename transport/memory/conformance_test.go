package memory_test

import (
	"testing"

	"github.com/dcsync/dcsync"
	memtransport "github.com/dcsync/dcsync/transport/memory"
	"github.com/dcsync/dcsync/transport/transporttest"
)

// The memory transport, on a perfect link, passes the conformance suite of
// every transport: how a transport of your own runs it.
func TestConformance(t *testing.T) {
	network := memtransport.NewNetwork(1)
	transporttest.Run(t, transporttest.Transport{
		Serve: func(_ testing.TB, c dcsync.Collector) (string, func()) {
			network.Attach(transporttest.To, c)
			return transporttest.To, func() { network.Attach(transporttest.To, nil) }
		},
		Sender: func(_ testing.TB, addr string) dcsync.Sender {
			return network.Sender(transporttest.From, addr)
		},
	})
}
