// Package wire is the wire format of dcsync's RPC transports: the protobuf
// schema of a batch of writes and of its results (wire.proto), conversion
// to and from dcsync.Request, the mapping of dcsync errors to result codes
// and back, and the receiving and sending steps both transports share.
package wire

//go:generate protoc -I ../.. --go_out=../.. --go_opt=module=github.com/dcsync/dcsync internal/wire/wire.proto
