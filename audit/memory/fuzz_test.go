package memory

import (
	"testing"
)

// FuzzCursor parses arbitrary page cursors, which callers hand back: never
// a panic, and a cursor parsed names the same key when formatted again.
// The seed corpus runs with every go test.
func FuzzCursor(f *testing.F) {
	f.Add(key{1_800_000_000_000_000_000, "id/with/slashes"}.cursor())
	f.Add("/")
	f.Add("99999999999999999999/x")
	f.Fuzz(func(t *testing.T, c string) {
		k, err := parseCursor(c)
		if err != nil {
			return
		}
		if again, err := parseCursor(k.cursor()); err != nil || again != k {
			t.Fatalf("%q: %+v, then %+v %v", c, k, again, err)
		}
	})
}
