package elastic

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// spool keeps records Elasticsearch could not take, in segment files of
// bulk-body lines (an action line and a source line per record). Writes
// append to the current segment, and start a new one past maxSegment bytes,
// so that a replay reads a bounded piece at a time however long the outage;
// a replay seals the current segment, so new records go to a fresh one,
// then sends the sealed segments and deletes each once all of it is stored.
type spool struct {
	dir  string
	lock *os.File // held while open, in a slot of the default directory

	mu      sync.Mutex
	cur     *os.File // segment being written, nil when none
	curSize int      // bytes written to cur
	dirty   bool     // cur was written since its last sync
	next    int      // sequence number of the next segment
	n       atomic.Int64
	bytes   atomic.Int64 // bytes of the segments
}

// maxSegment is the size past which writes start a new segment.
const maxSegment = 64 << 20

const segmentPattern = "spool-*.ndjson"

// DefaultSpoolDir returns the directory under which Logs of prefix that
// are given no SpoolDir keep their spools:
// <os.UserCacheDir()>/dcsync/spool/<prefix>, such as
// ~/.cache/dcsync/spool/dcsync on Linux. Each Log takes the first slot,
// a numbered subdirectory, that no other open Log holds (a lock file says
// which), so several processes of a machine share it, and a process
// restarted after a crash takes a slot left by the dead one and replays
// its records.
func DefaultSpoolDir(prefix string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("elastic: default spool directory: %w", err)
	}
	return filepath.Join(cache, "dcsync", "spool", prefix), nil
}

// maxSlots bounds the slots of the default spool directory: the Logs of
// one index prefix open at once on a machine.
const maxSlots = 64

// openSpool opens dir, or, when dir is empty, the first free slot of
// DefaultSpoolDir(prefix), and counts the records that earlier Logs left
// there.
func openSpool(dir, prefix string) (*spool, error) {
	s := &spool{dir: dir}
	if dir == "" {
		if err := s.takeSlot(prefix); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("elastic: spool: %w", err)
	}
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	for _, p := range segs {
		var seq int
		if _, err := fmt.Sscanf(filepath.Base(p), "spool-%d.ndjson", &seq); err == nil && seq >= s.next {
			s.next = seq + 1
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("elastic: spool: %w", err)
		}
		s.n.Add(int64(len(pairEnds(b))))
		s.bytes.Add(int64(len(b)))
	}
	return s, nil
}

// takeSlot makes s.dir the first slot of DefaultSpoolDir(prefix) whose
// lock it can take, and holds the lock.
func (s *spool) takeSlot(prefix string) error {
	base, err := DefaultSpoolDir(prefix)
	if err != nil {
		return err
	}
	for slot := range maxSlots {
		dir := filepath.Join(base, strconv.Itoa(slot))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("elastic: spool: %w", err)
		}
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return fmt.Errorf("elastic: spool: %w", err)
		}
		if lockFile(f) {
			s.dir, s.lock = dir, f
			return nil
		}
		f.Close()
	}
	return fmt.Errorf("elastic: spool: all %d slots of %s are in use; set SpoolDir", maxSlots, base)
}

// segments lists the segment files, oldest first.
func (s *spool) segments() ([]string, error) {
	segs, err := filepath.Glob(filepath.Join(s.dir, segmentPattern))
	if err != nil {
		return nil, fmt.Errorf("elastic: spool: %w", err)
	}
	slices.Sort(segs) // zero-padded sequence numbers sort in order
	return segs, nil
}

// writeLines appends n records, encoded as bulk lines in b, to the current
// segment. The segment is in the page cache at once, so the records survive
// a crash of the process; sync puts it on disk, for a crash of the machine.
func (s *spool) writeLines(b []byte, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.curSize >= maxSegment {
		if err := s.closeCurrent(); err != nil {
			return err
		}
	}
	if s.cur == nil {
		f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("spool-%020d.ndjson", s.next)),
			os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("elastic: spool: %w", err)
		}
		s.cur, s.curSize, s.next = f, 0, s.next+1
	}
	if _, err := s.cur.Write(b); err != nil {
		return fmt.Errorf("elastic: spool: %w", err)
	}
	s.curSize += len(b)
	s.dirty = true
	s.n.Add(int64(n))
	s.bytes.Add(int64(len(b)))
	return nil
}

