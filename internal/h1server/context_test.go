package h1server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

type ctxKey struct{}

func newReqContext() *reqContext {
	return &reqContext{Context: context.WithValue(context.Background(), ctxKey{}, "conn")}
}

// TestReqContextIsAContext: what a handler and the context package see,
// before and after cancellation, whether Done was asked for before or
// after.
func TestReqContextIsAContext(t *testing.T) {
	t.Parallel()
	for _, doneFirst := range []bool{true, false} {
		c := newReqContext()
		var early <-chan struct{}
		if doneFirst {
			early = c.Done()
			if testutil.IsDone(early) {
				t.Fatal("done before cancel")
			}
		}
		if c.Err() != nil || c.Value(ctxKey{}) != "conn" {
			t.Fatalf("before cancel: err %v, value %v", c.Err(), c.Value(ctxKey{}))
		}
		if _, ok := c.Deadline(); ok {
			t.Fatal("a deadline where the connection has none")
		}
		c.cancel()
		c.cancel() // a second cancel changes nothing
		if !errors.Is(c.Err(), context.Canceled) || context.Cause(c) != context.Canceled {
			t.Fatalf("after cancel: err %v, cause %v", c.Err(), context.Cause(c))
		}
		if !testutil.IsDone(c.Done()) || doneFirst && !testutil.IsDone(early) {
			t.Fatal("Done not closed after cancel")
		}
	}
}

// TestReqContextChildren: contexts derived from a request's context, and
// context.AfterFunc, follow its cancellation as they follow
// context.WithCancel's; stop works as context.AfterFunc's does.
func TestReqContextChildren(t *testing.T) {
	t.Parallel()
	c := newReqContext()
	child, cancelChild := context.WithCancel(c)
	defer cancelChild()
	timed, cancelTimed := context.WithTimeout(c, time.Hour)
	defer cancelTimed()
	ran := make(chan struct{})
	context.AfterFunc(c, func() { close(ran) })
	var stoppedRan atomic.Bool
	stop := context.AfterFunc(c, func() { stoppedRan.Store(true) })
	if !stop() || stop() {
		t.Fatal("stop before cancel: want true, then false")
	}
	// A child cancelled on its own leaves the parent alone.
	own, cancelOwn := context.WithCancel(c)
	cancelOwn()
	if c.Err() != nil || own.Err() == nil {
		t.Fatal("cancelling a child reached the parent")
	}

	c.cancel()
	testutil.WaitDone(t, "WithCancel child", child.Done())
	testutil.WaitDone(t, "WithTimeout child", timed.Done())
	testutil.WaitDone(t, "AfterFunc", ran)
	if !errors.Is(child.Err(), context.Canceled) || !errors.Is(timed.Err(), context.Canceled) {
		t.Fatalf("children: %v, %v", child.Err(), timed.Err())
	}
	if stoppedRan.Load() {
		t.Fatal("a stopped AfterFunc ran")
	}
	late := make(chan struct{})
	if stop := context.AfterFunc(c, func() { close(late) }); stop() {
		t.Fatal("stop after cancel reported true")
	}
	testutil.WaitDone(t, "AfterFunc registered after cancel", late)
}

// TestReqContextDescendantsNeedNoGoroutine: contexts derived from a
// request's context through context.WithValue (as ReverseProxy's
// Transport derives its own) join its children, as under
// context.WithCancel, instead of each getting a goroutine that waits on
// the parent; and they are cancelled with it. Not parallel: it counts
// the process's goroutines.
func TestReqContextDescendantsNeedNoGoroutine(t *testing.T) {
	c := newReqContext()
	before := runtime.NumGoroutine()
	const n = 100
	var children []context.Context
	for range n {
		v := context.WithValue(c, ctxKey{}, "request")
		child, cancel := context.WithCancel(v)
		defer cancel()
		children = append(children, child)
	}
	if grown := runtime.NumGoroutine() - before; grown >= n/2 {
		t.Fatalf("%d derived contexts started %d goroutines", n, grown)
	}
	c.cancel()
	for _, child := range children {
		testutil.WaitDone(t, "a descendant", child.Done())
	}
	if children[0].Value(ctxKey{}) != "request" {
		t.Fatal("a descendant lost its value")
	}
}

// TestReqContextCloseOnCancel: the closer is closed by cancel, before it
// returns, exactly once; a released one is not; one slot at a time.
func TestReqContextCloseOnCancel(t *testing.T) {
	t.Parallel()
	c := newReqContext()
	a, b := &testutil.CountingCloser{}, &testutil.CountingCloser{}
	if !c.CloseOnCancel(a) {
		t.Fatal("the slot refused its first closer")
	}
	if c.CloseOnCancel(b) {
		t.Fatal("a second closer took the slot")
	}
	if !c.ReleaseClose(a) || c.ReleaseClose(a) {
		t.Fatal("release: want true once, then false")
	}
	if !c.CloseOnCancel(b) {
		t.Fatal("the slot refused a closer after a release")
	}
	c.cancel()
	if a.N.Load() != 0 || b.N.Load() != 1 {
		t.Fatalf("closed: released %d times, registered %d times; want 0 and 1", a.N.Load(), b.N.Load())
	}
	if c.ReleaseClose(b) {
		t.Fatal("release after cancellation closed it reported it open")
	}
	if c.CloseOnCancel(a) || a.N.Load() != 0 {
		t.Fatal("a done context took a closer")
	}
	c.cancel()
	if b.N.Load() != 1 {
		t.Fatal("closed twice")
	}
}

// TestReqContextRace: cancel against a registration and its release,
// Done and a derived context, from other goroutines (run with -race).
func TestReqContextRace(t *testing.T) {
	t.Parallel()
	testutil.RaceCloseOnCancel(t, 200, func() (testutil.CancelCloser, func()) {
		c := newReqContext()
		return c, c.cancel
	})
}

// TestRequestsGetAReqContext: under a connection context that cannot be
// cancelled (Gatehouse's), a handler's context is a reqContext, cancelled
// when the handler returns; under a cancellable base it is
// context.WithCancel's, which follows the base.
func TestRequestsGetAReqContext(t *testing.T) {
	t.Parallel()
	for _, cancellable := range []bool{false, true} {
		base, cancelBase := context.WithCancel(context.Background())
		got := make(chan context.Context, 1)
		h := func(w http.ResponseWriter, r *http.Request) {
			got <- r.Context()
			if cancellable {
				cancelBase()
				<-r.Context().Done() // follows the base
			}
		}
		_, l, _ := serveFast(t, h, func(s *http.Server) {
			if cancellable {
				s.BaseContext = func(net.Listener) context.Context { return base }
			}
		})
		c := l.dial(t)
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		readResponse(t, bufio.NewReader(c), "GET")
		ctx := <-got
		if _, isReq := ctx.(*reqContext); isReq == cancellable {
			t.Errorf("cancellable base %v: request context %T", cancellable, ctx)
		}
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("cancellable base %v: not cancelled after the handler returned", cancellable)
		}
		c.Close()
		cancelBase()
	}
}
