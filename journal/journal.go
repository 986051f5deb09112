// Package journal is an embedded, durable write-ahead journal for a
// dcsync.Syncer on the RPC path: local segment files with group commit, no
// server. Give one to dcsync.Config.Journal and every write reaches it before
// it is applied; what no peer acknowledged survives a crash of the process
// and is applied (when it was not yet) and shipped again when the Syncer
// starts.
//
// # Guarantees
//
// A write is in the journal when its Append returns: its bytes have been
// handed to the operating system with write(2). From then on it survives
// kill -9, an out-of-memory kill or a panic of the process. Whether it also
// survives a power loss or a kernel crash depends on Options.Sync:
//
//   - SyncAlways: each group commit is fsynced before Append returns. A
//     write acknowledged by Write survives power loss. Slowest: one fsync
//     per group of concurrent writes.
//   - SyncInterval (the default): the files are fsynced every
//     Options.SyncInterval (default 1s). A power loss loses at most the
//     writes of the last interval; kill -9 loses nothing.
//   - SyncNever: never fsynced but for the last file on Close; the kernel
//     writes the pages back when it likes (about 30s on Linux). kill -9
//     loses nothing.
//
// Marks that a write was applied or acknowledged by a peer are written in
// the next group commit and are not waited for: losing one in a crash only
// makes the write be applied (idempotently) or shipped (deduplicated by the
// peer) again. A mark that a write was rejected is waited for, so that a
// rejected write is never applied on recovery.
//
// # Why segment files
//
// The journal is written once per write and read only on start, and an
// entry is dropped once every peer acknowledged it: an append-only log
// whose oldest files are deleted whole is the shape of that use. Measured
// in the benchmark command (BENCHMARKS.md), its cost on the HTTP path is
// one encode and one buffered append under a lock per write, and one
// write(2) per group of concurrent writes; an embedded key-value store
// (bbolt, Pebble) would add a B-tree or LSM update and its compactions to
// every write and delete, for lookups the journal never makes.
//
// # Layout
//
// Dir holds files named by the sequence number of their first write,
// 00000000000000000001.wal and so on. A new file is started on open and
// when the current one exceeds Options.SegmentSize; a file is deleted once
// every write in it is done: rejected, or applied and acknowledged by every
// peer. When the oldest file is mostly done (at most one write in 16 still
// needed, with 4 files or more), its remaining writes are copied to the end
// and it is deleted, so that a write one peer never acknowledges does not
// keep every file after it. Each record is framed by its length and a CRC-32C, so a record torn
// by a crash is detected and ignored. One process at a time may open a
// directory.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/internal/wire"
)

// SyncPolicy says when the journal's files are fsynced.
type SyncPolicy int

const (
	// SyncInterval fsyncs every Options.SyncInterval: survives kill -9,
	// loses at most the last interval to a power loss.
	SyncInterval SyncPolicy = iota
	// SyncAlways fsyncs every group commit before Append returns: survives
	// power loss.
	SyncAlways
	// SyncNever leaves writing back to the kernel: survives kill -9, not
	// power loss.
	SyncNever
)

// String returns the policy's name.
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncNever:
		return "never"
	}
	return "interval"
}

// ParseSyncPolicy reads "always", "interval" or "never".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	for _, p := range []SyncPolicy{SyncInterval, SyncAlways, SyncNever} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("journal: unknown sync policy %q: always, interval or never", s)
}

// Options tunes a Journal. The zero value of each field selects its default.
type Options struct {
	// Sync says when the files are fsynced; default SyncInterval.
	Sync SyncPolicy
	// SyncInterval is the period of SyncInterval; default 1s.
	SyncInterval time.Duration
	// SegmentSize is the size past which a new file is started; default
	// 64 MiB.
	SegmentSize int64
	// MarkDelay bounds how long a mark (applied, acknowledged) waits in
	// memory when no write comes to carry it; default 10ms.
	MarkDelay time.Duration
}

// ErrClosed is returned by a closed Journal.
var ErrClosed = errors.New("journal: closed")

