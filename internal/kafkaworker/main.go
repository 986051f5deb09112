// Command kafkaworker is a process of one datacenter of dcsync's Kafka
// wiring whose Processor never returns once it is given a batch: it stands
// for a service process that dies mid-batch. transport/kafka's crash test
// builds it, waits for the "applying" line on its stdout, and kills it
// with SIGKILL.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dcsync/dcsync"
	"github.com/dcsync/dcsync/transport/kafka"
)

func main() {
	dc := flag.String("dc", "telecom", "datacenter")
	brokers := flag.String("brokers", "", "this datacenter's brokers, comma-separated")
	prefix := flag.String("prefix", "dcsync", "topic and group prefix")
	batch := flag.Int("batch", 50, "records a worker polls at once")
	flag.Parse()
	node, err := kafka.NewNode(kafka.NodeConfig{DC: *dc, Brokers: strings.Split(*brokers, ","), Prefix: *prefix,
		Workers: 1, BatchSize: *batch, SessionTimeout: 6 * time.Second, Consumer: "stuck",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	var once sync.Once
	s, err := dcsync.New(node.Wire(dcsync.Config{Processor: dcsync.ProcessorFunc(
		func(context.Context, *dcsync.Request) error {
			once.Do(func() { fmt.Println("applying"); os.Stdout.Sync() })
			select {} // stuck until killed
		})}))
	if err != nil {
		log.Fatal(err)
	}
	_ = node.Run(context.Background(), s)
}
