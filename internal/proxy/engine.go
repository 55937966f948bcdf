// Package proxy is Gatehouse's request engine: an http.Handler that runs
// every request through fixed phases (ARCHITECTURE.md §8), one file each:
//
//	phase_early.go     request id, peer and client address, host and path
//	                   normalization, headers clients may never send
//	phase_route.go     route match, body limit, route timeout
//	phase_filters.go   the route's request filters (auth, limits, ...)
//	phase_upstream.go  upstream peer, upstream request, round trip,
//	                   response; local actions live in local.go
//	fail.go            failToProxy: the one place an error becomes a status
//	logging.go         one access line per request, exactly once
//
// The engine reads one runtime.Snapshot per request, pinned for the whole
// request, so a reload never changes a request half way.
//
// The engine keeps nothing of a request's header map past ServeHTTP: the
// outbound request shares its value slices, never the map (directRequest;
// ReverseProxy clones it), and no phase starts anything that outlives the
// request. h1server and h2server rely on that to reuse the map for
// another request (h1server.Server.ReuseRequestHeaders and
// h2server.Config.ReuseRequestHeaders, which internal/app turns on);
// request filters and local handlers are held to the same
// (phase.RequestFilter).
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"gatehouse/internal/lb"
	"gatehouse/internal/observe/metrics"
	"gatehouse/internal/observe/tracing"
	"gatehouse/internal/phase"
	"gatehouse/internal/runtime"
)

// Options configure an Engine.
type Options struct {
	Holder *runtime.Holder
	// Access receives one line per request; nil turns access logs off.
	Access *slog.Logger
	// Events receives errors worth an operator's attention.
	Events *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics, if set, receives the in-flight gauge; per-route and
	// per-target observers come with the snapshot.
	Metrics *metrics.Metrics
	// Tracer, if set, traces requests; nil means tracing is off.
	Tracer *tracing.Tracer
	// BodyReadTimeout bounds each wait for request body data (slow POST);
	// WriteTimeout bounds each write to the client (slow reader). 0: none.
	BodyReadTimeout time.Duration
	WriteTimeout    time.Duration
}

// Engine is the request engine. It is safe for concurrent use.
type Engine struct {
	holder *runtime.Holder
	access slog.Handler // nil: access log off
	events *slog.Logger
	now    func() time.Time
	// realClock: now is time.Now, so elapsed times are read from the
	// monotonic clock alone (since, nowAfter).
	realClock bool
	rp        *httputil.ReverseProxy
	// noDirect sends every attempt through rp (tests compare the paths).
	noDirect bool
	// inFlight is nil when metrics are off.
	inFlight prometheus.Gauge
	tracer   *tracing.Tracer // nil: off

	bodyReadTimeout time.Duration
	writeTimeout    time.Duration

	ridPrefix string
	states    sync.Pool
	outs      sync.Pool // *outbound, for direct attempts

	// draining is cancelled when shutdown begins (Drain).
	draining context.Context
	drain    context.CancelFunc
	tunnels  tunnelSet // open WebSockets, for Drain
}

