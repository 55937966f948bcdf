package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"gatehouse/internal/h1guard"
	"gatehouse/internal/httpsyntax"
	"gatehouse/internal/lb"
)

// respWriter records what reaches the client (status, bytes, write
// errors) and runs the route's response filters exactly once, just before
// the final response header is written, whichever phase writes it.
//
// It exposes the underlying writer through Unwrap, so
// http.ResponseController (used by httputil.ReverseProxy for flushing and
// for hijacking WebSocket upgrades) reaches the real connection.
type respWriter struct {
	http.ResponseWriter
	st          *state
	status      int
	bytes       int64
	wroteHeader bool
	hijacked    bool
	http10      bool  // the client speaks HTTP/1.0: no 1xx (informational)
	writeErr    error // first error writing to the client
	// writeTimeout bounds each write (a client that stops reading); the
	// deadline is renewed before writes (connState), so streams may idle.
	writeTimeout time.Duration
	// deadline is the route timeout's end, if any: no write deadline
	// goes past it (limitTo).
	deadline time.Time
	// renewAt: without a connState, the request's write deadline needs
	// no renewal before this (renewDeadline).
	renewAt time.Time

	// cs is the HTTP/1.x connection's state, nil on HTTP/2 (where each
	// stream has its own deadline) and under servers without ConnContext.
	cs *connState
}

func (w *respWriter) renewDeadline() {
	if w.writeTimeout <= 0 {
		return
	}
	// HTTP/1.x renews its connection's deadline (connState); HTTP/2, and
	// servers without a connState, the request's own, on the same terms:
	// once within renewSlack, so that a response's header and first write
	// set it once.
	renewAt := &w.renewAt
	if cs := w.cs; cs != nil {
		renewAt = &cs.renewAt
	}
	now := w.st.realNow()
	if now.Before(*renewAt) {
		return
	}
	d := now.Add(w.writeTimeout)
	*renewAt = now.Add(renewSlack(w.writeTimeout))
	if !w.deadline.IsZero() && w.deadline.Before(d) {
		d, *renewAt = w.deadline, w.deadline
	}
	if cs := w.cs; cs != nil {
		_ = cs.conn.SetWriteDeadline(d)
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(d)
}

// limitTo bounds every write to the client by dl, the route timeout's
// end, from now on: a client that reads slowly is cut there, as one that
// sends slowly is (routeRequest). On a connection that keeps its write
// deadline between requests (connState.kept), the next request replaces
// it (Engine.ServeHTTP).
func (w *respWriter) limitTo(dl time.Time) {
	w.deadline = dl
	w.renewAt = time.Time{}
	if cs := w.cs; cs != nil {
		cs.renewAt = time.Time{} // the next write renews, capped at dl
		cs.routeDeadline = true
		_ = cs.conn.SetWriteDeadline(dl)
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(dl)
}

func (w *respWriter) reset(rw http.ResponseWriter, st *state) {
	*w = respWriter{ResponseWriter: rw, st: st}
}

// liftDeadline ends limitTo's bound, for the answer to a route that timed
// out before its response began (504): write_timeout alone bounds it.
func (w *respWriter) liftDeadline() {
	w.deadline = time.Time{}
	w.renewAt = time.Time{}
	if cs := w.cs; cs != nil {
		cs.renewAt = time.Time{}
		if w.writeTimeout <= 0 {
			_ = cs.conn.SetWriteDeadline(time.Time{})
		}
		return
	}
	if w.writeTimeout <= 0 {
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Time{})
	}
}

// watchedBody is an HTTP/1.x request body that knows when it has been
// read to its end. A final response written before then says
// "Connection: close" (respWriter.WriteHeader): the engine answers
// without the body (401, 403, 404, 413, 429, a 502 before the upload,
// ...), and net/http would otherwise read and discard up to 256 KiB of
// what is left, with no deadline, before it even writes the response
// head (net/http chunkWriter.writeHeader); a client that sends slowly, or
// stops, would hold the connection (issue 14). With it, the head goes at
// once, and the connection is closed after it.
type watchedBody struct {
	io.ReadCloser
	left int64 // bytes still expected, when the length is known (-1: chunked)
	eof  atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		// The transport may stop at Content-Length without asking for
		// the EOF; read from one goroutine at a time, as any body.
		b.left -= int64(n)
		if b.left <= 0 {
			b.eof.Store(true)
		}
	}
	if errors.Is(err, io.EOF) {
		b.eof.Store(true)
	}
	return n, err
}

// done reports whether the body has been read to its end.
func (b *watchedBody) done() bool { return b.eof.Load() }

var connClose = []string{"close"}

// aLongTimeAgo is a deadline in the past: reads fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// clearDeadlines removes this request's deadlines from a connection that
// is handed over (a WebSocket may idle for hours).
func clearDeadlines(c net.Conn) {
	_ = c.SetDeadline(time.Time{})
}

