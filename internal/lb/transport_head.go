package lb

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
)

// http.ReadResponse, under http.Transport as under the synchronous
// client (readFull), deletes a Connection field that says "close", and
// with it the names of the fields it marks hop-by-hop: an upstream's
// "Connection: close, X-Internal" would let X-Internal through to the
// client. The Transport's connections are therefore headRecorders, which
// keep the bytes of the response heads that follow a request, and
// transportRoundTrip puts the field back from them.

// headRecorder is a connection of the pool's Transport that records the
// response heads read after start: every 1xx head and the final one,
// then nothing until the next start (the body is not copied).
type headRecorder struct {
	net.Conn
	// on: recording, start was called and the final head is not whole
	// yet. Read looks at it without mu: a body's reads take no lock.
	on   atomic.Bool
	mu   sync.Mutex // guards the following fields
	buf  *[]byte    // from headBufs, between start and release
	rec  []byte     // the heads read since start, in *buf's array
	scan int        // where the next head begins in rec
	seen int        // rec[scan:seen] has no blank line
}

// start begins recording the heads of the response to a request about
// to be written on the connection.
func (c *headRecorder) start() {
	c.mu.Lock()
	if c.buf == nil {
		c.buf = headBufs.Get().(*[]byte)
	}
	c.rec, c.scan, c.seen = (*c.buf)[:0], 0, 0
	c.on.Store(true)
	c.mu.Unlock()
}

// release stops recording and gives the buffer back: an idle connection
// keeps none.
func (c *headRecorder) release() {
	c.mu.Lock()
	c.on.Store(false)
	if c.buf != nil {
		putHeadBuf(c.buf, c.rec)
		c.buf, c.rec = nil, nil
	}
	c.mu.Unlock()
}

func (c *headRecorder) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.on.Load() {
		c.mu.Lock()
		if c.on.Load() {
			c.rec = append(c.rec, p[:n]...)
			c.findFinal()
		}
		c.mu.Unlock()
	}
	return n, err
}

// findFinal stops recording once rec holds a final (not 1xx) head
// whole, or more than any head may be. c.mu is held.
func (c *headRecorder) findFinal() {
	for {
		head := c.rec[c.scan:]
		end := headEnd(head, max(c.seen-c.scan-2, 0)) // a blank line may straddle two reads
		if end < 0 {
			c.seen = len(c.rec)
			if len(c.rec) > maxResponseHead {
				c.on.Store(false)
			}
			return
		}
		// "HTTP/1.1 1xx": informational, another head follows (101 ends it).
		if len(head) > 12 && head[9] == '1' && !bytes.HasPrefix(head[9:], []byte("101")) {
			c.scan += end
			c.seen = c.scan
			continue
		}
		c.on.Store(false)
		return
	}
}

// headEnd is the length of the head at the start of b, through its
// blank line (CRLF CRLF, or bare LFs as textproto takes them), or -1;
// the search for the line feed that begins the blank line starts at
// from.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
	}
	return -1
}

// finalConnection is the Connection field of the last head recorded,
// nil if there is none or the head was not recorded whole.
func (c *headRecorder) finalConnection() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on.Load() || c.scan >= len(c.rec) {
		return nil
	}
	return connectionField(c.rec[c.scan:])
}

// recordingDialers wraps the pool's dial as the Transport's DialContext
// and, for a TLS pool, DialTLSContext (whose connections it handshakes
// itself, with the synchronous client's configuration, so that what is
// recorded is the plaintext): both return headRecorders.
func recordingDialers(dial func(ctx context.Context, network, addr string) (net.Conn, error), h1 *h1Client, tlsOn bool) (
	plain, withTLS func(ctx context.Context, network, addr string) (net.Conn, error),
) {
	plain = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &headRecorder{Conn: nc}, nil
	}
	if !tlsOn {
		return plain, nil
	}
	withTLS = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(nc, h1.tlsConfig(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		return &headRecorder{Conn: tc}, nil
	}
	return plain, withTLS
}

// transportRoundTrip is Transport.RoundTrip, with the Connection field
// http.ReadResponse deleted put back from the recorded head.
func (p *Pool) transportRoundTrip(req *http.Request) (*http.Response, error) {
	var rc *headRecorder
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if c, ok := info.Conn.(*headRecorder); ok {
			c.start()
			rc = c
		}
	}}
	resp, err := p.Transport.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if rc != nil {
		if err == nil && resp.Close && resp.ProtoAtLeast(1, 1) && resp.Header["Connection"] == nil {
			if vv := rc.finalConnection(); vv != nil {
				resp.Header["Connection"] = vv
			}
		}
		rc.release()
	}
	// The Transport bounds the head's bytes (MaxResponseHeaderBytes), not
	// its fields.
	if err == nil && CountFields(resp.Header) > p.h1.maxFields {
		resp.Body.Close()
		return nil, ErrTooManyFields
	}
	return resp, err
}
