package h1server

import (
	"context"
	"io"
	"sync"
)

// reqContext is a request's context, cancelled as net/http's is: when the
// handler returns, when a write to the client fails, or when the client is
// seen leaving. It lives in the request's response (no allocation of its
// own), where context.WithCancel costs two allocations, and three more
// plus a map of children as soon as something registers with
// context.AfterFunc. Here:
//   - Done's channel is made only when asked for;
//   - AfterFunc (which context.AfterFunc and contexts derived from this
//     one use, instead of a goroutine each) keeps its functions in a
//     slice;
//   - CloseOnCancel has one io.Closer closed on cancellation, with no
//     allocation: a proxy's upstream connection, whose blocked read or
//     write must end when the request does (internal/lb uses it).
//
// It is only used under a connection context that is never cancelled
// (no BaseContext, or one whose Done is nil), so it has no parent to
// watch; otherwise the server uses context.WithCancel.
type reqContext struct {
	context.Context // the connection's: its values, no deadline, no Done

	mu     sync.Mutex    // guards the following fields
	done   chan struct{} // nil until Done is called or the context cancelled
	err    error
	afters []*afterFunc
	closer io.Closer
}

type afterFunc struct {
	f       func()
	settled bool // run or stopped: stop reports false from then on
}

// closedChan is Done's channel of a context cancelled before anyone asked.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (c *reqContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *reqContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *reqContext) String() string { return "h1server.requestContext" }

// AfterFunc is context.AfterFunc's contract: f runs in its own goroutine
// once the context is cancelled (at once if it is), unless stop is called
// first; stop reports whether it stopped f from running. The context
// package looks for this method on a parent it does not know.
func (c *reqContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	c.afters = append(c.afters, a)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if a.settled {
			return false
		}
		a.settled = true
		for i, b := range c.afters {
			if b == a {
				c.afters = append(c.afters[:i], c.afters[i+1:]...)
				break
			}
		}
		return true
	}
}

// CloseOnCancel has cl closed when the context is cancelled, until
// ReleaseClose. It reports false, doing nothing, when the context is
// already done or another closer is registered: the caller then uses
// context.AfterFunc.
func (c *reqContext) CloseOnCancel(cl io.Closer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.closer != nil {
		return false
	}
	c.closer = cl
	return true
}

// ReleaseClose ends CloseOnCancel for cl. It reports whether cl was still
// registered: false when cancellation has closed it, or is closing it.
func (c *reqContext) ReleaseClose(cl io.Closer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closer != cl {
		return false
	}
	c.closer = nil
	return true
}

// cancel cancels the context with context.Canceled: the registered closer
// is closed before cancel returns, and AfterFunc functions are started.
func (c *reqContext) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done == nil {
		c.done = closedChan
	} else {
		close(c.done)
	}
	afters, cl := c.afters, c.closer
	c.afters, c.closer = nil, nil
	for _, a := range afters {
		a.settled = true
	}
	c.mu.Unlock()
	if cl != nil {
		_ = cl.Close()
	}
	for _, a := range afters {
		go a.f()
	}
}