func (w *respWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	// 1xx informational responses pass through; the final one follows.
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	if !w.deadline.IsZero() && time.Until(w.deadline) <= 0 {
		w.liftDeadline() // the route timed out: this is its answer
	}
	w.renewDeadline() // net/http may write the headers after the handler returns
	h := w.ResponseWriter.Header()
	st := w.st
	h["X-Request-Id"] = st.ridVals
	if r := st.route; r != nil {
		for _, f := range r.ResponseFilters {
			f.FilterResponse(&st.rc, code, h)
		}
	}
	if b := st.body; b != nil && !b.done() {
		h["Connection"] = connClose
	}
	if code == http.StatusNoContent {
		// A 204 has no content, and says no length (RFC 9110 §8.6):
		// HTTP/2 clients refuse one that does. The HTTP/1.1 servers drop
		// an upstream's; h2server would send it.
		delete(h, "Content-Length")
	}
	// HSTS on HTTPS responses only (RFC 6797 §7.2); an upstream's own wins.
	// Over plain HTTP an upstream's goes too: §7.2 forbids it there, and
	// a client that honoured a max-age=0 over HTTP would forget the
	// host's policy on an attacker's say-so.
	if !st.rc.TLS {
		delete(h, "Strict-Transport-Security")
	} else if t := st.snap.TLS; t != nil && t.HSTS != nil && !httpsyntax.FieldHasValue(h["Strict-Transport-Security"]) {
		h["Strict-Transport-Security"] = t.HSTS // an empty one is none
	}
	w.ResponseWriter.WriteHeader(code)
}

// informational writes a 1xx response, whichever upstream path passes
// it on (ReverseProxy's Got1xxResponse hook or state.Informational), with
// its fields in the header (the hooks copy them in, and clear them
// after). Hop-by-hop fields and those its Connection names are dropped,
// as from a final response (RFC 9110 §7.6.1). At most lb.Max1xx go out
// per attempt; past that nothing is written and the attempt fails
// (state.stop1xx). None goes to an HTTP/1.0 client (RFC 9110 §15.2: it
// would take the 1xx for the final response, and the final one for its
// body), and none with more fields than the pool allows (the direct
// client refuses such a head itself; the Transport counts no fields).
// What a final response may not carry, a 1xx may not either: the login
// cookies (dropOwnSetCookies) and, over plain HTTP, HSTS.
//
// Each is written with a renewed write deadline, as a final response is:
// h1server keeps a connection's deadline between requests, and the one
// the last response left may have passed while the connection idled.
func (w *respWriter) informational(code int) {
	if code == http.StatusContinue {
		// The client's server (net/http's HTTP/1 and HTTP/2 alike) sends
		// its own 100 Continue when the body is first read; the
		// upstream's would be a second one.
		return
	}
	st := w.st
	if st.n1xx >= lb.Max1xx {
		st.stop1xx(lb.ErrTooMany1xx)
		return
	}
	h := w.ResponseWriter.Header()
	maxFields := lb.DefaultMaxResponseHeaderFields
	if st.pool != nil { // an upstream's 1xx: always, but a local handler could write one
		maxFields = st.pool.MaxResponseHeaderFields()
	}
	if lb.CountFields(h) > maxFields {
		st.stop1xx(lb.ErrTooManyFields)
		return
	}
	st.n1xx++ // counted whoever the client is: the bound is the upstream's
	if w.http10 {
		return // the hooks clear h
	}
	named := connNamed(h["Connection"])
	for k := range h {
		if skipHeader(k, named) {
			delete(h, k)
		}
	}
	if !st.rc.TLS {
		delete(h, "Strict-Transport-Security")
	}
	if base := st.snap.StripCookie; base != "" {
		dropOwnSetCookies(h, base)
	}
	w.renewDeadline()
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.renewDeadline()
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	if err != nil && w.writeErr == nil {
		w.writeErr = err
	}
	return n, err
}

// FlushError implements the interface http.ResponseController looks for.
func (w *respWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.renewDeadline()
	err := http.NewResponseController(w.ResponseWriter).Flush()
	if err != nil && w.writeErr == nil {
		w.writeErr = err
	}
	return err
}

// Flush implements http.Flusher for handlers that type-assert it.
func (w *respWriter) Flush() { _ = w.FlushError() }

// Hijack hands the connection over (WebSocket upgrades). The upgrade
// response itself is written by httputil.ReverseProxy on the raw conn.
//
// A WebSocket's tunnel (state.ws) registers with the engine as the
// connection is handed over, so that Drain closes it; once Drain has
// begun, the switch fails (502) and the connection stays.
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	var brw *bufio.ReadWriter
	hijack := func() (net.Conn, error) {
		c, b, err := http.NewResponseController(w.ResponseWriter).Hijack()
		brw = b
		return c, err
	}
	t := w.st.ws
	var c net.Conn
	var err error
	if t != nil {
		c, err = t.open(hijack)
	} else {
		c, err = hijack()
	}
	if err != nil {
		return c, brw, err
	}
	w.hijacked = true
	clearDeadlines(c)
	if g := h1guard.Of(c); g != nil {
		g.Tunnel() // what follows is the upgraded protocol, not requests
	}
	return &tunnelConn{Conn: c, t: t}, brw, nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