// Journal is a write-ahead journal in one directory. It implements
// dcsync.Journal and is safe for concurrent use.
type Journal struct {
	dir  string
	opts Options
	lock *os.File // holds the directory's lock

	flushMu sync.Mutex // held by whoever writes a group: a writer, or the flusher
	mu      sync.Mutex
	failed  error // sticky: after a failed write nothing is trusted
	closed  bool
	opened  bool           // Recover has run
	peers   map[string]int // index of each peer: its bit in entry.acks
	all     uint64         // every peer's bit
	backlog []int          // by peer: live writes not rejected, not acknowledged by it
	cursor  []int          // by peer: no write of order before it is in its backlog
	seq     uint64         // last sequence number given
	byID    map[string]*entry
	order   []*entry // entries from head on, oldest first; done ones are skipped
	head    int
	segs    []segment
	buf     []byte // records not yet written
	cur     *group // the group buf's appends wait for
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	file    *os.File // the segment being written
	size    int64    // of file
	// Under SyncInterval, the files rolled off and whether the directory
	// gained one, not yet synced: syncEvery syncs them, apart from the
	// writers.
	retired  []*os.File
	dirDirty bool
	syncing  sync.WaitGroup // syncEvery
}

type entry struct {
	id       string
	seq      uint64
	written  time.Time
	applied  bool
	rejected bool
	done     bool
	acks     uint64
}

// segment is one file and the first sequence number it may hold.
type segment struct {
	path  string
	first uint64
}

// group is one group commit: the appends whose bytes one write(2) carries.
type group struct {
	done chan struct{}
	err  error
}

// Record types.
const (
	recWrite    = 'W' // seq, then the request as a one-request wire batch
	recApplied  = 'A' // seq
	recRejected = 'R' // seq
	recAcked    = 'K' // peer, count, seqs
)

// Open opens the journal in dir, creating it when missing, and takes the
// directory's lock. Nothing is read until the Syncer calls Recover.
func Open(dir string, opts Options) (*Journal, error) {
	opts.SyncInterval = or(opts.SyncInterval, time.Second)
	opts.SegmentSize = or(opts.SegmentSize, 64<<20)
	opts.MarkDelay = or(opts.MarkDelay, 10*time.Millisecond)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	return &Journal{dir: dir, opts: opts, lock: lock, byID: map[string]*entry{},
		cur: &group{done: make(chan struct{})}, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), stopped: make(chan struct{})}, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Recover reads every file of the journal, starts a new one, and returns
// the writes that are not done for peers: not yet applied or rejected, or
// not acknowledged by every one of peers. The Syncer calls it once, from
// New, before any Append.
func (j *Journal) Recover(peers []string) ([]dcsync.JournalEntry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, ErrClosed
	}
	if j.opened {
		return nil, errors.New("journal: Recover called twice")
	}
	if len(peers) > 64 {
		return nil, fmt.Errorf("journal: %d peers, at most 64", len(peers))
	}
	j.peers = map[string]int{}
	for i, p := range peers {
		j.peers[p] = i
		j.all |= 1 << i
	}
	j.backlog, j.cursor = make([]int, len(peers)), make([]int, len(peers))
	names, err := filepath.Glob(filepath.Join(j.dir, "*.wal"))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	sort.Strings(names)
	reqs := map[uint64]*dcsync.Request{}
	bySeq := map[uint64]*entry{}
	for _, name := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), ".wal"), 10, 64)
		if err != nil {
			continue // not one of ours
		}
		j.segs = append(j.segs, segment{path: name, first: first})
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		j.replay(data, reqs, bySeq)
	}
	for _, seq := range slices.Sorted(maps.Keys(bySeq)) {
		e := bySeq[seq]
		if e.done = j.isDone(e); e.done {
			continue
		}
		if prev := j.byID[e.id]; prev != nil {
			prev.done = true // carried forward by compact: the later copy holds its marks
		}
		j.byID[e.id] = e
		j.order = append(j.order, e)
	}
	var out []dcsync.JournalEntry
	for _, e := range j.order {
		if e.done {
			continue
		}
		je := dcsync.JournalEntry{Request: reqs[e.seq], Applied: e.applied}
		for _, p := range peers {
			if i := j.peers[p]; e.acks&(1<<i) != 0 {
				je.Acked = append(je.Acked, p)
			} else {
				j.backlog[i]++
			}
		}
		out = append(out, je)
	}
	if err := j.roll(); err != nil {
		return nil, err
	}
	j.release()
	j.opened = true
	go j.run()
	if j.opts.Sync == SyncInterval {
		j.syncing.Go(j.syncEvery)
	}
	return out, nil
}