// sync flushes the current segment to disk if it was written since the last
// sync. Syncing every write would make each one wait for the disk, on the
// path Append must keep fast while Elasticsearch is away.
func (s *spool) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || !s.dirty {
		return nil
	}
	s.dirty = false
	if err := s.cur.Sync(); err != nil {
		return fmt.Errorf("elastic: spool: %w", err)
	}
	return nil
}

// seal closes the current segment, so that a replay can send every segment
// while new records go to a new one. It returns the sealed segments.
func (s *spool) seal() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.closeCurrent(); err != nil {
		return nil, err
	}
	// Listed under the lock: a segment created after it is not sealed.
	return s.segments()
}

// closeCurrent syncs and closes the current segment, if any. The caller
// holds s.mu.
func (s *spool) closeCurrent() error {
	if s.cur == nil {
		return nil
	}
	err := errors.Join(s.cur.Sync(), s.cur.Close())
	s.cur, s.dirty = nil, false
	if err != nil {
		return fmt.Errorf("elastic: spool: %w", err)
	}
	return nil
}

// pending returns how many records the spool holds.
func (s *spool) pending() int64 { return s.n.Load() }

// close closes the current segment, and gives up the slot held.
func (s *spool) close() error {
	_, err := s.seal()
	if s.lock != nil {
		s.lock.Close() // releases the lock
		s.lock = nil
	}
	return err
}

// pairEnds returns the offset past each record of a segment, dropping a
// record cut short by a crash in the middle of a write.
func pairEnds(b []byte) []int {
	var ends []int
	for at := 0; ; {
		action := bytes.IndexByte(b[at:], '\n')
		if action < 0 {
			return ends
		}
		end := bytes.IndexByte(b[at+action+1:], '\n')
		if end < 0 {
			return ends
		}
		at += action + end + 2
		ends = append(ends, at)
	}
}

// retryable reports whether Elasticsearch refused an item for now rather
// than for good.
func retryable(status int) bool {
	switch status {
	case 408, 429, 503, 507:
		return true
	}
	return false
}

// replay sends every sealed segment to Elasticsearch in bulk requests of
// FlushActions records and FlushBytes bytes, and deletes each segment once
// all of it is stored. It stops at the first failure, marking Elasticsearch
// down: what was sent of that segment is sent again next time, which the
// document IDs make harmless. The caller holds l.recovery.
func (l *Log) replay(ctx context.Context) error {
	if l.spool.pending() == 0 {
		return nil
	}
	segs, err := l.spool.seal()
	if err != nil {
		return err
	}
	for _, path := range segs {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("elastic: spool: %w", err)
		}
		ends := pairEnds(b)
		for i, from := 0, 0; i < len(ends); {
			j := i + 1 // one bulk request: records i..j-1, b[from:ends[j-1]]
			for j < len(ends) && j-i < l.cfg.FlushActions && ends[j]-from <= l.cfg.FlushBytes {
				j++
			}
			// A string per request, not one of the whole segment: the
			// copies are the same, the memory held one request's.
			if err := l.replayChunk(ctx, &chunk{lines: string(b[from:ends[j-1]]), n: j - i}); err != nil {
				if errors.Is(err, ErrUnavailable) && l.down.CompareAndSwap(false, true) {
					l.log.Warn("elastic: replay failed; Elasticsearch down again", "err", err)
				}
				return err
			}
			i, from = j, ends[j-1]
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("elastic: spool: %w", err)
		}
		l.spool.n.Add(-int64(len(ends)))
		l.spool.bytes.Add(-int64(len(b)))
		l.stats.replayed.Add(uint64(len(ends)))
	}
	return nil
}

// replayChunk sends one bulk request of spooled records. Items refused for
// now fail the chunk, to be sent again; items refused for good are counted.
func (l *Log) replayChunk(ctx context.Context, c *chunk) error {
	res, err := l.client.Bulk().Add(c).Do(ctx)
	if err != nil {
		return fmt.Errorf("elastic: replay: %w", err)
	}
	for _, item := range res.Items {
		for _, r := range item {
			if retryable(r.Status) {
				return fmt.Errorf("%w: replay: item refused with status %d", ErrUnavailable, r.Status)
			}
		}
	}
	l.count(res, []*chunk{c})
	return nil
}
