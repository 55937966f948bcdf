package proxy

import (
	"context"
	"errors"
	"gatehouse/internal/tlsx"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"gatehouse/internal/phase"
	"gatehouse/internal/route"
	"gatehouse/internal/runtime"
)

// routeRequest picks the route, then applies the route's body limit and
// overall timeout. No match is 404. It returns the request the later phases
// must use (with the route's deadline in its context).
func (e *Engine) routeRequest(st *state, w *respWriter, r *http.Request) (*http.Request, bool) {
	if t := st.snap.TLS; t != nil && r.TLS == nil && e.plainHTTP(st, t, w, r) {
		return r, false
	}
	var rt *runtime.Route
	if route.HasParams(st.rc.Path) {
		var ok bool
		if rt, ok = e.paramsRoute(st, w, r); !ok {
			return r, false
		}
	} else if rt = st.snap.Local[st.rc.Path]; rt == nil { // Gatehouse's own paths first, on every host
		idx := st.snap.Table.Match(st.rc.Host, st.rc.Path, r.Method, r.Header)
		if idx < 0 {
			st.route = st.snap.Fallback
			e.failToProxy(st, w, r, phase.NewError(phase.KindNotFound, "no route for this request", nil))
			return r, false
		}
		rt = st.snap.Routes[idx]
	}
	st.route = rt
	st.rc.Route = rt.Name
	if st.span != nil {
		st.span.SetName(spanMethod(r.Method) + " " + rt.Name)
		st.span.SetAttributes(attribute.String("http.route", rt.Name))
	}

	if limit := rt.MaxBodyBytes; limit > 0 && r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		if r.ContentLength > limit {
			e.failToProxy(st, w, r, phase.NewError(phase.KindBodyTooLarge, "request body too large", nil))
			return r, false
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	var dl time.Time // the route timeout's end
	if rt.Timeout > 0 {
		dl = st.realNow().Add(rt.Timeout)
		// The timeout bounds the client's side too: a body sent slowly is
		// cut at dl, not at body_read_timeout, and so is a response read
		// slowly, whatever write_timeout says.
		w.limitTo(dl)
		if hasBody {
			_ = http.NewResponseController(w).SetReadDeadline(dl)
		}
	}
	if hasBody {
		st.ib = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), d: e.bodyReadTimeout, limit: dl, st: st}
		r.Body = st.ib
	}
	switch {
	case rt.Timeout > 0:
		ctx, cancel := context.WithDeadline(r.Context(), dl)
		st.cancel, st.rc.Cancel = cancel, cancel
		r = r.WithContext(ctx)
	case rt.Cancelable:
		ctx, cancel := context.WithCancel(r.Context())
		st.cancel, st.rc.Cancel = cancel, cancel
		r = r.WithContext(ctx)
	}
	return r, true
}

// paramsRoute finds the route for a path with parameters (";" or "%3B"
// in a segment) on the path without them, which is the path a servlet
// container (Tomcat, Jetty, Spring) serves: "/admin;x/secret" is
// "/admin/secret" to it, whichever route "/admin;x" would match here.
// Only a route that allows path parameters takes the request, with its
// path unchanged; anything else is answered 400, so parameters can never
// carry a request past the route, and the filters, its path names.
func (e *Engine) paramsRoute(st *state, w *respWriter, r *http.Request) (*runtime.Route, bool) {
	bare, err := route.StripParams(st.rc.Path)
	idx := -1
	if err == nil {
		idx = st.snap.Table.Match(st.rc.Host, bare, r.Method, r.Header)
	}
	if idx < 0 || !st.snap.Routes[idx].AllowPathParams {
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "path parameters (;) are not allowed here", err))
		return nil, false
	}
	return st.snap.Routes[idx], true
}

// requestFilters runs the route's request filters in order. Default (no
// filters): continue.
func (e *Engine) requestFilters(st *state, w *respWriter, r *http.Request) bool {
	for _, f := range st.route.Filters {
		out, err := f.FilterRequest(&st.rc, w, r)
		if err != nil {
			e.failToProxy(st, w, r, phase.AsError(err))
			return false
		}
		if out == phase.Responded {
			return false
		}
	}
	return true
}

// idleBody bounds each wait for request body data (slow POST): the read
// deadline is renewed before every read and cleared at the end of the body,
// so it never outlives the body (net/http's own read after the body, which
// watches for the client leaving, must not hit it). It is never renewed
// past limit, the route timeout's end, if any: the body is then cut as the
// route timing out (504), not as a stall (408).
type idleBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	d     time.Duration // 0: no limit per wait
	limit time.Time     // zero: none

	reading  atomic.Int32 // reads of the client's body waiting now (waitingOnClient)
	lastRead atomic.Int64 // when the last read of it returned, in Unix nanoseconds

	mu sync.Mutex // guards the following fields; held while a read's deadline is set
	// st is the request's state, nil once the request is over (detach):
	// the upstream's body writer (the Transport's write loop) may read the
	// end after that, when the state already serves another request.
	st      *state
	aborted bool // abort was called: reads fail
	ended   bool // a read returned the end of the body
}

// waitingOnClient reports whether the attempt waits on the client, not on
// the upstream: a read of the client's body is waiting now, or one
// returned within the last d (what came is being passed on). A body
// writer the upstream has stopped taking has read nothing for longer.
func (b *idleBody) waitingOnClient(d time.Duration) bool {
	return b.reading.Load() > 0 || time.Now().UnixNano()-b.lastRead.Load() < int64(d)
}

