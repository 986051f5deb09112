package testserver

import (
	"log"
	"os"
	"testing"
)

// RedisMain runs the tests, examples and benchmarks of m with one
// redis-server per name in envs, each on a free loopback port with its
// address in the environment variable of that name, where an example finds
// it as a program finds its Redis; it stops them when m ends. Call it from
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testserver.RedisMain(m, "REDIS_ADDR")) }
func RedisMain(m *testing.M, envs ...string) int {
	tb := &mainTB{}
	defer tb.cleanup()
	for _, env := range envs {
		os.Setenv(env, StartRedis(tb).Addr())
	}
	return m.Run()
}

// mainTB is the part of testing.TB that StartRedis uses, for TestMain,
// which has none; any other method panics on the nil TB.
type mainTB struct {
	testing.TB
	cleanups []func()
}

func (*mainTB) Helper()                        {}
func (*mainTB) Fatalf(format string, a ...any) { log.Fatalf("testserver: "+format, a...) }
func (m *mainTB) Cleanup(f func())             { m.cleanups = append(m.cleanups, f) }

func (m *mainTB) TempDir() string {
	dir, err := os.MkdirTemp("", "dcsync-redis-")
	if err != nil {
		log.Fatal(err)
	}
	m.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (m *mainTB) cleanup() {
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i]()
	}
}
