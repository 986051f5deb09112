package elastic

import "testing"

// The spool counts its records and bytes as it writes them, and again
// from its files when a Log opens it after a restart.
func TestSpoolCountsBytes(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	lines := []byte("{\"index\":{}}\n{\"a\":1}\n{\"index\":{}}\n{\"a\":2}\n")
	if err := s.writeLines(lines, 2); err != nil {
		t.Fatal(err)
	}
	if s.pending() != 2 || s.bytes.Load() != int64(len(lines)) {
		t.Fatalf("spool holds %d records, %d bytes; want 2, %d", s.pending(), s.bytes.Load(), len(lines))
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s, err = openSpool(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if s.pending() != 2 || s.bytes.Load() != int64(len(lines)) {
		t.Fatalf("reopened spool holds %d records, %d bytes; want 2, %d", s.pending(), s.bytes.Load(), len(lines))
	}
}
