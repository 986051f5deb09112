package journal_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/journal"
)

func open(t *testing.T, dir string, opts journal.Options, peers ...string) (*journal.Journal, []dcsync.JournalEntry) {
	t.Helper()
	j, err := journal.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	pending, err := j.Recover(peers)
	if err != nil {
		t.Fatal(err)
	}
	return j, pending
}

func req(i int) *dcsync.Request {
	return &dcsync.Request{ID: "id-" + strconv.Itoa(i), Origin: "unicom", Key: "k" + strconv.Itoa(i%3),
		Op: "set", Payload: []byte("v" + strconv.Itoa(i)), Version: uint64(1000 + i), Header: map[string]string{"h": "x"}}
}

func ids(es []dcsync.JournalEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Request.ID)
	}
	return out
}

func TestRecoverReturnsWhatIsNotDone(t *testing.T) {
	for _, policy := range []journal.SyncPolicy{journal.SyncInterval, journal.SyncAlways, journal.SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			j, pending := open(t, dir, journal.Options{Sync: policy}, "telecom", "mobile")
			if len(pending) != 0 {
				t.Fatalf("new journal holds %v", ids(pending))
			}
			for i := range 5 {
				if err := j.Append(req(i)); err != nil {
					t.Fatal(err)
				}
			}
			// 0: never applied. 1: applied, acked by one peer. 2: done.
			// 3: rejected. 4: applied, acked by none.
			for _, id := range []string{"id-1", "id-2", "id-4"} {
				j.Applied(id)
			}
			j.Acked("telecom", []string{"id-1", "id-2"})
			j.Acked("mobile", []string{"id-2", "id-0"})
			if err := j.Rejected("id-3"); err != nil {
				t.Fatal(err)
			}
			if n, _ := j.Backlog("telecom"); n != 2 {
				t.Fatalf("telecom backlog %d, want 2 (0, 4)", n)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			if err := j.Append(req(9)); err == nil {
				t.Fatal("append after close succeeded")
			}

			j, pending = open(t, dir, journal.Options{Sync: policy}, "telecom", "mobile")
			if n, oldest := j.Backlog("telecom"); n != 2 || !oldest.Equal(req(0).Time()) {
				t.Fatalf("telecom backlog after recovery %d, oldest %v; want 2 (0, 4) from id-0's time", n, oldest)
			}
			if n, oldest := j.Backlog("mobile"); n != 2 || !oldest.Equal(req(1).Time()) {
				t.Fatalf("mobile backlog after recovery %d, oldest %v; want 2 (1, 4) from id-1's time", n, oldest)
			}
			if got, want := ids(pending), []string{"id-0", "id-1", "id-4"}; !slices.Equal(got, want) {
				t.Fatalf("pending %v, want %v", got, want)
			}
			e0, e1 := pending[0], pending[1]
			if e0.Applied || !slices.Equal(e0.Acked, []string{"mobile"}) {
				t.Fatalf("id-0 %+v", e0)
			}
			if !e1.Applied || !slices.Equal(e1.Acked, []string{"telecom"}) {
				t.Fatalf("id-1 %+v", e1)
			}
			if r := e0.Request; r.Key != "k0" || string(r.Payload) != "v0" || r.Version != 1000 || r.Header["h"] != "x" {
				t.Fatalf("request read back as %+v", r)
			}
		})
	}
}

func TestDoneSegmentsAreDeleted(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, journal.Options{SegmentSize: 512}, "telecom")
	for i := range 200 {
		r := req(i)
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
		j.Applied(r.ID)
		j.Acked("telecom", []string{r.ID})
	}
	// One more write, left pending, carries the marks to the files.
	if err := j.Append(req(200)); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(req(201)); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(files) > 3 {
		t.Fatalf("%d files left, want the few holding the pending writes", len(files))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	_, pending := open(t, dir, journal.Options{}, "telecom")
	if got := ids(pending); !slices.Equal(got, []string{"id-200", "id-201"}) {
		t.Fatalf("pending %v", got)
	}
}

func TestTornTailIsIgnored(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, journal.Options{}, "telecom")
	for i := range 3 {
		if err := j.Append(req(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	last := files[len(files)-1]
	data, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the last record, then garbage.
	if err := os.WriteFile(last, append(data[:len(data)-5], 0xde, 0xad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, pending := open(t, dir, journal.Options{}, "telecom")
	if got := ids(pending); !slices.Equal(got, []string{"id-0", "id-1"}) {
		t.Fatalf("pending %v, want the two whole records", got)
	}
}

func TestOneProcessAtATime(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, journal.Options{})
	if j, err := journal.Open(dir, journal.Options{}); err == nil {
		j.Close()
		t.Fatal("second Open of a journal in use succeeded")
	}
}

func TestParseSyncPolicy(t *testing.T) {
	for _, p := range []journal.SyncPolicy{journal.SyncInterval, journal.SyncAlways, journal.SyncNever} {
		if got, err := journal.ParseSyncPolicy(p.String()); err != nil || got != p {
			t.Fatalf("%v: %v, %v", p, got, err)
		}
	}
	if _, err := journal.ParseSyncPolicy("sometimes"); err == nil {
		t.Fatal("parsed sometimes")
	}
}

// One write a peer never acknowledges does not keep every file after it:
// it is carried forward, and read back once.
func TestAStuckWriteIsCarriedForward(t *testing.T) {
	dir := t.TempDir()
	j, _ := open(t, dir, journal.Options{SegmentSize: 2048}, "telecom")
	stuck := req(0)
	if err := j.Append(stuck); err != nil {
		t.Fatal(err)
	}
	j.Applied(stuck.ID)
	first := filepath.Join(dir, "00000000000000000001.wal")
	original, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 600; i++ {
		r := req(i)
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
		j.Applied(r.ID)
		j.Acked("telecom", []string{r.ID})
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(files) > 8 {
		t.Fatalf("%d files kept by one stuck write", len(files))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash between the copy and the deletion leaves both.
	if err := os.WriteFile(first, original, 0o644); err != nil {
		t.Fatal(err)
	}
	j, pending := open(t, dir, journal.Options{}, "telecom")
	if len(pending) != 1 || pending[0].Request.ID != stuck.ID || !pending[0].Applied ||
		string(pending[0].Request.Payload) != "v0" {
		t.Fatalf("pending %+v, want the stuck write once, applied", pending)
	}
	if n, oldest := j.Backlog("telecom"); n != 1 || !oldest.Equal(stuck.Time()) {
		t.Fatalf("backlog %d, oldest %v", n, oldest)
	}
}
