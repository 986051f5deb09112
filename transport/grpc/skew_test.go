package grpc_test

import (
	"testing"

	"github.com/dcsync/dcsync/internal/wire/wiretest"
)

// A receiver refusing a write for clock skew is recognised by its code:
// the sender returns dcsync.ErrClockSkew and the reconciler counts it.
func TestSkewRefusal(t *testing.T) { wiretest.TestSkewRefusal(t, transport{}) }
