package main

import (
	"os"
	"strings"
	"testing"
)

// The README shows this program verbatim: the code block after the line
// naming examples/service/main.go must be main.go, so the two cannot drift.
func TestREADMEShowsThisProgram(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	program, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- the code block below is examples/service/main.go, verbatim; a test checks it -->\n```go\n"
	_, block, ok := strings.Cut(string(readme), marker)
	if !ok {
		t.Fatalf("README.md has no line %q", marker)
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatal("README.md: the code block after the marker is not closed")
	}
	if block+"\n" != string(program) {
		t.Errorf("README.md's program differs from examples/service/main.go: copy main.go into it")
	}
}
