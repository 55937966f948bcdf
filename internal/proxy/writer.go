package proxy

import (
	"bufio"
	"net"
	"net/http"
	"time"

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
	writeErr    error // first error writing to the client
	// writeTimeout bounds each write (a client that stops reading); the
	// deadline is renewed before writes (connState), so streams may idle.
	writeTimeout time.Duration

	// cs is the HTTP/1.x connection's state, nil on HTTP/2 (where each
	// stream has its own deadline) and under servers without ConnContext.
	cs *connState
}

func (w *respWriter) renewDeadline() {
	if w.writeTimeout <= 0 {
		return
	}
	now := time.Now()
	if cs := w.cs; cs != nil {
		if now.Before(cs.renewAt) {
			return
		}
		cs.renewAt = now.Add(renewSlack(w.writeTimeout))
		_ = cs.conn.SetWriteDeadline(now.Add(w.writeTimeout))
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(now.Add(w.writeTimeout))
}

func (w *respWriter) reset(rw http.ResponseWriter, st *state) {
	*w = respWriter{ResponseWriter: rw, st: st}
}

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
	w.renewDeadline() // net/http may write the headers after the handler returns
	h := w.ResponseWriter.Header()
	st := w.st
	h["X-Request-Id"] = st.ridVals
	if r := st.route; r != nil {
		for _, f := range r.ResponseFilters {
			f.FilterResponse(&st.rc, code, h)
		}
	}
	// HSTS on HTTPS responses only (RFC 6797 §7.2); an upstream's own wins.
	if t := st.snap.TLS; st.rc.TLS && t != nil && t.HSTS != nil {
		if _, set := h["Strict-Transport-Security"]; !set {
			h["Strict-Transport-Security"] = t.HSTS
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// informational writes a 1xx response, whichever upstream path passes
// it on (ReverseProxy's Got1xxResponse hook or state.Informational), with
// its fields in the header (the hooks copy them in, and clear them
// after). Hop-by-hop fields and those its Connection names are dropped,
// as from a final response (RFC 9110 §7.6.1). At most lb.Max1xx go out
// per attempt; past that nothing is written and the attempt fails
// (state.too1xx).
//
// Each is written with a renewed write deadline, as a final response is:
// h1server keeps a connection's deadline between requests, and the one
// the last response left may have passed while the connection idled.
func (w *respWriter) informational(code int) {
	st := w.st
	if st.n1xx >= lb.Max1xx {
		st.too1xx()
		return
	}
	st.n1xx++
	h := w.ResponseWriter.Header()
	named := connNamed(h["Connection"])
	for k := range h {
		if skipHeader(k, named) {
			delete(h, k)
		}
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
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	w.hijacked = true
	clearDeadlines(c)
	return &tunnelConn{Conn: c}, brw, nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
