package main

import (
	"testing"

	"github.com/dcsync/dcsync/internal/demo/demotest"
)

func TestQuickstartConverges(t *testing.T) { demotest.Converges(t, run) }
