package grpchealth_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dcsync/dcsync/health"
	"github.com/dcsync/dcsync/health/grpchealth"
	"github.com/dcsync/dcsync/hop"
	"github.com/dcsync/dcsync/internal/obstest"
	memtransport "github.com/dcsync/dcsync/transport/memory"
)

func TestStatusChanges(t *testing.T) {
	mesh, mons := obstest.Monitored(t, "a", "b")
	c, err := health.New(health.Config{Monitor: mons["a"], PeerDownAfter: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := grpchealth.NewServer()
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- grpchealth.Run(runCtx, hs, c, 10*time.Millisecond, "", "dcsync") }()

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	await := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			res, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "dcsync"})
			if err == nil && res.Status == want {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("status never became %v: %v, %v", want, res, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	await(healthpb.HealthCheckResponse_SERVING)
	mesh.Down("b")
	reqs := mesh.Write(t, "a", 2)
	await(healthpb.HealthCheckResponse_NOT_SERVING)
	mesh.Net.SetFaults("a", "b", memtransport.Faults{})
	if err := hop.Err(hop.Of(mesh.Syncers["a"]).Ship(ctx, "b", nil, reqs)); err != nil {
		t.Fatal(err)
	}
	await(healthpb.HealthCheckResponse_SERVING)
	stop()
	<-done
	await(healthpb.HealthCheckResponse_NOT_SERVING)
}
