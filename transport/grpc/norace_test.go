//go:build !race

package grpc_test

// raceEnabled is set when the race detector runs.
const raceEnabled = false
