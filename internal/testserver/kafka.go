package testserver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Kafka returns the bootstrap addresses of the two brokers the tests use,
// unicom's and telecom's, from DCSYNC_KAFKA_BROKERS_A and _B:
// scripts/test.sh sets them, and KafkaMain sets them when it starts
// brokers itself. The test fails when they are not set.
func Kafka(t testing.TB) (a, b string) {
	t.Helper()
	a, b = os.Getenv("DCSYNC_KAFKA_BROKERS_A"), os.Getenv("DCSYNC_KAFKA_BROKERS_B")
	if a == "" || b == "" {
		t.Fatal("DCSYNC_KAFKA_BROKERS_A/B not set: call testserver.KafkaMain from TestMain, or run scripts/kafka.sh start")
	}
	return a, b
}

// KafkaMain runs the tests, examples and benchmarks of m with two Kafka
// brokers. When own is false and DCSYNC_KAFKA_BROKERS_A is set
// (scripts/test.sh starts brokers for every package), it uses those;
// otherwise it starts a pair with scripts/kafka.sh, sets the environment
// for the tests, and stops them when the tests end. Tests that kill and
// restart a broker (KillKafka) need own brokers, which no other package
// shares. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testserver.KafkaMain(m, false)) }
func KafkaMain(m *testing.M, own bool) int {
	if !own && os.Getenv("DCSYNC_KAFKA_BROKERS_A") != "" {
		return m.Run()
	}
	var out bytes.Buffer
	if err := kafkaScript(&out, "start"); err != nil {
		fmt.Fprintln(os.Stderr, "testserver: Kafka:", err)
		return 1
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		for _, f := range strings.Fields(strings.TrimPrefix(sc.Text(), "export ")) {
			if k, v, ok := strings.Cut(f, "="); ok {
				os.Setenv(k, v)
			}
		}
	}
	defer func() {
		if err := kafkaScript(nil, "stop"); err != nil {
			fmt.Fprintln(os.Stderr, "testserver: stop Kafka:", err)
		}
	}()
	if os.Getenv("DCSYNC_KAFKA_BROKERS_A") == "" {
		fmt.Fprintf(os.Stderr, "testserver: scripts/kafka.sh start printed no brokers: %q\n", out.String())
		return 1
	}
	return m.Run()
}

// KillKafka kill -9s the broker of dc ("unicom" for A, "telecom" for B)
// of the run KafkaMain started with own brokers.
func KillKafka(t testing.TB, dc string) {
	t.Helper()
	if err := kafkaScript(nil, "kill", dc); err != nil {
		t.Fatal(err)
	}
}

// ResumeKafka starts the broker of dc that KillKafka killed again, on its
// port, with its data.
func ResumeKafka(t testing.TB, dc string) {
	t.Helper()
	if err := kafkaScript(nil, "resume", dc); err != nil {
		t.Fatal(err)
	}
}

// kafkaScript runs scripts/kafka.sh with args, its stdout to out and its
// stderr to ours.
func kafkaScript(out *bytes.Buffer, args ...string) error {
	script, err := repoFile("scripts/kafka.sh")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // the first start fetches the jars
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	if out != nil {
		cmd.Stdout = out
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/kafka.sh %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// RunUntil builds the command of package pkg, runs it with args, waits
// until it prints the line ready on its stdout, and kills it there with
// SIGKILL: a process that dies in the middle of its work. The build and
// the wait are bounded by 5 minutes.
func RunUntil(t testing.TB, pkg, ready string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == ready {
			return
		}
	}
	t.Fatalf("%s ended without printing %q: %v", pkg, ready, sc.Err())
}
