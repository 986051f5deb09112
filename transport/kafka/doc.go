// Package kafka is dcsync's MQ wiring over Apache Kafka, with franz-go:
// what package transport/redis does over Redis Streams, for teams whose
// datacenters each run a Kafka cluster. Importers usually name it
// dckafka.
//
// # Topics
//
// Each datacenter has its own cluster. A write entering datacenter A goes
//
//	Syncer.Write      →  A.outbound         (Node.Reship: Write returns once every in-sync replica has it)
//	local group       →  A's Processor      (hop.Stages.Apply: A applies its own writes from the topic)
//	reship group      →  B.inbound.A        (one group per peer on A.outbound; hop.Stages.Ship)
//	collect group     →  B.apply            (hop.Stages.Collect: authenticate, validate, dedupe)
//	apply group       →  B's Processor      (hop.Stages.Apply)
//
// with topics "<Prefix>.<dc>.outbound", "<Prefix>.<dc>.inbound.<origin>",
// "<Prefix>.<dc>.apply" and "<Prefix>.<dc>.dead", and groups
// "<Prefix>.<dc>.local", "<Prefix>.<dc>.reship.<peer>",
// "<Prefix>.<dc>.collect" and "<Prefix>.<dc>.apply". Node.Setup creates
// the topics (Partitions, Replication) unless they exist.
//
// Write is write-ahead: it only produces the write to the outbound topic,
// with an idempotent producer and acks=all, and returns once the brokers
// have it; the datacenter's own local group applies it, as the reship
// groups ship it. So no write is applied anywhere before it is durably
// queued for every datacenter, and an error from Write means it was
// applied nowhere (unless the error wraps the context's: then the write
// may have been taken, and writing it again with the same ID is safe).
//
// # Records and delivery
//
// A record carries one request, keyed by Request.Key: the default
// partitioner keeps a key's writes in one partition of every topic, so
// they stay in order through every hop. Kafka batches records on its own:
// concurrent Writes share produce requests, and a worker polls up to
// BatchSize records and hands them on at once, in one produce per hop.
// Under load (records coming at 3200 a second or more on a hop) a worker
// waits Gather before it polls again, so that each hop's requests carry
// more records: the brokers' CPU is what bounds the path.
//
// Every hop is a consumer group whose workers poll, hand the requests on,
// and only then mark their offsets for commit; the client commits marked
// offsets every CommitInterval, before a rebalance moves partitions (which
// waits for the batch under way) and when a worker stops. So every hop is
// at least once, and a write in the outbound topic survives the crash of
// any process; the collector's dedupe store and a version-honouring
// Processor make the whole effectively once. A crashed process's
// partitions go to the group's other members after SessionTimeout.
//
// A request that fails for good (dcsync.IsPermanent: invalid, forged,
// refused by the Processor as invalid) or that is not decodable goes to
// the dead-letter topic, with the reason and where it came from in its
// headers (see DeadLetter), and the rest of the batch flows on. A request
// that fails otherwise is retried with Backoff, and dead-lettered after
// MaxAttempts. When the next hop is unavailable (its broker is down, or
// the error wraps ErrUnavailable), the worker holds its requests and
// retries them, without counting attempts, until it is back.
//
// # Wiring
//
// In main() of each datacenter's service:
//
//	node, err := dckafka.NewNode(dckafka.NodeConfig{DC: "unicom", Brokers: []string{"kafka-unicom:9092"},
//		Peers: map[string][]string{"telecom": {"kafka-telecom:9092"}}})
//	syncer, err := dcsync.New(node.Wire(dcsync.Config{Processor: cache, Audit: audit, Dedupe: dedupe}))
//	go node.Run(ctx, syncer)
//	// on the way out: cancel ctx, wait for Run, syncer.Close(), node.Close()
//
// Several processes of a datacenter may run a Node each: the consumer
// groups spread the partitions over them. They must then share one
// dcsync.DedupeStore (for example transport/redis's Dedupe); the default
// is each process's own memory. A peer counts as having acknowledged a
// write (for dcsync.WaitAll and dcsync.WaitQuorum) once the write is in its
// inbound topic, and only when a reship worker of the writing process
// delivered it.
//
// The Node drives the Syncer through package hop, one batch at a time:
// the reship groups through hop.Stages.Ship, the collect group through
// Collect (whose next hop produces to the apply topic), and the local and
// apply groups through Apply; Wire installs it as the Syncer's Reship, a
// dcsync.WriteAheadReship.
package kafka
