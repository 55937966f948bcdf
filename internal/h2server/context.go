package h2server

import (
	"context"
	"io"
)

// streamCtx is a stream's context: context.WithCancel's of the
// connection's base, cancelled when the stream ends or its handler
// returns, plus CloseOnCancel: one io.Closer closed on cancellation
// without context.AfterFunc's three allocations, a children map and its
// registration (2 % of the proxy's CPU over HTTP/2). internal/lb
// registers its upstream connection there, whose blocked read or write
// must end with the request; h1server's request contexts offer the same.
//
// Contexts derived from it are children of the embedded cancelCtx, as
// they would be of context.WithCancel's: the context package finds it
// through Value, and Done is its channel.
type streamCtx struct {
	context.Context
	st *stream
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
	st.cancel()
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
