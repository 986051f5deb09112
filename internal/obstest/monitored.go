package obstest

import (
	"testing"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/monitor"
)

// Monitored is New with a monitor.Monitor as each datacenter's Observer;
// it returns them by datacenter.
func Monitored(t testing.TB, dcs ...string) (*Mesh, map[string]*monitor.Monitor) {
	t.Helper()
	mons := map[string]*monitor.Monitor{}
	m := New(t, func(dc string, peers []string) dcsync.Observer {
		mons[dc] = monitor.New(dc, peers)
		return mons[dc]
	}, dcs...)
	return m, mons
}
