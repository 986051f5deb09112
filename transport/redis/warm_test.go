package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/dcsync/dcsync/internal/netdelay"
	"github.com/dcsync/dcsync/internal/testserver"
)

// Across a link of nearRTT or longer, a Node opens and handshakes, before
// any write, as many connections of the peer's client as its reship
// workers' batches in flight take at once, and its workers' pace knows the
// link's round trip from the PINGs.
func TestWarmOpensThePeersConnectionsAcrossAWAN(t *testing.T) {
	const delay = 10 * time.Millisecond
	ru, rt := testserver.StartRedis(t), testserver.StartRedis(t)
	line, err := netdelay.Start(netdelay.Config{Target: rt.Addr(), Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { line.Close() })
	remote := goredis.NewClient(&goredis.Options{Addr: line.Addr(), ClientName: "unicom-peer"})
	t.Cleanup(func() { remote.Close() })
	cu, ct := newClient(t, ru.Addr()), newClient(t, rt.Addr())
	cfg := testConfig("unicom", cu, map[string]goredis.UniversalClient{"telecom": remote})
	u := start(t, "unicom", ru, cfg, newStore())
	want := min(2*maxFlights, remote.Options().PoolSize) // Workers is 2

	// The peer's connections from unicom's client (HELLO named them) whose
	// last command is a PING: past their handshake, and no batch's.
	handshaken := func() int {
		list, err := ct.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range strings.Split(list, "\n") {
			if strings.Contains(c, " name=unicom-peer ") && strings.Contains(c, " cmd=ping ") {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, func() bool { return handshaken() >= want },
		func() string { return fmt.Sprintf("%d of %d connections handshaken", handshaken(), want) })
	if got := u.node.links["telecom"].get(); got < 2*delay {
		t.Errorf("round trip %v, under the line's two delays of %v", got, delay)
	}
	if st := remote.PoolStats(); int(st.TotalConns) < want {
		t.Errorf("the pool holds %d connections, want %d", st.TotalConns, want)
	}
}
