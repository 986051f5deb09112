// Package wiregrpc is the generated gRPC service of transport/grpc,
// apart from package wire so that importers of transport/http do not link
// gRPC.
package wiregrpc

//go:generate protoc -I ../../.. --go-grpc_out=../../.. --go-grpc_opt=module=github.com/dcsync/dcsync internal/wire/wiregrpc/service.proto
