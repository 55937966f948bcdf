// Package h1guard checks the framing of every HTTP/1.x request on a plain
// connection before a server reads it: a request whose head could be
// read two ways never reaches the server, and so never an upstream.
//
// Request smuggling lives in the gap between two parsers that frame one
// byte stream differently: a front end that reads a body by
// Content-Length, Gatehouse by Transfer-Encoding, and the bytes after
// the last chunk become a second request that nobody checked. net/http
// follows RFC 9112 §6.3 (Transfer-Encoding wins, Content-Length is
// dropped) but keeps the connection open and accepts obfuscated forms
// (a tab before "chunked", obs-fold); its handlers never see the raw
// head, so the engine cannot tell. The guard sits between the listener
// and the servers (internal/h1server and net/http) and reads the stream
// as they will, message by message:
//
//   - A head is delivered only once it is complete and checked. A head
//     with Content-Length and Transfer-Encoding, Transfer-Encoding in an
//     HTTP/1.0 request, a Transfer-Encoding other than exactly
//     "chunked", repeated or differing framing headers, obs-fold, a
//     request line over Limits.MaxLineBytes (414), a header line over it
//     or a head over Limits.MaxHeadBytes (431) is refused: the server
//     reads, instead of it, a fixed request (RefusedTarget, Host
//     "refused.invalid", Connection: close) that the engine answers with
//     the refusal's status (Of, Conn.Refusal), and then the end of the
//     stream. Nothing of the refused request is delivered.
//   - A body is tracked exactly: Content-Length bytes, or chunks parsed
//     by net/http's rules (CRLF line endings, hex sizes of at most 16
//     digits, trailers). What net/http would refuse or the guard cannot
//     frame with certainty is a read error (ErrMalformedBody), which the
//     engine answers with 400 and a close.
//   - A connection that is handed over to a tunnel (a WebSocket after
//     101, Conn.Tunnel) or that starts HTTP/2 with prior knowledge is no
//     longer HTTP/1 and is passed through.
//
// The guard is stricter than net/http, never laxer: where it passes a
// message, both servers frame it as it did (FuzzFramingMatchesNetHTTP).
// Its cost is a scan of each head and chunk-size line; a head that
// arrives whole is checked in the reader's own buffer, without a copy.
//
// HTTPS listeners are not guarded: net/http must see the *tls.Conn
// itself. There the engine closes the connection after every chunked
// HTTP/1.1 request, as RFC 9112 §6.3 asks when Content-Length and
// Transfer-Encoding might both have been sent.
package h1guard

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/internal/netx"
)

// Limits are the head limits the guard enforces.
type Limits struct {
	// MaxLineBytes bounds the request line (longer: 414) and each header
	// line (longer: 431), line ending excluded. 0: only MaxHeadBytes.
	MaxLineBytes int
	// MaxHeadBytes bounds the whole head, request line to blank line
	// (longer: 431). 0: 1 MiB.
	MaxHeadBytes int
}

// Refusal says why a request head was refused, and what to answer.
type Refusal struct {
	Status int    // 400, 414 or 431
	Reason string // for the client and the access log
	// Method and Target are the refused head's, for the access log: the
	// request line's first two words, cut at 32 and 256 bytes, the
	// target without its query or an absolute form's userinfo (never
	// logged: they may hold a token or a password); empty when there is
	// none.
	Method, Target string
}

// requestLine returns the method and target of the head at the start of
// b, each cut at its bound, read from its first 512 bytes at most.
func requestLine(b []byte) (method, target string) {
	b = b[:min(len(b), 512)]
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	m, rest, _ := bytes.Cut(bytes.TrimRight(b, "\r"), []byte(" "))
	t, _, _ := bytes.Cut(rest, []byte(" "))
	// An absolute target's userinfo first (a password may hold "/" or
	// "?": everything up to the last "@" goes), then the query.
	if i := bytes.Index(t, []byte("://")); i >= 0 {
		if at := bytes.LastIndexByte(t[i+3:], '@'); at >= 0 {
			t = slices.Concat(t[:i+3], t[i+3+at+1:]) // a copy: b is the connection's
		}
	}
	t, _, _ = bytes.Cut(t, []byte("?"))
	return string(m[:min(len(m), 32)]), string(t[:min(len(t), 256)])
}

// ErrMalformedBody is the read error for a chunked body that net/http
// would refuse or that the guard cannot frame with certainty.
var ErrMalformedBody = errors.New("h1guard: malformed chunked request body")

