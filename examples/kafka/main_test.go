package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dcsync/dcsync/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.KafkaMain(m, false)) }

func TestConverges(t *testing.T) {
	a, b := testserver.Kafka(t)
	var out bytes.Buffer
	o := options{brokers: map[string]string{"unicom": a, "telecom": b}, writes: 300,
		prefix: "example-test-" + time.Now().Format("150405.000000"), timeout: 2 * time.Minute}
	if err := run(context.Background(), &out, o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "same winner for every key") {
		t.Errorf("report:\n%s", out.String())
	}
	t.Log("\n" + out.String())
}
