// Package redis is dcsync's MQ wiring over Redis Streams, with the Redis
// implementations of the stores a datacenter shares between its processes:
// a dcsync.DedupeStore, a dcsync.LeaderLock and a dcsync.CheckpointStore.
// Import it as dcredis, beside go-redis:
//
//	import dcredis "github.com/dcsync/dcsync/transport/redis"
//
// # Streams
//
// Each datacenter has its own Redis. A write entering datacenter A goes
//
//	Syncer.Write     →   A:outbound        (Node.Reship: Write returns once it is here)
//	local workers    →   A's Processor     (group "@local" on A:outbound; hop.Stages.Apply)
//	reship workers   →   B:inbound:A       (one consumer group per peer on A:outbound; hop.Stages.Ship)
//	collect workers  →   B:apply           (hop.Stages.Collect: authenticate, validate, dedupe)
//	apply workers    →   B's Processor     (hop.Stages.Apply)
//
// The write is written ahead: Write only adds it to A's outbound stream
// (the Node is a dcsync.WriteAheadReship), and A applies it as its peers do, from a
// consumer group of that stream. So a write is never applied in A without
// being durably queued for the peers, whatever process dies when, and an
// error from Write means the write was applied nowhere (unless it wraps the
// context's error: then it may have been added; writing it again with the
// same ID is safe). Write returns before A has applied the write: a reader
// of A's state right after Write may not see it yet. A write A's Processor
// keeps failing is dead-lettered in A as it would be in a peer, and is
// still applied by the peers: on this wiring the Processor must not reject
// writes for reasons of the application's own; validate before Write.
//
// with keys "{<Prefix>:<dc>}:outbound", "{<Prefix>:<dc>}:inbound:<origin>",
// "{<Prefix>:<dc>}:apply" and "{<Prefix>:<dc>}:dead". The braces are a
// Redis Cluster hash tag: all of a datacenter's keys, its dedupe store's
// included, live in one hash slot, so the wiring runs on a Redis Cluster
// (any goredis.UniversalClient) as on a single server, and a cluster's
// failover moves them together.
//
// # Batch entries
//
// A stream entry carries a batch of requests: their count in field "n" and
// their compact binary encodings, each prefixed by its length, in field
// "b" (an entry of fields "id" and "r", one request, is read too). Writes
// of concurrent Write calls go into the outbound stream together, one entry
// per round trip; a reship worker forwards what it read to the peer's
// inbound stream as entries of up to BatchSize requests, in one round
// trip, and reads on meanwhile: across a WAN up to 8 such batches of a
// worker are in flight, added by the peer's Redis in the order they were
// read (a batch that arrives before its predecessor is parked there until
// it comes; see docs/wan.md); a collect worker hands the writes it accepted on as entries of the
// apply stream; an apply worker applies a batch with hop.Stages.Apply. So
// a hop costs Redis one add, one delivery and one acknowledgement per batch
// rather than per request.
//
// Every hop reads entries with XREADGROUP and acknowledges an entry only
// once all its requests are durably in the next stream, applied or
// dead-lettered, so each hop is at least once, and a write in A's outbound
// stream survives the crash of any process. The acknowledgement goes with
// the worker's next read, in the same round trip. The collect hop reads the
// batch's IDs from the dedupe store in one pipeline before the collect hop
// (hop.Stages.Collect) runs, and passes it a view of the store that
// answers the batch's claims from that read, with a next hop that defers
// its adds to the apply stream; afterwards scripts, in one pipeline, add the accepted
// writes to the apply stream and mark them applied (only those no other
// collector marked meanwhile), and only once they have succeeded are the
// entries acknowledged.
//
// A request of an entry that fails for good (dcsync.IsPermanent, or not
// decodable) goes to the dead-letter stream with the reason, on its own,
// and the rest of the entry flows on. When some requests of an entry fail
// otherwise, the entry stays pending with a record of which did and why;
// once it has been pending for longer than ClaimIdle, another worker claims
// it with XAUTOCLAIM (as it does the entries of a consumer that died) and
// hands on only those; past MaxAttempts deliveries they are dead-lettered
// with their last error. An entry that cannot be decoded at all is
// dead-lettered whole. When the next hop is unreachable (its Redis is
// down), a worker holds its requests and retries them with backoff, without
// counting attempts, until it is back. A janitor trims each stream up to
// the oldest entry some group has not acknowledged, never past it.
//
// # Wiring
//
// In main() of each datacenter's service:
//
//	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: "unicom", Client: local,
//		Peers: map[string]redis.UniversalClient{"telecom": telecomRedis}})
//	syncer, err := dcsync.New(node.Wire(dcsync.Config{Processor: cache, Audit: audit}))
//	go node.Run(ctx, syncer)
//
// Writes go through syncer.Write as with any other wiring. The workers
// drive the Syncer through package hop, one batch at a time, each stage
// with what it needs of the batch as arguments: the encodings the requests
// were read in ride in a per-batch Sender (the reship hop forwards them as
// they came) and in the collect hop's next hop; the batch's dedupe read,
// in its claims. A peer counts as
// having acknowledged a write (for dcsync.WaitAll and dcsync.WaitQuorum)
// once the write is in its inbound stream, and only when a reship worker of
// the writing process delivered it.
package redis
