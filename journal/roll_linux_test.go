package journal_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync/journal"
)

// Under SyncInterval a roll leaves the old file to the syncer, which
// syncs and closes it apart from the writers: rolled-off files do not stay
// open.
func TestRolledFilesAreClosedInTheBackground(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, journal.Options{SegmentSize: 512, SyncInterval: 5 * time.Millisecond}, "telecom")
	for i := range 200 {
		if err := j.Append(req(i)); err != nil {
			t.Fatal(err)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.wal")); len(files) < 10 {
		t.Fatalf("%d files: the writes did not roll the journal", len(files))
	}
	open := func() int {
		fds, _ := filepath.Glob("/proc/self/fd/*")
		n := 0
		for _, fd := range fds {
			if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, dir) && strings.HasSuffix(target, ".wal") {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for open() > 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := open(); n != 1 {
		t.Fatalf("%d journal files open, want the current one", n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}
