// Package redis is dcsync's MQ wiring over Redis Streams, with the Redis
// implementations of the stores a datacenter shares between its processes:
// a dcsync.DedupeStore, a dcsync.LeaderLock and a dcsync.CheckpointStore.
// Importers usually name it dcredis, beside go-redis.
//
// # Streams
//
// Each datacenter has its own Redis. A write entering datacenter A goes
//
//	A's Processor, then  A:outbound        (Node.Reship: Write returns once it is here)
//	reship workers   →   B:inbound:A       (one consumer group per peer on A:outbound)
//	collect workers  →   B:apply           (dcsync's Collector: authenticate, validate, dedupe)
//	apply workers    →   B's Processor     (Syncer.Apply)
//
// with keys "<Prefix>:<dc>:outbound", "<Prefix>:<dc>:inbound:<origin>",
// "<Prefix>:<dc>:apply" and "<Prefix>:<dc>:dead". An entry holds the
// request ID in field "id", readable with redis-cli, and the request in a
// compact binary encoding in field "r".
//
// Every hop reads a batch with XREADGROUP and acknowledges its entries only
// once they are durably in the next stream or applied, so each hop is at
// least once, and a write in A's outbound stream survives the crash of any
// process. The collect hop claims a batch's IDs in the dedupe store in one
// pipeline, and adds the accepted writes to the apply stream, marks them
// applied and acknowledges the batch in one MULTI. Entries pending with a
// consumer for longer than ClaimIdle (it died, or failed them) are claimed
// by another with XAUTOCLAIM; an entry delivered more than MaxAttempts
// times, rejected for good (dcsync.IsPermanent), or not decodable goes to
// the dead-letter stream with the reason, and the rest flow on. When the
// next hop is unreachable (its Redis is down), a worker holds its batch and
// retries it with backoff, without counting attempts, until it is back. A
// janitor trims each stream up to the oldest entry some group has not
// acknowledged, never past it.
//
// # Wiring
//
// In main() of each datacenter's service:
//
//	node, err := dcredis.NewNode(dcredis.NodeConfig{DC: "unicom", Client: local,
//		Peers: map[string]*redis.Client{"telecom": telecomRedis}})
//	syncer, err := dcsync.New(node.Wire(dcsync.Config{Processor: cache, Audit: audit}))
//	go node.Run(ctx, syncer)
//
// Writes go through syncer.Write as with any other wiring. A peer counts as
// having acknowledged a write (for dcsync.WaitAll and dcsync.WaitQuorum)
// once the write is in its inbound stream, and only when a reship worker of
// the writing process delivered it.
package redis
