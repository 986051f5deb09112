// Package dcsync carries every write a service accepts in one datacenter to
// every other datacenter, records each stage of that journey in an audit
// log, and repairs what went missing.
//
// # The flow of one write
//
// A write enters datacenter A through [Syncer.Write], which fills its ID (a
// UUIDv7), Origin and Version (a hybrid logical clock reading), applies it
// locally through the [Processor], and hands it to the [Reship] stage, which
// sends it to every peer through that peer's [Sender]. In peer B, the
// [Collector] authenticates the sending datacenter, validates the write,
// drops it if it was applied before, and applies it through B's Processor.
// Every stage appends a [Record] — {A, process}, {A, reship → B},
// {B, collect}, {B, apply} — to the [AuditLog], under the write's ID.
//
// A [Reconciler] in A reads the trails of A's writes in a time window, and
// re-sends every write that some peer has no ok apply record for, whether a
// stage failed or a process died before logging anything. It runs every
// minute by default, moves a checkpoint forward so that each pass reads only
// the new window, and holds a [LeaderLock] so one is active per datacenter.
//
// # Consistency
//
// Delivery is at least once: senders retry, the reconciler re-sends, and
// transports may duplicate. The Collector drops writes already applied
// (by ID, through a [DedupeStore]), which makes delivery effectively once.
// Writes to one Key in two datacenters at once are ordered by (Version,
// Origin) — last writer wins — and a Processor that applies only newer
// writes (see [Request.Newer]) converges to the same value everywhere,
// whatever the order of delivery. Only the origin reships: a collected write
// is never sent on, so a full mesh has no loops. A write whose local
// processing fails is returned to its caller and never replicated. By
// default Write returns once the write is applied here and queued for the
// peers; [WaitAll] and [WaitQuorum] make it wait for the peers.
//
// # Durability
//
// Without a [Journal], a write applied here and queued in memory is lost to
// the peers if the process dies before shipping it, and so is its audit
// record: a kill -9 can leave it applied in one datacenter only. With
// Config.Journal (package journal), Write appends the write to a local
// journal before applying it; when the Syncer starts again it applies what
// was journaled and not applied, and ships what no peer acknowledged, so
// an acknowledged write survives kill -9 (and power loss, with the journal's
// fsync-always policy). [Syncer.Shutdown] bounds the drain by a context and
// counts what it left to the journal. An error from Write matching
// [ErrNotReplicated] means the write was applied here; any other error
// means it was applied nowhere. docs/durability.md states the guarantee of
// each configuration.
//
// # Wiring
//
// The root package holds the domain and imports no transport or store.
// Transports live in transport/memory, transport/http, transport/grpc and
// transport/redis (Redis Streams, the MQ wiring); audit stores in
// audit/memory and audit/elastic. Switching wiring is a change of Config in
// main(), not of the write path. The MQ wirings (transport/redis,
// transport/kafka), whose own workers carry writes between durable queues,
// drive a Syncer one batch at a time through package hop, and are
// WriteAheadReships.
package dcsync