// Listener guards every connection it accepts.
type Listener struct {
	net.Listener
	limits Limits
	// canned is the request head delivered in place of a refused one.
	canned []byte
	target string
}

// NewListener wraps l. The target of the request that stands in for a
// refused one holds a random part, so that no client can send it.
func NewListener(l net.Listener, lim Limits) *Listener {
	if lim.MaxHeadBytes <= 0 {
		lim.MaxHeadBytes = 1 << 20
	}
	var nonce [12]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	target := "/.gatehouse/refused/" + hex.EncodeToString(nonce[:])
	return &Listener{
		Listener: l,
		limits:   lim,
		target:   target,
		canned:   []byte("GET " + target + " HTTP/1.1\r\nHost: " + RefusedHost + "\r\nConnection: close\r\n\r\n"),
	}
}

// RefusedHost is the Host of the request that stands in for a refused one.
const RefusedHost = "refused.invalid"

// Accept returns the next connection, guarded.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, l: l}, nil
}

// Conn is a guarded connection. Its read side belongs to the goroutine
// reading it (servers read a connection from one goroutine at a time);
// Refusal and Tunnel may be called from any.
type Conn struct {
	net.Conn
	l *Listener

	out  []byte // checked bytes to deliver before anything else
	hold []byte // read but unchecked: the start of an incomplete head
	rerr error  // a read error to report once out and hold are delivered
	err  error  // sticky: ErrMalformedBody, or io.EOF after a refusal
	f    framer

	refusal   atomic.Pointer[Refusal]
	answered  atomic.Bool // the stand-in for the refused head was read
	tunnel    atomic.Bool
	malformed atomic.Bool // a body was malformed (Close may run on another goroutine)
	refused   bool        // a refusal is pending: the canned head follows out
	// (Fields ordered to keep an idle connection's guard small.)
}

