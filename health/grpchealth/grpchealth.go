// Package grpchealth publishes a health.Checker's readiness through the
// standard gRPC health service (grpc.health.v1.Health), so that gRPC load
// balancers and Kubernetes' gRPC probes see a datacenter turn NOT_SERVING
// when it is not ready, and SERVING again when it is.
//
//	hs := grpchealth.NewServer()
//	healthpb.RegisterHealthServer(grpcServer, hs)
//	go grpchealth.Run(ctx, hs, checker, 5*time.Second, "", "dcsync.Collector")
package grpchealth

import (
	"context"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	dcsynchealth "github.com/dcsync/dcsync/health"
)

// NewServer returns grpc's health server, for registration with
// healthpb.RegisterHealthServer.
func NewServer() *health.Server { return health.NewServer() }

// Run sets the status of services (the empty name is the server as a
// whole) in hs from c's readiness at once and then every interval, until
// ctx ends; then it marks them NOT_SERVING, as a server going away should,
// and returns ctx's error.
func Run(ctx context.Context, hs *health.Server, c *dcsynchealth.Checker, interval time.Duration, services ...string) error {
	if len(services) == 0 {
		services = []string{""}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st := healthpb.HealthCheckResponse_SERVING
		if !c.Check(ctx).Ready {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		for _, svc := range services {
			hs.SetServingStatus(svc, st)
		}
		select {
		case <-ctx.Done():
			hs.Shutdown()
			return ctx.Err()
		case <-t.C:
		}
	}
}
