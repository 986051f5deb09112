package http_test

import (
	"strconv"
	"testing"

	"github.com/dcsync/dcsync/internal/wire/wiretest"
)

// BenchmarkTransportCPU measures the CPU time per write of this transport
// alone, both sides, with a Collector that does nothing: the share it adds
// to dcsync/http's CPU per write over dcsync/memory's in the benchmark
// command. See wiretest.BenchTransport.
func BenchmarkTransportCPU(b *testing.B) {
	for _, size := range []int{16, 256} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) { wiretest.BenchTransport(b, transport{}, size) })
	}
}
