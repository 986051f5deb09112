package wire

import (
	"errors"
	"testing"

	"github.com/dcsync/dcsync"
)

// FuzzResults decodes what a peer answers, as a sender does, in both
// formats: any bytes are refused or read, never a panic, and the error a
// sender derives for a batch of n names exactly n requests when it is a
// *dcsync.BatchError. The seed corpus runs with every go test.
func FuzzResults(f *testing.F) {
	for _, res := range []*Results{
		{Code: Code_CODE_OK},
		{Code: Code_CODE_UNAUTHENTICATED, Message: "bad signature"},
		{Results: []*Result{{Code: Code_CODE_OK}, {Code: Code_CODE_INVALID, Message: "no version"}}},
		{Code: Code(99), Message: "a code from the future"},
	} {
		for _, fm := range []Format{Proto, JSON} {
			b, err := MarshalResults(nil, res, fm)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, uint8(fm), uint8(2))
		}
	}
	f.Add([]byte("\x08\xff\xff\xff\xff\x0f"), uint8(0), uint8(1))
	f.Add([]byte(`{"results":[{},{},{}]}`), uint8(1), uint8(3))
	f.Fuzz(func(t *testing.T, body []byte, format, n uint8) {
		var res Results
		if err := UnmarshalResults(body, Format(format%2), &res); err != nil {
			return
		}
		err := ErrorOf(&res, int(n))
		var be *dcsync.BatchError
		if errors.As(err, &be) && len(be.Errs) != int(n) {
			t.Fatalf("batch error of %d for a batch of %d", len(be.Errs), n)
		}
		if res.Code == Code_CODE_OK && len(res.Results) == 0 && err != nil {
			t.Fatalf("an empty OK answer failed: %v", err)
		}
	})
}
