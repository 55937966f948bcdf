package testutil

import (
	"sync/atomic"
	"testing"
	"time"
)

// IsDone reports whether ch (a context's Done) is closed, without waiting.
func IsDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// WaitDone waits up to 5 s for ch (a context's Done) to close, and fails
// tb, naming what, if it does not.
func WaitDone(tb testing.TB, what string, ch <-chan struct{}) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		tb.Fatalf("%s: not done 5s after its parent was cancelled", what)
	}
}

// CountingCloser is an io.Closer that counts its Close calls.
type CountingCloser struct{ N atomic.Int32 }

func (c *CountingCloser) Close() error { c.N.Add(1); return nil }
