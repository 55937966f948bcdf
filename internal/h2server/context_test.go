package h2server

import (
	"context"
	"errors"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

type ctxKey struct{}

// newCtxStream returns a stream with its context set up as processHeaders
// sets it, under a connection whose base context is base.
func newCtxStream(base context.Context) *stream {
	c := &conn{baseCtx: base}
	st := &stream{c: c}
	st.ctx.Context, st.ctx.st = c.baseCtx, st
	return st
}

// newCancellableBase is a connection base as net/http gives one: a value
// under a cancellable context.
func newCancellableBase(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "conn"))
	t.Cleanup(cancel)
	return ctx, cancel
}

func cancelStream(st *stream) {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	st.cancelLocked()
}

// TestStreamContextIsAContext: what a handler and the context package see,
// before and after the stream's cancellation, whether Done was asked for
// before or after: net/http's stream context (a context.WithCancel of the
// connection's base) in every answer, context.Cause included.
func TestStreamContextIsAContext(t *testing.T) {
	t.Parallel()
	for _, doneFirst := range []bool{true, false} {
		base, _ := newCancellableBase(t)
		st := newCtxStream(base)
		x := &st.ctx
		var early <-chan struct{}
		if doneFirst {
			early = x.Done()
			if testutil.IsDone(early) {
				t.Fatal("done before cancel")
			}
		}
		if x.Err() != nil || x.Value(ctxKey{}) != "conn" || context.Cause(x) != nil {
			t.Fatalf("before cancel: err %v, value %v, cause %v", x.Err(), x.Value(ctxKey{}), context.Cause(x))
		}
		if _, ok := x.Deadline(); ok {
			t.Fatal("a deadline where the connection has none")
		}
		cancelStream(st)
		cancelStream(st) // a second cancel changes nothing
		if !errors.Is(x.Err(), context.Canceled) || context.Cause(x) != context.Canceled {
			t.Fatalf("doneFirst=%v, after cancel: err %v, cause %v", doneFirst, x.Err(), context.Cause(x))
		}
		if !testutil.IsDone(x.Done()) || doneFirst && !testutil.IsDone(early) {
			t.Fatalf("doneFirst=%v: Done not closed after cancel", doneFirst)
		}
		if x.Value(ctxKey{}) != "conn" || base.Err() != nil {
			t.Fatalf("after cancel: value %v, base %v", x.Value(ctxKey{}), base.Err())
		}
	}
}

// TestStreamContextDeadline: the base's deadline shows through.
func TestStreamContextDeadline(t *testing.T) {
	t.Parallel()
	at := time.Now().Add(time.Hour)
	base, cancel := context.WithDeadline(context.Background(), at)
	defer cancel()
	if d, ok := newCtxStream(base).ctx.Deadline(); !ok || !d.Equal(at) {
		t.Fatalf("deadline %v %v, want %v", d, ok, at)
	}
}

// TestStreamContextChildren: contexts derived from a stream's context, and
// context.AfterFunc, follow its cancellation as they follow
// context.WithCancel's.
func TestStreamContextChildren(t *testing.T) {
	t.Parallel()
	base, _ := newCancellableBase(t)
	st := newCtxStream(base)
	x := &st.ctx
	child, cancelChild := context.WithCancel(context.WithValue(x, ctxKey{}, "request"))
	defer cancelChild()
	timed, cancelTimed := context.WithTimeout(x, time.Hour)
	defer cancelTimed()
	ran := make(chan struct{})
	context.AfterFunc(x, func() { close(ran) })
	own, cancelOwn := context.WithCancel(x)
	cancelOwn()
	if x.Err() != nil || own.Err() == nil {
		t.Fatal("cancelling a child reached the parent")
	}

	cancelStream(st)
	testutil.WaitDone(t, "WithCancel child", child.Done())
	testutil.WaitDone(t, "WithTimeout child", timed.Done())
	testutil.WaitDone(t, "AfterFunc", ran)
	if !errors.Is(child.Err(), context.Canceled) || child.Value(ctxKey{}) != "request" {
		t.Fatalf("child: %v, value %v", child.Err(), child.Value(ctxKey{}))
	}
	late := make(chan struct{})
	context.AfterFunc(x, func() { close(late) })
	testutil.WaitDone(t, "AfterFunc registered after cancel", late)
}

// TestStreamContextFollowsItsBase: a base cancelled while the stream is
// open reaches the stream's context and what derives from it (net/http
// cancels the base only after ServeConn, watchBase covers the rest), Done
// asked for or not.
func TestStreamContextFollowsItsBase(t *testing.T) {
	t.Parallel()
	for _, doneFirst := range []bool{true, false} {
		base, cancelBase := newCancellableBase(t)
		st := newCtxStream(base)
		x := &st.ctx
		var child context.Context
		if doneFirst {
			var cancel context.CancelFunc
			child, cancel = context.WithCancel(x)
			defer cancel()
		}
		cancelBase()
		if !errors.Is(x.Err(), context.Canceled) {
			t.Fatalf("doneFirst=%v: err %v after the base's cancellation", doneFirst, x.Err())
		}
		testutil.WaitDone(t, "the stream's context", x.Done())
		if doneFirst {
			testutil.WaitDone(t, "a child", child.Done())
		}
	}
}

// TestStreamContextCostsNothingUnasked: a stream whose context is only
// read, given a closer and cancelled, as the proxy's synchronous client
// uses it, allocates nothing for it.
func TestStreamContextCostsNothingUnasked(t *testing.T) {
	base, _ := newCancellableBase(t)
	st := newCtxStream(base)
	cl := &testutil.CountingCloser{}
	allocs := testing.AllocsPerRun(100, func() {
		st.ctx.cancelled.Store(false)
		x := &st.ctx
		if x.Err() != nil || x.Value(ctxKey{}) != "conn" || !x.CloseOnCancel(cl) {
			t.Fatal("a live context refused")
		}
		cancelStream(st)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per stream context, want 0", allocs)
	}
	if cl.N.Load() == 0 {
		t.Fatal("cancellation did not close the registered closer")
	}
}

// TestStreamContextRace: the stream's cancellation against a
// registration and its release, Done and a derived context, from other
// goroutines (run with -race).
func TestStreamContextRace(t *testing.T) {
	t.Parallel()
	testutil.RaceCloseOnCancel(t, 200, func() (testutil.CancelCloser, func()) {
		base, _ := newCancellableBase(t)
		st := newCtxStream(base)
		return &st.ctx, func() { cancelStream(st) }
	})
}