// New returns an engine reading snapshots from o.Holder.
func New(o Options) *Engine {
	e := &Engine{holder: o.Holder, events: o.Events, now: o.Now, tracer: o.Tracer,
		bodyReadTimeout: o.BodyReadTimeout, writeTimeout: o.WriteTimeout}
	if o.Access != nil {
		e.access = o.Access.Handler()
	}
	if o.Metrics != nil {
		e.inFlight = o.Metrics.InFlight()
	}
	if e.events == nil {
		e.events = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now, e.realClock = time.Now, true
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	e.ridPrefix = hex.EncodeToString(b[:])
	e.states.New = func() any { return new(state) }
	e.draining, e.drain = context.WithCancel(context.Background())
	e.rp = &httputil.ReverseProxy{
		Rewrite:        e.upstreamRequest,
		Transport:      poolTransport{},
		ModifyResponse: e.upstreamResponse,
		ErrorHandler:   e.upstreamError,
		BufferPool:     bufferPool{},
		// Streams (chunked, SSE) are flushed as they arrive by
		// ReverseProxy itself; fixed-length bodies are not flushed early.
		FlushInterval: 0,
		ErrorLog:      slog.NewLogLogger(e.events.Handler(), slog.LevelDebug),
	}
	return e
}

// state is the engine's per-request state around the filters' RequestCtx.
// States are pooled; reset clears every field.
type state struct {
	rc      phase.RequestCtx
	snap    *runtime.Snapshot
	route   *runtime.Route
	w       respWriter
	ridVals []string
	// realStart is the real clock's reading at the request's start
	// (rc.Start, unless the engine's clock is injected): the I/O
	// deadlines are counted from it (realNow).
	realStart time.Time

	// upstream phase
	pool     *lb.Pool
	target   *lb.Target
	hostPol  runtime.HostPolicy
	upPath   string // escaped path sent upstream
	fwPrefix string // X-Forwarded-Prefix when a prefix was removed
	rtStart  time.Time
	cancel   context.CancelFunc // the route timeout's, if any
	body     *watchedBody       // the HTTP/1.x request body, if any
	ws       *wsTunnel          // the WebSocket, once the upstream switched

	// retries
	retry      runtime.RetryPolicy
	tried      lb.Tried
	attemptErr *phase.Error                  // why the current attempt failed, before any byte was sent
	clientCtx  context.Context               // the request's own context, without the attempt's
	bodyErr    atomic.Pointer[errClientBody] // the request body could not be read
	perTry     atomic.Pointer[perTry]        // the current attempt's timer, if the route has one
	ib         *idleBody                     // the request body's wrapper, if any (detached at the end)
	peerStr    string                        // rc.Peer formatted, once
	// h2cs is the connection's state for a request over HTTP/2, shared
	// with the connection's other requests (w.cs is HTTP/1.x's own).
	h2cs *connState
	// fw, while a direct attempt builds its request, is where
	// setForwarding puts its values (outbound.fw); nil otherwise.
	fw *[7]string

	// informational responses of the current attempt (respWriter.informational)
	n1xx int // seen (passed on, but to an HTTP/1.0 client)
	// bad1xx: why the upstream's 1xx responses fail the attempt (more
	// than lb.Max1xx, or one with too many fields); nil while they do not.
	bad1xx      error
	stopAttempt context.CancelCauseFunc // cancels a ReverseProxy attempt (stop1xx)
	// lent: the current direct attempt's response was read into the
	// client writer's own header map (ResponseHeader); it is emptied
	// again if the attempt fails (takeBack).
	lent bool

	// tracing, when on
	span    trace.Span      // server span
	spanCtx context.Context // carries span
	cspan   trace.Span      // client span of the current attempt
	cctx    context.Context // carries cspan; injected upstream
}

type stateKey struct{}

func stateOf(ctx context.Context) *state {
	st, _ := ctx.Value(stateKey{}).(*state)
	return st
}

// since is the time elapsed from t, a reading of the engine's clock.
// With the real clock it is time.Since, one read of the monotonic clock
// where time.Now makes two (wall and monotonic): a request's dozen clock
// reads were 2.8 % of the HTTP/1.1 profile.
func (e *Engine) since(t time.Time) time.Duration {
	if e.realClock {
		return time.Since(t)
	}
	return e.now().Sub(t)
}

// nowAfter is the engine's clock now, read as t plus since(t) (one
// monotonic read with the real clock; t must be a reading of it).
func (e *Engine) nowAfter(t time.Time) time.Time {
	if e.realClock {
		return t.Add(time.Since(t))
	}
	return e.now()
}

// realNow is the real time now, for I/O deadlines: the request's start
// plus the monotonic time since (one clock read; the wall reading it
// carries may differ from time.Now's by an adjustment of the wall clock
// during the request, which deadlines, on the monotonic clock, ignore).
func (st *state) realNow() time.Time {
	return st.realStart.Add(time.Since(st.realStart))
}

// ServeHTTP runs the phases. Every exit path goes through logging once.
func (e *Engine) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	st := e.states.Get().(*state)
	*st = state{}
	st.rc.Start = e.now()
	st.realStart = st.rc.Start
	if !e.realClock {
		st.realStart = time.Now()
	}
	st.snap = e.holder.Load()
	st.route = st.snap.Fallback // until a route matches: security headers on early errors
	st.w.reset(rw, st)
	st.w.writeTimeout = e.writeTimeout
	st.w.http10 = r.ProtoMajor == 1 && r.ProtoMinor == 0
	if r.ProtoMajor == 1 {
		cs, _ := r.Context().Value(connKey{}).(*connState)
		if cs != nil && !cs.kept {
			cs.renewAt = time.Time{} // net/http cleared the deadline after the last response
		}
		if cs != nil && cs.routeDeadline {
			// The last request's route timeout is still the connection's
			// write deadline (h1server keeps it): replace it.
			cs.routeDeadline, cs.renewAt = false, time.Time{}
			if e.writeTimeout <= 0 {
				_ = cs.conn.SetWriteDeadline(time.Time{})
			}
		}
		st.w.cs = cs
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			st.body = &watchedBody{ReadCloser: r.Body, left: r.ContentLength}
			r.Body = st.body
		}
	} else {
		st.h2cs, _ = r.Context().Value(connKey{}).(*connState)
	}
	if e.inFlight != nil {
		e.inFlight.Inc()
	}
	w := &st.w
	defer e.finish(st, r)

	if !e.early(st, w, r) {
		return
	}
	r, ok := e.routeRequest(st, w, r)
	if !ok || !e.requestFilters(st, w, r) {
		return
	}
	e.act(st, w, r)
}

