package h2server

import (
	"context"
	"io"
	"sync/atomic"
)

// streamCtx is a stream's context, cancelled when the stream ends or its
// handler returns. It lives in the stream, so a request whose context
// nobody waits on costs no allocation for it, where context.WithCancel
// costs two, and its cancellation a lock and the children bookkeeping of
// the connection's base (together 2 % of the proxy's CPU over HTTP/2):
//   - CloseOnCancel has one io.Closer closed on cancellation without
//     context.AfterFunc's three allocations, a children map and its
//     registration. internal/lb registers its upstream connection there,
//     whose blocked read or write must end with the request;
//     h1server's request contexts offer the same;
//   - the first Done makes a context.WithCancel of the connection's base,
//     cancelled with this one, and from then on Done, Err and Value are
//     that context's. The context package then finds it (Value answers
//     its private key), so contexts derived from this one join its
//     children as they would net/http's stream context's, with no
//     goroutine each.
//
// Before the first Done, values are the base's. context.Cause still
// reports the stream's cancellation: the base's cancelCtx it then finds
// has no cause, and Cause falls back to Err.
type streamCtx struct {
	context.Context // the connection's base: its values and deadline
	st              *stream

	inner     atomic.Pointer[innerCtx] // made by the first Done, under c.mu
	cancelled atomic.Bool              // set by cancelLocked, under c.mu
}

type innerCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// Done must not be called with the connection's mu held.
func (x *streamCtx) Done() <-chan struct{} {
	if in := x.inner.Load(); in != nil {
		return in.ctx.Done()
	}
	return x.makeInner().Done()
}

// makeInner returns the inner context, made now if it is not yet: a
// context.WithCancel of the base, cancelled at once if the stream's
// context already is.
func (x *streamCtx) makeInner() context.Context {
	c := x.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if in := x.inner.Load(); in != nil {
		return in.ctx
	}
	ctx, cancel := context.WithCancel(x.Context)
	if x.cancelled.Load() {
		cancel()
	}
	x.inner.Store(&innerCtx{ctx: ctx, cancel: cancel})
	return ctx
}

func (x *streamCtx) Err() error {
	if in := x.inner.Load(); in != nil {
		return in.ctx.Err()
	}
	if x.cancelled.Load() {
		return context.Canceled
	}
	return x.Context.Err()
}

func (x *streamCtx) Value(key any) any {
	if in := x.inner.Load(); in != nil {
		return in.ctx.Value(key) // the base's values, and the context package's own key
	}
	return x.Context.Value(key)
}

// CloseOnCancel has cl closed when the stream's context is cancelled,
// until ReleaseClose. It reports false, doing nothing, when the context
// is already cancelled or another closer is registered: the caller then
// uses context.AfterFunc.
func (x *streamCtx) CloseOnCancel(cl io.Closer) bool {
	st := x.st
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	if st.closer != nil || x.Err() != nil { // Err: cancelLocked, under c.mu, cancels first
		return false
	}
	st.closer = cl
	return true
}

// ReleaseClose ends CloseOnCancel for cl. It reports whether cl was still
// registered: false when cancellation has closed it.
func (x *streamCtx) ReleaseClose(cl io.Closer) bool {
	st := x.st
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	if st.closer != cl {
		return false
	}
	st.closer = nil
	return true
}

func (x *streamCtx) String() string { return "h2server.streamCtx" }

// cancelLocked cancels the stream's context and closes what was
// registered with CloseOnCancel (a socket's Close, which does not
// block). c.mu is held.
func (st *stream) cancelLocked() {
	x := &st.ctx
	if !x.cancelled.Load() {
		// The inner context first: Err, which reads it once it exists,
		// never reports the stream live after cancelled is set.
		if in := x.inner.Load(); in != nil {
			in.cancel()
		}
		x.cancelled.Store(true)
	}
	if cl := st.closer; cl != nil {
		st.closer = nil
		_ = cl.Close()
	}
}

// watchBase cancels the open streams' contexts when the connection's
// base context is cancelled (derived contexts would follow it; what is
// registered with CloseOnCancel must too). net/http's base is cancelled
// only once ServeConn has returned, when every stream already is; a
// base that is never cancelled costs nothing. It returns the watch's
// stop function.
func (c *conn) watchBase() func() bool {
	if c.baseCtx.Done() == nil {
		return func() bool { return true }
	}
	return context.AfterFunc(c.baseCtx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, st := range c.streams {
			st.cancelLocked()
		}
		for _, st := range c.pending {
			st.cancelLocked()
		}
	})
}
