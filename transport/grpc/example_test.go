package grpc_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"

	"github.com/dcsync/dcsync"
	dcgrpc "github.com/dcsync/dcsync/transport/grpc"
)

// Two datacenters replicate over gRPC: telecom registers its Collector on
// a grpc.Server, unicom streams to it with a Sender. Each side knows the
// secret of the pair.
func Example() {
	secret := []byte("shared by unicom and telecom, 32+")
	ctx := context.Background()

	// telecom: the receiving side. It writes nothing here, so its own
	// sender to unicom stays unused; it names unicom as a peer.
	toUnicom, err := dcgrpc.NewSender(dcgrpc.SenderConfig{
		Target: "unicom.example:9090", From: "telecom", To: "unicom", Secret: secret,
	})
	if err != nil {
		panic(err)
	}
	applied := make(chan string, 1)
	telecom, err := dcsync.New(dcsync.Config{DC: "telecom",
		Peers: map[string]dcsync.Sender{"unicom": toUnicom},
		Processor: dcsync.ProcessorFunc(func(_ context.Context, r *dcsync.Request) error {
			if r.Origin != "telecom" {
				applied <- fmt.Sprintf("telecom applied %s=%s from %s", r.Key, r.Payload, r.Origin)
			}
			return nil
		})})
	if err != nil {
		panic(err)
	}
	defer telecom.Close()
	cfg := dcgrpc.ServerConfig{Secrets: map[string][]byte{"unicom": secret}, RequireTo: true}
	srv := grpc.NewServer(dcgrpc.ServerOptions(cfg)...)
	if err := dcgrpc.Register(srv, telecom.Collector(), cfg); err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()

	// unicom: the sending side.
	toTelecom, err := dcgrpc.NewSender(dcgrpc.SenderConfig{
		Target: ln.Addr().String(), From: "unicom", To: "telecom", Secret: secret,
	})
	if err != nil {
		panic(err)
	}
	unicom, err := dcsync.New(dcsync.Config{DC: "unicom",
		Peers:     map[string]dcsync.Sender{"telecom": toTelecom},
		Processor: dcsync.ProcessorFunc(func(context.Context, *dcsync.Request) error { return nil })})
	if err != nil {
		panic(err)
	}
	defer unicom.Close()

	if err := unicom.Write(ctx, &dcsync.Request{Key: "user:42", Op: "set", Payload: []byte("Ada")}, dcsync.WaitAll()); err != nil {
		panic(err)
	}
	fmt.Println(<-applied)
	// Output: telecom applied user:42=Ada from unicom
}