// records calls fn for each valid record of data, in order, until fn
// returns false; it stops at the first torn or corrupt record, which only
// a crash mid-write leaves, at the end of the file written last before it.
func records(data []byte, fn func(typ byte, rest []byte) bool) {
	for len(data) >= 8 {
		n := binary.LittleEndian.Uint32(data)
		sum := binary.LittleEndian.Uint32(data[4:])
		if uint64(len(data)-8) < uint64(n) || n == 0 {
			return
		}
		body := data[8 : 8+n]
		if crc32.Checksum(body, castagnoli) != sum {
			return
		}
		data = data[8+n:]
		if !fn(body[0], body[1:]) {
			return
		}
	}
}

// decodeWrite reads a write record.
func decodeWrite(rest []byte) (uint64, *dcsync.Request, bool) {
	seq, k := binary.Uvarint(rest)
	if k <= 0 {
		return 0, nil, false
	}
	rs, err := wire.Decode(rest[k:], wire.Proto, wire.Encoding_ENCODING_IDENTITY, len(rest), 1)
	if err != nil || len(rs) != 1 {
		return 0, nil, false
	}
	return seq, rs[0], true
}

// replay applies the records of one file to the maps.
func (j *Journal) replay(data []byte, reqs map[uint64]*dcsync.Request, bySeq map[uint64]*entry) {
	records(data, func(typ byte, rest []byte) bool {
		switch typ {
		case recWrite:
			seq, req, ok := decodeWrite(rest)
			if !ok {
				return false
			}
			j.seq = max(j.seq, seq)
			reqs[seq] = req
			bySeq[seq] = &entry{id: req.ID, seq: seq, written: req.Time()}
		case recApplied, recRejected:
			seq, k := binary.Uvarint(rest)
			if k <= 0 {
				return false
			}
			if e := bySeq[seq]; e != nil {
				e.applied = e.applied || typ == recApplied
				e.rejected = e.rejected || typ == recRejected
			}
		case recAcked:
			plen, k := binary.Uvarint(rest)
			if k <= 0 || uint64(len(rest)-k) < plen {
				return false
			}
			var bit uint64
			if i, ok := j.peers[string(rest[k:k+int(plen)])]; ok {
				bit = 1 << i
			}
			rest = rest[k+int(plen):]
			count, k := binary.Uvarint(rest)
			if k <= 0 {
				return false
			}
			rest = rest[k:]
			for range count {
				seq, k := binary.Uvarint(rest)
				if k <= 0 {
					return false
				}
				rest = rest[k:]
				if e := bySeq[seq]; e != nil {
					e.acks |= bit
				}
			}
		default:
			return false
		}
		return true
	})
}

