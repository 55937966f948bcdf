package h1server

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
)

// reqContext is a request's context, cancelled as net/http's is: when the
// handler returns, when a write to the client fails, or when the client is
// seen leaving. It lives in the request's response, so a request whose
// context nobody waits on costs no allocation for it, where
// context.WithCancel costs two, and a context.AfterFunc on that three more
// plus a map of children:
//   - CloseOnCancel has one io.Closer closed on cancellation, with no
//     allocation: a proxy's upstream connection, whose blocked read or
//     write must end when the request does (internal/lb uses it);
//   - the first Done makes a context.WithCancel of the connection's
//     context, cancelled with this one, and from then on Done and Value
//     are that context's. The context package then finds it (Value
//     answers its private key), so contexts derived from this one, even
//     through context.WithValue, join its children as they would
//     net/http's request context's, with no goroutine each.
//
// It is only used under a connection context that is never cancelled
// (no BaseContext, or one whose Done is nil), so it has no parent to
// watch; otherwise the server uses context.WithCancel.
type reqContext struct {
	context.Context // the connection's: its values, no deadline, no Done

	inner atomic.Pointer[innerCtx] // made by the first Done

	mu     sync.Mutex // guards the following fields, and making inner
	err    error
	closer io.Closer
}

type innerCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// closedChan is Done's channel of a context cancelled before anyone asked.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (c *reqContext) Done() <-chan struct{} {
	if in := c.inner.Load(); in != nil {
		return in.ctx.Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if in := c.inner.Load(); in != nil {
		return in.ctx.Done()
	}
	if c.err != nil {
		return closedChan
	}
	ctx, cancel := context.WithCancel(c.Context)
	c.inner.Store(&innerCtx{ctx: ctx, cancel: cancel})
	return ctx.Done()
}

func (c *reqContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *reqContext) Value(key any) any {
	if in := c.inner.Load(); in != nil {
		return in.ctx.Value(key) // the connection's values, and the context package's own key
	}
	return c.Context.Value(key)
}

func (c *reqContext) String() string { return "h1server.reqContext" }

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

// cancel cancels the context with context.Canceled: the registered
// closer is closed, and the inner context cancelled, before it returns.
func (c *reqContext) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	cl := c.closer
	c.closer = nil
	in := c.inner.Load()
	c.mu.Unlock()
	if in != nil {
		in.cancel()
	}
	if cl != nil {
		_ = cl.Close()
	}
}