// detach cuts the body from its request's state, which is about to be
// reset and reused (Engine.finish).
func (b *idleBody) detach() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st = nil
}

// errReadAborted is what a read of an aborted body returns.
var errReadAborted = errors.New("proxy: request body read aborted: the upstream answered first")

// It also marks the body's read errors as the client's: a malformed
// chunked body is answered 400, not blamed on the upstream.
func (b *idleBody) Read(p []byte) (int, error) {
	var dl time.Time
	if b.d > 0 {
		dl = time.Now().Add(b.d)
	}
	routeCut := !b.limit.IsZero() && (dl.IsZero() || !b.limit.After(dl))
	if routeCut {
		dl = b.limit
	}
	b.mu.Lock()
	if b.aborted {
		b.mu.Unlock()
		return 0, errReadAborted
	}
	if !dl.IsZero() {
		_ = b.rc.SetReadDeadline(dl) // under mu: abort's deadline comes after it, never before
	}
	b.mu.Unlock()
	b.reading.Add(1)
	n, err := b.ReadCloser.Read(p)
	b.lastRead.Store(time.Now().UnixNano())
	b.reading.Add(-1)
	if err != nil {
		b.mu.Lock()
		aborted := b.aborted
		if st := b.st; st != nil && !b.ended && err == io.EOF {
			if pt := st.perTry.Load(); pt != nil { // under mu: st is this request's (detach)
				pt.bodyEnded()
			}
		}
		b.ended = b.ended || err == io.EOF
		b.mu.Unlock()
		if aborted {
			return n, errReadAborted // not the client's fault
		}
		if !dl.IsZero() {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		var mbe *http.MaxBytesError
		switch {
		case err == io.EOF || errors.As(err, &mbe):
		case errors.Is(err, os.ErrDeadlineExceeded) && routeCut:
			err = errRouteTimeout{err}
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = errBodyTimeout{err}
		default:
			cb := errClientBody{err}
			b.mu.Lock()
			if st := b.st; st != nil {
				st.bodyErr.Store(&cb)
			}
			b.mu.Unlock()
			err = cb
		}
	}
	return n, err
}

// abort ends a read waiting for the client, and fails every later one:
// the pool's client asks for it when an upstream's response has ended
// before the body was all sent (an early 413 or 401), so that its body
// writer ends with the response rather than with the client's next bytes.
// It does it with a read deadline in the past, as net/http aborts its own
// pending reads, and only while the body has not ended: then the response
// said "Connection: close" (respWriter.WriteHeader), and nothing else of
// the connection will be read. Once the body has ended, net/http's
// background read watches the connection and must not meet the deadline
// (it would take it for the client leaving): nothing is done.
func (b *idleBody) abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.aborted || b.ended || b.st != nil && b.st.body != nil && b.st.body.done() {
		return
	}
	b.aborted = true
	_ = b.rc.SetReadDeadline(aLongTimeAgo)
}

// errClientBody marks a request body that could not be read: malformed
// chunked framing (net/http's or h1guard's verdict), or a client that
// stopped sending half way.
type errClientBody struct{ err error }

func (e errClientBody) Error() string { return "request body: " + e.err.Error() }
func (e errClientBody) Unwrap() error { return e.err }

// errBodyTimeout marks a request body that stalled past body_read_timeout,
// so it is told apart from an upstream timeout and from a client that left.
type errBodyTimeout struct{ err error }

func (e errBodyTimeout) Error() string { return "request body stalled: " + e.err.Error() }
func (e errBodyTimeout) Unwrap() error { return e.err }

// errRouteTimeout marks a request body still arriving when the route
// timeout ended. net/http cancels the request's context on the read
// error, so without it the request would pass for one the client left.
type errRouteTimeout struct{ err error }

func (e errRouteTimeout) Error() string {
	return "request body cut at the route timeout: " + e.err.Error()
}
func (e errRouteTimeout) Unwrap() error { return e.err }

// plainHTTP answers a plain-HTTP request when HTTPS is on: an ACME HTTP-01
// challenge, or a 308 to HTTPS for a host Gatehouse has a certificate for
// (except plain_hosts), or 403 for a host that requires a client
// certificate, which plain HTTP cannot carry (redirect_http off, or no
// certificate names the host). It reports whether it answered.
func (e *Engine) plainHTTP(st *state, t *tlsx.Front, w *respWriter, r *http.Request) bool {
	if t.Issuer != nil && t.Issuer.HandleHTTPChallenge(w, r) {
		st.rc.Route = "acme-challenge"
		return true
	}
	uri := st.rc.Path
	if r.URL.RawQuery != "" {
		uri += "?" + r.URL.RawQuery
	}
	to, ok := t.RedirectTarget(st.rc.Host, uri)
	if !ok {
		if ca := t.ClientAuth[st.rc.Host]; ca != nil && ca.Require {
			e.failToProxy(st, w, r, &phase.Error{Kind: phase.KindForbidden, Detail: "a client certificate is required: connect over HTTPS"})
			return true
		}
		return false
	}
	st.rc.Route = "https-redirect"
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusPermanentRedirect)
	return true
}