// finish recovers panics, writes the access line and returns the state to
// its pool. http.ErrAbortHandler (httputil.ReverseProxy's way to abort a
// response whose body failed mid-way) is logged, then re-panicked so
// net/http drops the connection as the client must see.
func (e *Engine) finish(st *state, r *http.Request) {
	p := recover()
	if st.cancel != nil {
		st.cancel()
	}
	if st.body != nil && !st.body.done() && !st.w.hijacked {
		// The response said Connection: close (respWriter.WriteHeader);
		// net/http would still read up to 256 KiB of the body when it
		// closes it, without a deadline. Nothing more is read.
		_ = http.NewResponseController(st.w.ResponseWriter).SetReadDeadline(aLongTimeAgo)
	}
	if p != nil {
		if p == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as the panic value, as net/http does
			e.noteAbort(st, r)
		} else {
			e.events.Error("panic serving request", "request_id", st.rc.RequestID,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			e.failToProxy(st, &st.w, r, phase.NewError(phase.KindInternal, "", fmt.Errorf("panic: %v", p)))
		}
	}
	if st.ws != nil {
		st.ws.end() // ReverseProxy has closed both connections
	}
	e.logging(st, r)
	st.rc.End()
	if e.inFlight != nil {
		e.inFlight.Dec()
	}
	abort := p == http.ErrAbortHandler //nolint:errorlint // see above
	// A request taken for one whose client left gets no answer at all:
	// returning without a response would make the server write its own
	// empty 200, which a client still there (a misjudged cancellation)
	// would take for success.
	abort = abort || st.rc.Err != nil && st.rc.Err.Kind == phase.KindClientGone && !st.w.wroteHeader && !st.w.hijacked
	if st.ib != nil {
		st.ib.detach() // its reads may outlive the request
	}
	*st = state{}
	e.states.Put(st)
	if abort {
		panic(http.ErrAbortHandler)
	}
}

// noteAbort records why a response was cut after its headers were sent.
func (e *Engine) noteAbort(st *state, r *http.Request) {
	if st.rc.Err != nil {
		return
	}
	switch {
	case st.w.writeErr != nil || errors.Is(r.Context().Err(), context.Canceled):
		st.rc.Err = phase.NewError(phase.KindClientGone, "", st.w.writeErr)
	case errors.Is(r.Context().Err(), context.DeadlineExceeded):
		st.rc.Err = phase.NewError(phase.KindRouteTimeout, "", context.DeadlineExceeded)
	default:
		st.rc.Err = phase.NewError(phase.KindUpstreamProto, "", errors.New("upstream response body aborted"))
	}
}

// bufferPool gives httputil.ReverseProxy reusable 32 KiB copy buffers
// instead of one allocation per response.
type bufferPool struct{}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(copyBufs.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBufs.Put(&b) }

// peer returns the peer address as text, formatting it once per request.
func (st *state) peer() string {
	if st.peerStr == "" {
		if cs := st.w.cs; cs != nil {
			if cs.peerStr == "" || cs.peer != st.rc.Peer {
				cs.peer, cs.peerStr = st.rc.Peer, st.rc.Peer.String()
			}
			st.peerStr = cs.peerStr
		} else if cs := st.h2cs; cs != nil {
			st.peerStr = cs.sharedPeer(st.rc.Peer)
		} else {
			st.peerStr = st.rc.Peer.String()
		}
	}
	return st.peerStr
}

// clientIP returns the client address as text; usually the peer's.
func (st *state) clientIP() string {
	if st.rc.ClientIP == st.rc.Peer {
		return st.peer()
	}
	return st.rc.ClientIP.String()
}
