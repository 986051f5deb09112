package grpc_test

import (
	"testing"

	"github.com/dcsync/dcsync/internal/wire/wiretest"
	"github.com/dcsync/dcsync/transport/transporttest"
)

// The gRPC transport passes the conformance suite of every transport.
func TestConformance(t *testing.T) { transporttest.Run(t, wiretest.Kit(transport{})) }
