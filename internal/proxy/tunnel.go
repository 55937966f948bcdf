package proxy

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// tunnelLinger bounds how long a tunnel (a WebSocket, any protocol
// switch) stays open once the upstream has closed its side: the client
// gets a FIN at once, and then this long to close its own side before
// both connections are closed. net/http gives a client the same 500 ms
// after a half-close (rstAvoidanceDelay), so that the close does not
// come as an RST ahead of the last bytes.
const tunnelLinger = 500 * time.Millisecond

// tunnelConn is the client's connection once a protocol switch hands it
// over (respWriter.Hijack): httputil.ReverseProxy relays bytes both ways
// through it until one way fails, or until both have ended.
//
// When the upstream closes (EOF on its side), ReverseProxy half-closes
// the client's connection and keeps relaying the client's bytes,
// waiting for the client to close too: a client that does not held its
// connection and the upstream's (in CLOSE-WAIT) for as long as it
// wanted. CloseWrite bounds that wait by tunnelLinger (issue 14).
//
// Its Write is the upstream-to-client direction of a WebSocket
// (t.toClient), and its first Read tells that the 101 has gone out.
type tunnelConn struct {
	net.Conn
	t        *wsTunnel // nil: not a WebSocket
	readSeen bool      // Read has run; only Read touches it
}

func (c *tunnelConn) Read(p []byte) (int, error) {
	if !c.readSeen && c.t != nil {
		// ReverseProxy reads only once the 101 is written and flushed.
		c.readSeen = true
		c.t.toClient.start()
	}
	return c.Conn.Read(p)
}

func (c *tunnelConn) Write(p []byte) (int, error) {
	if c.t == nil {
		return c.Conn.Write(p)
	}
	return c.t.toClient.Write(p)
}

// CloseWrite runs when the upstream side has ended (ReverseProxy's
// copyFromBackend): it half-closes the client's connection when it can,
// and ends the relay of the client's bytes after tunnelLinger, after
// which ReverseProxy closes both connections.
func (c *tunnelConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	return c.Conn.SetReadDeadline(time.Now().Add(tunnelLinger))
}

type closeWriter interface{ CloseWrite() error }

// drainable wraps an event stream's body so that Drain ends it.
func (e *Engine) drainable(body io.ReadCloser) io.ReadCloser {
	b := &drainableBody{ReadCloser: body}
	b.stop = context.AfterFunc(e.draining, func() {
		b.drained.Store(true)
		_ = body.Close() // unblocks a Read
	})
	return b
}

// drainableBody is an event stream's body that reads as ended once
// shutdown has closed it.
type drainableBody struct {
	io.ReadCloser
	drained atomic.Bool
	stop    func() bool
}

func (b *drainableBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && b.drained.Load() {
		err = io.EOF
	}
	return n, err
}

func (b *drainableBody) Close() error {
	b.stop()
	return b.ReadCloser.Close()
}
