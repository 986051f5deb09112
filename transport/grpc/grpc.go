// Package grpc carries dcsync batches over gRPC: a Sender that streams a
// datacenter's batches to a peer, and Register, which serves a
// dcsync.Collector on a *grpc.Server, with the standard health service.
// Import it as dcgrpc, beside google.golang.org/grpc:
//
//	import dcgrpc "github.com/dcsync/dcsync/transport/grpc"
//
// Batches flow on one bidirectional stream, the Collect method of
// dcsync.wire.v1.Replication: the sender writes signed Envelopes without waiting, several
// batches are in flight at once, and each Results coming back names the
// batch it answers by sequence number. The payload schema is the one of
// transport/http (internal/wire's wire.proto); every batch is signed with
// the secret the two datacenters share, and the server refuses an unknown
// datacenter, a bad signature, a stale timestamp or a replayed batch before
// it decodes anything.
//
// Create the grpc.Server with ServerOptions: they bound a message to the
// body limit before it is read, bound the streams of a connection, widen
// the flow-control windows so that batches do not wait for window updates,
// and let the Sender's keepalive pings through. A stream must authenticate
// with its first batch within ServerConfig.FirstTimeout and is closed when
// idle for IdleTimeout; SECURITY.md in the repository has the threat model. The stream uses a codec of its own (content-subtype
// "dcsync-proto"), so the server's other services are unaffected.
//
// # Status codes
//
// A batch refused as a whole for good ends the stream with
// InvalidArgument (malformed batch, over the limits), Unauthenticated
// (unknown datacenter, bad signature, stale timestamp, replay) or
// PermissionDenied (a request whose origin is not the sender), and the
// trailer "dcsync-seq" names that batch. The Sender fails it with an error
// matching dcsync.ErrInvalid or dcsync.ErrUnauthenticated, which is not
// retried, and fails the other batches in flight with a retryable error;
// the next Send opens a new stream. Unavailable, ResourceExhausted,
// DeadlineExceeded and every other code are retryable. Batches a
// receiver could not take for now (closing, busy) are answered with a
// retryable result on a stream that stays open.
package grpc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/wire"
)

// ServiceName is the name of the replication service, also the name its
// health is reported under (TestServerAccepts holds it to the generated
// code's).
const ServiceName = "dcsync.wire.v1.Replication"

// seqTrailer names the batch a final status answers.
const seqTrailer = "dcsync-seq"

// collectMethod is the full name of the stream's method.
const collectMethod = "/" + ServiceName + "/Collect"

// Metadata keys of the stamp that opens a stream.
const (
	mdFrom      = "dcsync-from"
	mdTo        = "dcsync-to"
	mdTimestamp = "dcsync-timestamp"
	mdNonce     = "dcsync-nonce"
	mdSignature = "dcsync-signature"
)

// stampKeys are the metadata keys of a stamp, in auth.ParseStamp's order.
var stampKeys = [...]string{mdFrom, mdTo, mdTimestamp, mdNonce, mdSignature}

// openingMD is the metadata carrying st, which opens a stream.
func openingMD(st *auth.Stamp) metadata.MD {
	md := metadata.MD{mdFrom: {st.From}, mdTimestamp: {strconv.FormatInt(st.Timestamp, 10)},
		mdNonce: {hex.EncodeToString(st.Nonce[:])}, mdSignature: {hex.EncodeToString(st.Signature[:])}}
	if st.To != "" {
		md[mdTo] = []string{st.To}
	}
	return md
}

// openingStamp reads the stamp opening a stream from md, whatever md holds.
func openingStamp(md metadata.MD) (auth.Stamp, error) {
	var v [len(stampKeys)]string
	for i, k := range stampKeys {
		if vs := md.Get(k); len(vs) == 1 {
			v[i] = vs[0]
		} else if len(vs) > 1 {
			return auth.Stamp{}, fmt.Errorf("%w: %d values of metadata %s", auth.ErrMalformed, len(vs), k)
		}
	}
	st, err := auth.ParseStamp(v[0], v[1], v[2], v[3], v[4], func(i int) string { return "metadata " + stampKeys[i] })
	st.Kind = auth.KindStream
	return st, err
}

// codeOf maps the code of a batch refused as a whole to the status that
// ends the stream; ok is false for codes answered on an open stream.
func codeOf(c wire.Code) (code codes.Code, final bool) {
	switch c {
	case wire.Code_CODE_INVALID, wire.Code_CODE_TOO_LARGE, wire.Code_CODE_BATCH_TOO_LARGE:
		return codes.InvalidArgument, true
	case wire.Code_CODE_UNAUTHENTICATED, wire.Code_CODE_UNKNOWN_PEER:
		return codes.Unauthenticated, true
	case wire.Code_CODE_FORGED_ORIGIN:
		return codes.PermissionDenied, true
	}
	return codes.Unavailable, false
}

// streamError is the error of a stream that ended with err. It matches
// dcsync.ErrInvalid or dcsync.ErrUnauthenticated for the final codes and
// keeps the gRPC status reachable with status.FromError.
func streamError(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("dcsync/transport/grpc: %w", wire.ErrStreamBroken)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("dcsync/transport/grpc: stream: %w", err)
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return fmt.Errorf("dcsync/transport/grpc: %w: %w", dcsync.ErrInvalid, err)
	case codes.Unauthenticated, codes.PermissionDenied:
		return fmt.Errorf("dcsync/transport/grpc: %w: %w", dcsync.ErrUnauthenticated, err)
	}
	return fmt.Errorf("dcsync/transport/grpc: stream: %w", err)
}

// seqOf reads the batch a final status names, from the trailer.
func seqOf(md metadata.MD) (uint64, bool) {
	v := md.Get(seqTrailer)
	if len(v) != 1 {
		return 0, false
	}
	seq, err := strconv.ParseUint(v[0], 10, 64)
	return seq, err == nil
}

// ctxErr names the context's cause in the error of an abandoned wait.
func ctxErr(ctx context.Context) error {
	return fmt.Errorf("dcsync/transport/grpc: waiting for results: %w", context.Cause(ctx))
}
