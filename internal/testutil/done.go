package testutil

import (
	"context"
	"io"
	"sync"
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

// CancelCloser is a request context with a CloseOnCancel slot
// (h1server's, h2server's): one io.Closer closed on cancellation.
type CancelCloser interface {
	context.Context
	CloseOnCancel(io.Closer) bool
	ReleaseClose(io.Closer) bool
}

// RaceCloseOnCancel runs, n times over a fresh context from newCtx, its
// cancel against a registration and its release, a Done and a derived
// context's Done, each on a goroutine of its own (run it with -race).
// Every closer must end either released or closed, never both, never
// neither; every Done must close.
func RaceCloseOnCancel(tb testing.TB, n int, newCtx func() (ctx CancelCloser, cancel func())) {
	tb.Helper()
	for range n {
		ctx, cancel := newCtx()
		cl := &CountingCloser{}
		var released atomic.Bool
		var wg sync.WaitGroup
		wg.Add(4)
		go func() {
			defer wg.Done()
			if ctx.CloseOnCancel(cl) {
				released.Store(ctx.ReleaseClose(cl))
			} else {
				released.Store(true) // never registered: never closed
			}
		}()
		go func() { defer wg.Done(); <-ctx.Done() }()
		go func() {
			defer wg.Done()
			child, stop := context.WithCancel(ctx)
			defer stop()
			<-child.Done()
		}()
		go func() { defer wg.Done(); cancel() }()
		wg.Wait()
		if closed := cl.N.Load() == 1; closed == released.Load() {
			tb.Fatalf("closed %v, released %v: want exactly one", closed, released.Load())
		}
	}
}
