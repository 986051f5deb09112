package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/admin"
	"github.com/dcsync/dcsync/health"
	"github.com/dcsync/dcsync/metrics/prom"
	"github.com/dcsync/dcsync/monitor"
	"github.com/dcsync/dcsync/tracing"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

// A datacenter with everything an operator looks at: metrics, traces,
// health and the status page, on one mux.
func Example() {
	mon := monitor.New("eu", []string{"us"})
	reg := prometheus.NewRegistry()
	met := prom.New(mon, prom.Options{})
	reg.MustRegister(met)
	obs := dcsync.Observers(tracing.New("eu", tracing.Options{}), mon, met)

	net := memtransport.NewNetwork(1)
	s, err := dcsync.New(dcsync.Config{DC: "eu", Observer: obs, Peers: net.Peers("eu", "eu", "us"),
		Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	checker, err := health.New(health.Config{Monitor: mon})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/healthz", health.Live())
	mux.Handle("/readyz", checker.Ready())
	mux.Handle("/status/", http.StripPrefix("/status", admin.Handler(admin.Config{Monitor: mon, Health: checker})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Printf("%d %s", res.StatusCode, body)
	// Output: 200 ready
}
