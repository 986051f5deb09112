package netdelay_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/dcsync/dcsync/internal/netdelay"
)

// echo serves an echo server on loopback and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestProxyDelaysBothWaysAndKeepsTheBytes(t *testing.T) {
	const delay = 20 * time.Millisecond
	p, err := netdelay.Start(netdelay.Config{Target: echo(t), Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := make([]byte, 1<<20)
	for i := range sent {
		sent[i] = byte(rand.N(256))
	}
	start := time.Now()
	go func() {
		c.Write(sent)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	// A lower bound only: the line can make a round trip longer under
	// load, never shorter.
	if rtt := time.Since(start); rtt < 2*delay {
		t.Fatalf("round trip of %v through a line of %v each way", rtt, delay)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("got %d bytes back, not the %d sent", len(got), len(sent))
	}
	if p.Peak() == 0 {
		t.Fatal("no bytes counted in the line")
	}
}

func TestProxyClosesItsConnections(t *testing.T) {
	p, err := netdelay.Start(netdelay.Config{Target: echo(t), Delay: time.Millisecond, Bandwidth: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("%q %v", buf, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection still open after Close")
	}
}
