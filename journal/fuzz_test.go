package journal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dcsync/dcsync"
)

// FuzzReplay feeds the reading of a journal file any content: a crash, a
// disk error or a stray file must never make it panic, and it must never
// yield a write it could not read whole.
func FuzzReplay(f *testing.F) {
	dir := f.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := j.Recover([]string{"telecom"}); err != nil {
		f.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := j.Append(&dcsync.Request{ID: id, Origin: "unicom", Key: "k", Payload: []byte("v"), Version: 7}); err != nil {
			f.Fatal(err)
		}
	}
	j.Applied("b")
	j.Acked("telecom", []string{"b", "c"})
	if err := j.Rejected("a"); err != nil {
		f.Fatal(err)
	}
	if err := j.Close(); err != nil {
		f.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j := &Journal{peers: map[string]int{"telecom": 0}, all: 1}
		reqs := map[uint64]*dcsync.Request{}
		bySeq := map[uint64]*entry{}
		j.replay(data, reqs, bySeq)
		for seq, e := range bySeq {
			if r := reqs[seq]; r == nil || r.ID != e.id {
				t.Fatalf("entry %d: %+v without its write %+v", seq, e, r)
			}
		}
	})
}
