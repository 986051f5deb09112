//go:build race

package grpc_test

// raceEnabled is set when the race detector runs: its sync.Pools drop
// buffers at random, so allocations are not what they are without it.
const raceEnabled = true
