package grpc

import (
	"context"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/dcsync/dcsync/internal/auth"
	"github.com/dcsync/dcsync/internal/wire"
	"github.com/dcsync/dcsync/internal/wire/wiretest"
)

// FuzzEnvelope opens arbitrary Envelopes as the server does, raw (as any
// caller may send them) and correctly signed over their body (as a buggy
// peer may): never a panic, and a batch that does not verify is refused
// as a whole with a permanent code. The seed corpus runs with every go test.
func FuzzEnvelope(f *testing.F) {
	_, good := wiretest.Batch(f, 2)
	env := &wire.Envelope{Seq: 1, From: "unicom", Timestamp: 1, Nonce: make([]byte, 16), Signature: make([]byte, 32), Body: good}
	b, err := proto.Marshal(env)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, false)
	f.Add(b, true)
	f.Add([]byte("\x12\x00\x22\x03abc"), true)
	env.Encoding = wire.Encoding_ENCODING_GZIP
	env.Body = wiretest.Gzip(good)
	b, _ = proto.Marshal(env)
	f.Add(b, true)

	store := wiretest.NewStore()
	recv := wiretest.Receiver(f, store, nil)
	ep, err := wire.NewEndpoint(recv.Collector(), wire.EndpointConfig{Secrets: wiretest.Secrets(), MaxBody: 64 << 10,
		MaxBatch: 16, ReplayCache: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	s := &server{ep: ep, workers: 1}
	signer, err := auth.NewSigner("unicom", wiretest.Secret)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, msg []byte, sign bool) {
		var env wire.Envelope
		if proto.Unmarshal(msg, &env) != nil {
			return
		}
		if sign {
			signer.Encoding = wire.EncodingName(env.Encoding)
			signer.To = env.To
			st := signer.SignEnvelope(env.Seq, env.Deadline, env.Body)
			env.From, env.Timestamp, env.Nonce, env.Signature = st.From, st.Timestamp, st.Nonce[:], st.Signature[:]
		}
		b := s.open(context.Background(), "unicom", &env)
		if b.res != nil {
			if b.res.Code == wire.Code_CODE_OK {
				t.Fatal("refused with CODE_OK")
			}
			if !sign && !b.res.Code.Permanent() && b.res.Code != wire.Code_CODE_RETRY {
				t.Fatalf("an unsigned envelope refused with a retryable %v", b.res.Code)
			}
			return
		}
		if !sign {
			t.Fatalf("an envelope nobody signed opened: %+v", &env)
		}
		if len(b.reqs) > 16 {
			t.Fatalf("%d requests opened, limit 16", len(b.reqs))
		}
	})
}

// FuzzOpeningStamp reads arbitrary metadata as the stamp opening a stream,
// as the gate and the handler do: never a panic, and what is kept is
// bounded. The seed corpus runs with every go test.
func FuzzOpeningStamp(f *testing.F) {
	signer, err := auth.NewSigner("unicom", wiretest.Secret)
	if err != nil {
		f.Fatal(err)
	}
	signer.To = "telecom"
	seed := signer.SignStream()
	md := openingMD(&seed)
	f.Add(md[mdFrom][0], md[mdTo][0], md[mdTimestamp][0], md[mdNonce][0], md[mdSignature][0], false)
	f.Add("unicom", "", "-1", "zz", "", true)
	f.Add("", "telecom", "9223372036854775808", md[mdNonce][0], md[mdSignature][0]+"00", false)
	v, err := auth.NewVerifier(auth.VerifierConfig{Secrets: wiretest.Secrets(), DC: "telecom", ReplayCache: 1 << 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, from, to, ts, nonce, sig string, twice bool) {
		md := metadata.MD{mdFrom: {from}, mdTo: {to}, mdTimestamp: {ts}, mdNonce: {nonce}, mdSignature: {sig}}
		if twice {
			md[mdFrom] = append(md[mdFrom], from)
		}
		st, err := openingStamp(md)
		if err != nil {
			return
		}
		if twice || len(st.From) > auth.MaxName || len(st.To) > auth.MaxName || st.Kind != auth.KindStream {
			t.Fatalf("kept %+v from %v", st, md)
		}
		// Only the seed's signature (made in the process that built the
		// corpus, so not comparable here) verifies: it is unicom's, for
		// telecom.
		if v.Verify(context.Background(), &st, nil) == nil && (st.From != "unicom" || st.To != "telecom") {
			t.Fatalf("verified %+v", st)
		}
	})
}