// Unacked calls fn, oldest first, with each write applied here before
// before that some peer has not acknowledged, and the names of those
// peers, until fn returns an error, which Unacked returns. It reads the
// writes back from the files, outside the journal's lock.
func (j *Journal) Unacked(before time.Time, fn func(req *dcsync.Request, missing []string) error) error {
	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return err
	}
	want := map[uint64][]string{}
	for _, e := range j.order[j.head:] {
		if e.done || e.rejected || !e.applied || !e.written.Before(before) {
			continue // done, or a Write under way
		}
		var missing []string
		for p, i := range j.peers {
			if e.acks&(1<<i) == 0 {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			want[e.seq] = missing
		}
	}
	segs := slices.Clone(j.segs)
	j.mu.Unlock()
	for _, sg := range segs {
		if len(want) == 0 {
			return nil
		}
		data, err := os.ReadFile(sg.path)
		if errors.Is(err, os.ErrNotExist) {
			continue // every write in it was done meanwhile
		}
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		var ferr error
		records(data, func(typ byte, rest []byte) bool {
			if typ != recWrite {
				return true
			}
			seq, req, ok := decodeWrite(rest)
			if missing, wanted := want[seq]; ok && wanted {
				delete(want, seq)
				ferr = fn(req, missing)
			}
			return ferr == nil
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// isDone reports whether e needs nothing more: rejected, or applied and
// acknowledged by every peer.
func (j *Journal) isDone(e *entry) bool {
	return e.rejected || (e.applied && e.acks&j.all == j.all)
}

// begin starts a record in buf and returns where its header is.
func (j *Journal) begin(typ byte) int {
	at := len(j.buf)
	j.buf = append(j.buf, 0, 0, 0, 0, 0, 0, 0, 0, typ)
	return at
}

// end completes the record begun at at.
func (j *Journal) end(at int) {
	body := j.buf[at+8:]
	binary.LittleEndian.PutUint32(j.buf[at:], uint32(len(body)))
	binary.LittleEndian.PutUint32(j.buf[at+4:], crc32.Checksum(body, castagnoli))
}

// usable returns why the journal cannot take records, or nil.
func (j *Journal) usable() error {
	switch {
	case j.closed:
		return ErrClosed
	case !j.opened:
		return errors.New("journal: Append before Recover")
	}
	return j.failed
}

// Append writes req to the journal and returns once it is written (and
// fsynced, under SyncAlways), together with the other appends of its group.
// An error means req is not in the journal; the journal then refuses every
// later Append, for its file can no longer be trusted.
func (j *Journal) Append(req *dcsync.Request) error {
	j.mu.Lock()
	if err := j.usable(); err != nil {
		j.mu.Unlock()
		return err
	}
	if _, dup := j.byID[req.ID]; dup {
		j.mu.Unlock()
		return fmt.Errorf("journal: write %s already journaled", req.ID)
	}
	j.seq++
	e := &entry{id: req.ID, seq: j.seq, written: req.Time()}
	at := j.begin(recWrite)
	j.buf = binary.AppendUvarint(j.buf, e.seq)
	var err error
	j.buf, err = wire.Encode(j.buf, []*dcsync.Request{req}, wire.Proto, wire.Encoding_ENCODING_IDENTITY)
	if err != nil {
		j.buf = j.buf[:at]
		j.mu.Unlock()
		return fmt.Errorf("journal: encode %s: %w", req.ID, err)
	}
	j.end(at)
	j.byID[e.id] = e
	j.order = append(j.order, e)
	for i := range j.backlog {
		j.backlog[i]++
	}
	g := j.cur
	j.mu.Unlock()
	return j.wait(g)
}

// wait waits for g to be written. When no group is being written, the
// caller writes it itself, sparing a wake-up of the flusher; otherwise it
// wakes the flusher, to write g once the group under way is done.
func (j *Journal) wait(g *group) error {
	if j.flushMu.TryLock() {
		j.flush(false)
		j.flushMu.Unlock()
	} else {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	<-g.done
	return g.err
}

// Applied marks the write id as applied here. It does not wait.
func (j *Journal) Applied(id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.byID[id]; e != nil && j.usable() == nil {
		e.applied = true
		j.mark(recApplied, e)
	}
}

// Rejected marks the write id as rejected, so that it is never applied on
// recovery, and returns once the mark is written.
func (j *Journal) Rejected(id string) error {
	j.mu.Lock()
	e := j.byID[id]
	if err := j.usable(); err != nil || e == nil {
		j.mu.Unlock()
		return err
	}
	e.rejected = true
	for i := range j.backlog {
		if e.acks&(1<<i) == 0 {
			j.backlog[i]--
		}
	}
	j.mark(recRejected, e)
	g := j.cur
	j.mu.Unlock()
	return j.wait(g)
}

// mark appends a mark record of e, and forgets e when it is done.
func (j *Journal) mark(typ byte, e *entry) {
	at := j.begin(typ)
	j.buf = binary.AppendUvarint(j.buf, e.seq)
	j.end(at)
	j.settle(e)
}

func (j *Journal) settle(e *entry) {
	if !e.done && j.isDone(e) {
		e.done = true
		delete(j.byID, e.id)
	}
}

// Acked marks the writes ids as acknowledged by peer. It does not wait.
func (j *Journal) Acked(peer string, ids []string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	i, ok := j.peers[peer]
	if !ok || j.usable() != nil {
		return
	}
	bit := uint64(1) << i
	at := j.begin(recAcked)
	j.buf = binary.AppendUvarint(j.buf, uint64(len(peer)))
	j.buf = append(j.buf, peer...)
	countAt := len(j.buf)
	j.buf = append(j.buf, make([]byte, binary.MaxVarintLen64)...)
	body := len(j.buf)
	n := 0
	for _, id := range ids {
		if e := j.byID[id]; e != nil {
			if e.acks&bit == 0 && !e.rejected {
				j.backlog[i]--
			}
			e.acks |= bit
			j.buf = binary.AppendUvarint(j.buf, e.seq)
			n++
			j.settle(e)
		}
	}
	if n == 0 {
		j.buf = j.buf[:at]
		return
	}
	// Put the count in front of the seqs, in the room left for it.
	var c [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(c[:], uint64(n))
	copy(j.buf[countAt:], c[:k])
	j.buf = append(j.buf[:countAt+k], j.buf[body:]...)
	j.end(at)
}

// Backlog returns how many journaled writes peer has not acknowledged and
// the time the oldest of them was written.
func (j *Journal) Backlog(peer string) (n int, oldest time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	i, ok := j.peers[peer]
	if !ok || j.backlog[i] == 0 {
		return 0, time.Time{}
	}
	// The cursor only moves forward: a write before it never returns to
	// the backlog, so finding the oldest costs little over many calls.
	c := max(j.cursor[i], j.head)
	for ; c < len(j.order); c++ {
		if e := j.order[c]; !e.done && !e.rejected && e.acks&(1<<i) == 0 {
			oldest = e.written
			break
		}
	}
	j.cursor[i] = c
	return j.backlog[i], oldest
}

// run is the flusher: it writes what is buffered when an Append waits, or
// at the latest every MarkDelay, and fsyncs as the policy says.
func (j *Journal) run() {
	defer close(j.stopped)
	t := time.NewTicker(j.opts.MarkDelay)
	defer t.Stop()
	for {
		select {
		case <-j.kick:
		case <-t.C:
		case <-j.stop:
			j.flushMu.Lock()
			j.flush(true)
			j.flushMu.Unlock()
			return
		}
		j.flushMu.Lock()
		j.flush(false)
		j.flushMu.Unlock()
	}
}

// syncEvery fsyncs the current file every SyncInterval, apart from the
// flusher, so that no group commit waits for a disk that is slow to sync.
func (j *Journal) syncEvery() {
	t := time.NewTicker(j.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
		}
		j.mu.Lock()
		f := j.file
		j.mu.Unlock()
		err := j.syncRetired()
		// A file closed meanwhile was retired, and synced by the next tick
		// or by Close.
		if ferr := f.Sync(); ferr != nil && !errors.Is(ferr, os.ErrClosed) {
			err = errors.Join(err, fmt.Errorf("journal: sync %s: %w", f.Name(), ferr))
		}
		if err != nil {
			j.mu.Lock()
			if j.failed == nil {
				j.failed = err
			}
			j.mu.Unlock()
		}
	}
}

// syncRetired fsyncs and closes the files rolled off since it last ran,
// and the directory when it gained a file.
func (j *Journal) syncRetired() error {
	j.mu.Lock()
	retired, dir := j.retired, j.dirDirty
	j.retired, j.dirDirty = nil, false
	j.mu.Unlock()
	var err error
	for _, f := range retired {
		if serr := f.Sync(); serr != nil {
			err = errors.Join(err, fmt.Errorf("journal: sync %s: %w", f.Name(), serr))
		}
		err = errors.Join(err, f.Close())
	}
	if dir {
		err = errors.Join(err, syncDir(j.dir))
	}
	return err
}

// flush writes the buffered records as one group; sync forces an fsync.
// The caller holds flushMu, which keeps the groups in order.
func (j *Journal) flush(sync bool) {
	j.mu.Lock()
	buf, g := j.buf, j.cur
	if len(buf) == 0 && !sync {
		j.mu.Unlock()
		return
	}
	j.buf, j.cur = nil, &group{done: make(chan struct{})}
	failed := j.failed
	j.mu.Unlock()

	err := failed
	if err == nil && len(buf) > 0 {
		_, err = j.file.Write(buf)
	}
	if err == nil && (sync || j.opts.Sync == SyncAlways) {
		err = j.file.Sync()
	}
	j.mu.Lock()
	if err != nil && j.failed == nil {
		j.failed = fmt.Errorf("journal: write %s: %w", j.file.Name(), err)
	}
	j.size += int64(len(buf))
	g.err = j.failed
	if j.failed == nil && j.size >= j.opts.SegmentSize {
		if err := j.roll(); err != nil {
			j.failed = err
		}
	}
	j.release()
	if cap(buf) <= 1<<20 && j.buf == nil {
		j.buf = buf[:0] // reuse the buffer
	}
	j.mu.Unlock()
	close(g.done)
	j.compact()
}

// Compaction: when the journal holds at least compactFiles files and at
// most one write in compactSparse of the oldest one is still needed, those
// writes are carried to the end of the journal, so that a write some peer
// never acknowledges does not keep every file written after it.
const (
	compactFiles  = 4
	compactSparse = 16
)

// carried stands, in the order, where an entry carried forward was.
var carried = &entry{done: true}

// compact carries the writes still needed in the oldest file, when few
// are, to the end of the journal: each is appended again under a new
// sequence number, with its marks, and the file is deleted once the copies
// are written. Called by flush, with flushMu held.
func (j *Journal) compact() {
	j.mu.Lock()
	if len(j.segs) < compactFiles || j.usable() != nil {
		j.mu.Unlock()
		return
	}
	end := j.segs[1].first
	at := map[uint64]int{} // live entries of the oldest file, by seq: their index in order
	for i := j.head; i < len(j.order) && j.order[i].seq < end; i++ {
		if !j.order[i].done {
			at[j.order[i].seq] = i
		}
	}
	total, path := end-j.segs[0].first, j.segs[0].path
	j.mu.Unlock()
	if len(at) == 0 || uint64(len(at))*compactSparse > total {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return // try again at the next flush
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	records(data, func(typ byte, rest []byte) bool {
		if typ != recWrite {
			return true
		}
		seq, k := binary.Uvarint(rest)
		i, ok := at[seq]
		if k <= 0 || !ok || j.order[i].done {
			return k > 0
		}
		e := j.order[i]
		j.seq++
		e.seq = j.seq
		w := j.begin(recWrite)
		j.buf = binary.AppendUvarint(j.buf, e.seq)
		j.buf = append(j.buf, rest[k:]...)
		j.end(w)
		if e.applied {
			j.mark(recApplied, e)
		}
		for p, b := range j.peers {
			if e.acks&(1<<b) != 0 {
				m := j.begin(recAcked)
				j.buf = binary.AppendUvarint(j.buf, uint64(len(p)))
				j.buf = append(j.buf, p...)
				j.buf = binary.AppendUvarint(j.buf, 1)
				j.buf = binary.AppendUvarint(j.buf, e.seq)
				j.end(m)
			}
		}
		j.order[i] = carried
		j.order = append(j.order, e)
		return true
	})
}

// roll closes the current file and starts the next one. Called with mu
// held, by the flusher or before it starts. Under SyncInterval, the old
// file and the directory are synced by syncEvery, within the interval the
// policy allows: an fsync of a whole segment under mu would stall every
// writer for it (about 15 ms for 32 MiB on a quiet disk). Under SyncNever
// nothing is synced; under SyncAlways the old file's groups were, and the
// directory is synced here, before the new file takes a group.
func (j *Journal) roll() error {
	background := j.opts.Sync == SyncInterval && j.opened
	if j.file != nil {
		switch {
		case background:
			j.retired = append(j.retired, j.file)
		case j.opts.Sync == SyncNever:
			if err := j.file.Close(); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
		default:
			if err := j.file.Sync(); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
			if err := j.file.Close(); err != nil {
				return fmt.Errorf("journal: %w", err)
			}
		}
	}
	first := j.seq + 1
	path := filepath.Join(j.dir, fmt.Sprintf("%020d.wal", first))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	switch {
	case background:
		j.dirDirty = true
	case j.opts.Sync != SyncNever:
		if err := syncDir(j.dir); err != nil {
			f.Close()
			return err
		}
	}
	j.file, j.size = f, 0
	j.segs = append(j.segs, segment{path: path, first: first})
	return nil
}

// release drops done entries from the front of the order and deletes the
// files whose writes are all done. Called with mu held.
func (j *Journal) release() {
	for j.head < len(j.order) && j.order[j.head].done {
		j.order[j.head] = nil
		j.head++
	}
	if j.head > 1024 && j.head > len(j.order)/2 {
		n := copy(j.order, j.order[j.head:])
		clear(j.order[n:])
		for i, c := range j.cursor {
			j.cursor[i] = max(c-j.head, 0)
		}
		j.order, j.head = j.order[:n], 0
	}
	live := j.seq + 1 // the oldest sequence number still needed
	if j.head < len(j.order) {
		live = j.order[j.head].seq
	}
	for len(j.segs) > 1 && j.segs[1].first <= live {
		if err := os.Remove(j.segs[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return // try again at the next flush
		}
		j.segs = j.segs[1:]
	}
}

// Close writes and fsyncs what is buffered, closes the files and releases
// the directory. What is not done stays for the next Recover.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true // refuses Appends: the flusher's last group is the last
	opened := j.opened
	j.mu.Unlock()
	var err error
	if opened {
		close(j.stop)
		<-j.stopped
		j.syncing.Wait()
		err = j.syncRetired()
	}
	j.mu.Lock()
	if j.file != nil {
		err = errors.Join(err, j.failed, j.file.Close())
	}
	j.mu.Unlock()
	return errors.Join(err, j.lock.Close())
}

// syncDir fsyncs a directory, so a file created in it survives power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}