// Of returns the guard under c, through wrappers that expose their inner
// connection with NetConn, or nil.
func Of(c net.Conn) *Conn {
	for i := 0; c != nil && i < 8; i++ {
		if g, ok := c.(*Conn); ok {
			return g
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// NetConn returns the connection under the guard.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Refusal returns why the request with the given target was refused, or
// nil when target is not the stand-in for a refused request.
func (c *Conn) Refusal(target string) *Refusal {
	if target != c.l.target {
		return nil
	}
	return c.refusal.Load()
}

// WaitReadable waits, without reading, until a Read would find
// something: it returns at once when the guard has bytes or an error to
// deliver (ReadPending), and otherwise waits for the connection under it
// to be readable (netx.WaitReadable), which reads nothing: the guard still
// sees every byte. Its error is the wait's (a deadline, a close), which
// the Read that follows meets again, or errors.ErrUnsupported when the
// connection under it cannot be waited on. Like Read, it belongs to the
// goroutine reading the connection.
func (c *Conn) WaitReadable() error {
	if c.ReadPending() {
		return nil // Read returns at once
	}
	return netx.WaitReadable(c.Conn)
}

// ReadPending reports whether a Read would return at once without
// reading the connection under the guard: it has checked bytes, a
// refusal or an error to deliver, or (passing through) bytes it held. An
// incomplete head it holds is not pending: Read waits for the rest. A
// poller waiting for the connection under the guard to be readable
// (netx.Poller) asks first, since the bytes the guard holds are no
// readiness of the socket. Like Read, it belongs to the goroutine reading
// the connection.
func (c *Conn) ReadPending() bool {
	pass := c.tunnel.Load() || c.f.mode == modePass
	return len(c.out) > 0 || c.refused || c.err != nil || c.rerr != nil ||
		pass && (len(c.hold) > 0 || c.refusal.Load() != nil)
}

// Tunnel stops the guard: what follows on the connection is not HTTP/1
// (a WebSocket after 101). Bytes read and not yet delivered are
// delivered as they are.
func (c *Conn) Tunnel() { c.tunnel.Store(true) }

// Lingering close after a refusal: how long, and how many of the client's
// bytes, the guard reads and discards before the final close (net/http
// waits 500 ms after its own refusals; nginx's lingering_close).
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 256 << 10
)

// Close closes the connection. After a refusal was answered, or a
// malformed body, the client is usually still sending (the rest of an
// oversized head, the body): closing with its bytes unread would reset
// the connection, and the client could lose the answer before reading
// it. So the guard half-closes first, then reads and discards what comes,
// for at most lingerTime and lingerBytes, and only then closes. A refusal
// not yet answered (a refused head pipelined behind a request still
// running, when a shutdown closes the connection) gets no lingering: net/http
// and h1server close their connections one after another.
func (c *Conn) Close() error {
	if c.answered.Load() || c.malformed.Load() {
		c.linger()
	}
	return c.Conn.Close()
}

func (c *Conn) linger() {
	if c.CloseWrite() != nil {
		return
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
}

// CloseWrite half-closes the connection when the inner one can (net/http
// does before its final close, so the client reads the whole answer).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom lets a response body reach the inner connection's ReadFrom
// (sendfile, splice) when it has one.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

type writerOnly struct{ io.Writer }

var holdPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Read delivers checked bytes only.
func (c *Conn) Read(p []byte) (int, error) {
	for {
		if c.tunnel.Load() && c.refusal.Load() != nil {
			// Bytes the client sent before the protocol switch were
			// refused as a request: they are no frame of the new protocol
			// either, and the stand-in is nothing the client sent. End the
			// tunnel.
			return 0, io.EOF
		}
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.refused {
			c.refused = false
			c.answered.Store(true)
			c.out = c.l.canned
			c.err = io.EOF
			c.hold, c.rerr = nil, nil
			continue
		}
		if c.err != nil {
			return 0, c.err
		}
		if c.tunnel.Load() || c.f.mode == modePass {
			if len(c.hold) > 0 {
				c.out, c.hold = c.hold, nil // not returned to the pool: out aliases it
				continue
			}
			if c.rerr != nil {
				err := c.rerr
				c.rerr = nil
				return 0, err
			}
			return c.Conn.Read(p)
		}
		if len(c.hold) == 0 {
			if c.rerr != nil {
				err := c.rerr
				c.rerr = nil
				return 0, err
			}
			// The common case: check the bytes in the reader's own buffer.
			n, err := c.Conn.Read(p)
			if n == 0 {
				return 0, err
			}
			k := c.advance(p[:n])
			c.rerr = err
			if k < n && !c.refused && c.err == nil {
				bp := holdPool.Get().(*[]byte)
				c.hold = append((*bp)[:0], p[k:n]...)
			}
			if k > 0 {
				return k, nil
			}
			continue
		}
		// An incomplete head is held: read more behind it.
		if c.rerr != nil {
			err := c.rerr
			c.rerr = nil
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, err // a deadline: the server may read again later
			}
			// The stream ended inside a head: deliver it as it is, for the
			// server to refuse; nothing can follow it.
			c.out, c.hold, c.err = c.hold, nil, err
			continue
		}
		if len(c.hold) == cap(c.hold) {
			c.hold = append(c.hold, 0)[:len(c.hold)]
		}
		n, err := c.Conn.Read(c.hold[len(c.hold):cap(c.hold)])
		c.hold = c.hold[:len(c.hold)+n]
		c.rerr = err
		if n == 0 {
			continue
		}
		k := c.advance(c.hold)
		if k == 0 {
			if c.refused || c.err != nil {
				c.releaseHold()
			}
			continue
		}
		// Deliver hold[:k]; keep the incomplete rest for later.
		done := c.hold[:k:k]
		rest := c.hold[k:]
		if len(rest) > 0 && !c.refused && c.err == nil {
			bp := holdPool.Get().(*[]byte)
			c.hold = append((*bp)[:0], rest...)
		} else {
			c.hold = nil
		}
		c.out = done // the old hold's array: not returned to the pool
	}
}

func (c *Conn) releaseHold() {
	if c.hold != nil && cap(c.hold) == 4096 {
		b := c.hold[:0]
		holdPool.Put(&b)
	}
	c.hold = nil
}

// advance runs the framer over b, which starts where the last delivered
// byte ended, and returns how many bytes of b may be delivered. On a
// refusal it sets c.refused and the refusal; on a malformed body it
// delivers what came before the fault and sets c.err.
func (c *Conn) advance(b []byte) int {
	k, res := c.f.advance(b, c.l.limits)
	switch res.kind {
	case resRefuse:
		m, t := requestLine(b[k:]) // the refused head starts where delivery stops
		c.refusal.Store(&Refusal{Status: res.status, Reason: res.reason, Method: m, Target: t})
		c.refused = true
	case resBadBody:
		c.err = ErrMalformedBody
		c.malformed.Store(true)
	}
	return k
}
