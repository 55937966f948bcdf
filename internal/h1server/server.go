// Package h1server serves HTTP/1.1 on a plain listener in front of an
// http.Server, taking over only the requests it can serve exactly as
// net/http would, for less CPU per request.
//
// Every connection starts here. A request head is read whole and taken
// when it is provably simple (parseHead: a token method but CONNECT,
// HTTP/1.1, origin-form target, one valid Host, no upgrade, no Expect, a
// body framed by one valid Content-Length or by "Transfer-Encoding:
// chunked" alone). The handler then runs with a Request and a
// ResponseWriter that are what net/http would have given it, its Body
// included (body.go: net/http's body, read the same way, with the same
// errors), and writes what net/http would have written; what it leaves
// of the body is read and discarded as net/http does (up to 256 KiB;
// more, and the connection closes after the response). The first request
// that is not simple, anything malformed, HTTP/1.0, HTTP/2 with prior
// knowledge (h2c), 100-continue or an upgrade, hands the connection to the
// http.Server, with the bytes already read, for the rest of its life: it
// gives the answers it always gives, and enforces its own limits.
//
// Why: on Gatehouse's hot path net/http's HTTP/1.1 server was the largest
// part left outside system calls (docs/performance.md, "Where the time
// goes"). The savings are one read of the head into one string, no
// per-request goroutine to watch for the client leaving (a sweep starts a
// watcher only for handlers that run long), no deadline update per
// request on a busy connection, a request context that costs nothing
// until waited on (reqContext, which also closes a proxy's upstream
// connection on cancellation without context.AfterFunc), and no copy of
// the response header map when the head cannot depend on the body, or
// when a proxy hands over its upstream response's (AdoptHeader). An idle
// keep-alive connection costs little memory: between requests it holds
// no write buffer, and once idle for 10 ms when a sweep comes (every
// 100 ms) no read buffer and no goroutine either: it is parked with the
// server's poller (netx.Poller, one epoll instance and one goroutine),
// which starts a goroutine for it once it is readable (parking, in
// conn.go).
//
// Invariants:
//   - Nothing is taken that net/http would refuse or read differently
//     (FuzzParseHeadMatchesNetHTTP compares against http.ReadRequest and
//     the server's own checks); when in doubt, the request is handed over.
//     The same bytes get the same answers from both servers
//     (FuzzServerMatchesNetHTTP, TestResponsesMatchNetHTTP).
//   - A handed-over connection is never touched here again.
//   - A connection goes on after a request only where the end of its
//     body is known (read to its end, or discarded): never where the next
//     request would be read from inside it.
//   - Timeouts are the http.Server's: ReadHeaderTimeout bounds a head
//     (not the body: as net/http without ReadTimeout, there is no read
//     deadline while the handler runs but the handler's own),
//     IdleTimeout the wait for the next one (on a busy connection, an
//     idle deadline set for an earlier wait is kept while it is within an
//     eighth of IdleTimeout, at most 1s, of a fresh one; a parked
//     connection is closed by the sweep, up to a sweep interval after
//     its deadline).
//   - A parked connection is owned by no goroutine: whoever moves it out
//     of parked (the poller, or a closer) owns it; Shutdown and Close
//     close the parked ones and stop the poller's goroutine.
//
// Where a handler could tell the difference: a taken request cannot be
// hijacked (it never asks for an upgrade); a client that leaves is
// noticed from the second sweep of a long handler on (100-200 ms; net/http
// notices at once), once the request body is read (as net/http), and not
// while a pipelined request is buffered behind the running one (then only
// its writes fail); a read error of the connection cancels the request
// (as net/http's), but not the connection's later requests (net/http
// cancels its connection's context); http.MaxBytesReader given this
// server's ResponseWriter itself cannot tell it the limit was hit (the
// interface is net/http's own), so the connection is not closed for it
// (net/http adds "Connection: close"; the engine wraps its
// ResponseWriter, so neither server sees its limit, and it asks for the
// close itself); a handler that enabled full duplex and met a read error
// in the body gets its connection closed after the response, where
// net/http would read on after the error; and a write deadline a
// handler sets stays in force for the connection's next request (the
// engine relies on it: proxy.ConnContextKeepingDeadlines); the request's
// context is not a *context.cancelCtx, though it behaves as one for
// Done, Err, Value, Cause and the contexts derived from it.
//
// Reused header maps (ReuseRequestHeaders, off by default; Gatehouse's
// engine turns it on): the handler contract is then stricter than
// net/http's. Once ServeHTTP has returned, the handler, and anything it
// started or handed the request to, must not use the map it got as
// Request.Header: the server clears it and fills it with the connection's
// next request. Keeping the Request, its strings and its value slices is
// still fine (they are the request's own; only the map is reused), and so
// is replacing Request.Header during the request (the server reuses the
// map it made, never one the handler put there). The map is reused only
// after a handler that returned normally, on a connection that serves
// another request here: never after a panic, on a connection handed to
// the http.Server, or on a parked one (an idle connection gives it up
// with its read buffer). TestReusedHeaderMapCarriesNothingOver (here) and
// TestH1ReusedHeaderMapsReachNoOtherUpstream (internal/proxy) hold it to
// that.
//
// Response header maps are reused whatever the option: net/http's
// contract already forbids using a ResponseWriter, its header map
// included, once ServeHTTP has returned. A map goes back to the server's
// pool after a handler that returned normally, once its response is
// written (TestPooledResponseHeaderCarriesNothingOver).
package h1server

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/internal/netx"
)

// Server serves HTTP/1.1 on one listener, handing connections it does
// not take to the http.Server it was made from.
type Server struct {
	fb *http.Server
	// fbLater serves the connections handed over after a request was
	// served here: net/http would read an h2c preface there as an HTTP/1
	// request, so it speaks HTTP/1 only. It is fb when fb does not speak
	// h2c anyway.
	fbLater     *http.Server
	handler     http.Handler
	connContext func(context.Context, net.Conn) context.Context
	rht, idle   time.Duration
	fast        bool // requests may be taken here; otherwise everything is handed over
	reuseHeader bool // ReuseRequestHeaders(true): a connection's requests share one header map
	// h2c serves connections that open with HTTP/2's preface (ServeH2C);
	// nil hands them to fb.
	h2c func(ctx context.Context, c net.Conn, prefaceBy time.Time)

	inShutdown  atomic.Bool
	noKeepAlive atomic.Bool  // SetKeepAlivesEnabled(false)
	sweeps      atomic.Int64 // sweeps done (tests wait on it)
	dateNow     atomic.Pointer[dateStamp]

	mu           sync.Mutex // guards the following fields
	ln           net.Listener
	baseCtx      context.Context
	handoff      *handoffListener // to fb
	handoffLater *handoffListener // to fbLater
	conns        map[*conn]struct{}
	done         chan struct{} // closed by Shutdown or Close: stops the sweep
	serving      bool

	// poller waits for the parked connections (conn.parkIdle); its
	// goroutine starts with the first and stops with Shutdown or Close.
	poller netx.Poller
	// beforePark, if set (tests), runs on a connection's goroutine as it
	// parks, its read buffer given back.
	beforePark func(*conn)

	readers, writers, pres sync.Pool
	// headers holds response header maps (http.Header) between responses
	// (response.Header, releaseHeader).
	headers sync.Pool
}

// maxPooledFields: a response header map that held more fields than this
// is not kept for another response (clear keeps a map's size).
const maxPooledFields = 32

// getHeader returns an empty response header map, a pooled one if any.
func (s *Server) getHeader() http.Header {
	if h, ok := s.headers.Get().(http.Header); ok {
		return h
	}
	return make(http.Header)
}

// sweepInterval is how often handlers are checked for running long: one
// that has run across a whole interval gets a watcher for its client
// leaving.
const sweepInterval = 100 * time.Millisecond

// New returns a Server in front of srv. srv's Handler, ConnContext,
// BaseContext, ReadHeaderTimeout, IdleTimeout, ErrorLog and Protocols
// apply to both. connContext, if not nil, replaces srv.ConnContext for
// the connections served here (proxy.ConnContextKeepingDeadlines: this
// server, unlike net/http, leaves a connection's write deadline in place
// between requests).
//
// A head is taken only when it fits this server's 4 KiB buffer, which is
// within what net/http accepts whatever MaxHeaderBytes is. srv settings
// this server does not implement (ReadTimeout, WriteTimeout, ConnState,
// TLSConfig) make it hand every connection over; srv's own
// SetKeepAlivesEnabled is not seen (call this Server's). Taken requests
// cannot be hijacked: they never ask for an upgrade.
func New(srv *http.Server, connContext func(context.Context, net.Conn) context.Context) *Server {
	if connContext == nil {
		connContext = srv.ConnContext
	}
	s := &Server{
		fb:          srv,
		fbLater:     srv,
		handler:     srv.Handler,
		connContext: connContext,
		rht:         srv.ReadHeaderTimeout,
		idle:        srv.IdleTimeout,
		fast: (srv.Protocols == nil || srv.Protocols.HTTP1()) &&
			srv.ReadTimeout == 0 && srv.WriteTimeout == 0 && srv.ConnState == nil && srv.TLSConfig == nil,
		conns: map[*conn]struct{}{},
		done:  make(chan struct{}),
	}
	if s.handler == nil {
		s.handler = http.DefaultServeMux
	}
	if p := srv.Protocols; s.fast && p != nil && p.UnencryptedHTTP2() {
		var h1 http.Protocols
		h1.SetHTTP1(true)
		s.fbLater = &http.Server{
			Handler: srv.Handler, ConnContext: srv.ConnContext, BaseContext: srv.BaseContext,
			ReadHeaderTimeout: srv.ReadHeaderTimeout, IdleTimeout: srv.IdleTimeout,
			MaxHeaderBytes: srv.MaxHeaderBytes, ErrorLog: srv.ErrorLog, Protocols: &h1,
			DisableGeneralOptionsHandler: srv.DisableGeneralOptionsHandler,
		}
	}
	return s
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// http.ErrServerClosed then, like http.Server.Serve. It may be called
// once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("h1server: Serve called twice")
	}
	s.serving = true
	if s.inShutdown.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.baseCtx = context.Background()
	if s.fb.BaseContext != nil {
		if s.baseCtx = s.fb.BaseContext(ln); s.baseCtx == nil {
			panic("h1server: BaseContext returned a nil context")
		}
	}
	s.baseCtx = context.WithValue(s.baseCtx, http.ServerContextKey, s.fb)
	s.handoff = newHandoffListener(ln.Addr())
	s.handoffLater = s.handoff
	if s.fbLater != s.fb {
		s.handoffLater = newHandoffListener(ln.Addr())
		go func() { _ = s.fbLater.Serve(s.handoffLater) }() // ends with Shutdown or Close
	}
	s.mu.Unlock()

	go func() { _ = s.fb.Serve(s.handoff) }() // ends with Shutdown or Close
	go s.sweep()

	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return http.ErrServerClosed
			}
			// As http.Server.Serve: back off on EMFILE and the like.
			//lint:ignore SA1019 the only signal for EMFILE and the like, as in net/http's Serve
			if ne, ok := err.(net.Error); ok && ne.Temporary() { //nolint:staticcheck // as above
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.logf("http: Accept error: %v; retrying in %v", err, tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		if !s.fast {
			s.handoff.push(nc)
			continue
		}
		c := s.newConn(nc)
		if !s.track(c) {
			nc.Close()
			continue
		}
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, and waits for the
// others to finish their request, here and in the http.Server, or for
// ctx to end (then it returns ctx's error and leaves the rest to Close).
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	fbDone := make(chan error, 2)
	go func() { fbDone <- s.fb.Shutdown(ctx) }()
	if s.fbLater != s.fb {
		go func() { fbDone <- s.fbLater.Shutdown(ctx) }()
	} else {
		fbDone <- nil
	}

	// Polled as net/http does: from 1 ms, doubling, at most 500 ms.
	wait := time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	drained := s.closeIdle()
	// closeIdle closed the parked connections, and none parks from now on
	// (doKeepAlives): the poller has nothing left to wait for.
	s.poller.Close()
	for !drained {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			wait = min(2*wait, 500*time.Millisecond)
			timer.Reset(wait)
		}
		drained = s.closeIdle()
	}
	return errors.Join(<-fbDone, <-fbDone)
}

// Close closes the listener and every connection at once, here and in
// the http.Server.
func (s *Server) Close() error {
	s.stop()
	err := s.fb.Close()
	if s.fbLater != s.fb {
		err = errors.Join(err, s.fbLater.Close())
	}
	s.mu.Lock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		if c.park.CompareAndSwap(parked, parkNone) {
			s.closeParked(c) // no goroutine would untrack it
			continue
		}
		c.nc.Close()
	}
	s.mu.Unlock()
	s.poller.Close() // after the closes: nothing parks once closed (parkIdle)
	return err
}

func (s *Server) stop() {
	s.inShutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
	}
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

func (s *Server) shuttingDown() bool { return s.inShutdown.Load() }

// SetKeepAlivesEnabled is http.Server.SetKeepAlivesEnabled, here and in
// the http.Server: with false, each response from now on says
// "Connection: close" and its connection closes after it, and idle
// connections are closed now. Unlike Shutdown it stops nothing else: a
// request read afterwards (on a connection accepted before the listener
// closed) is still served. A draining process calls it once it has
// stopped accepting.
func (s *Server) SetKeepAlivesEnabled(v bool) {
	s.noKeepAlive.Store(!v)
	s.fb.SetKeepAlivesEnabled(v)
	if s.fbLater != s.fb {
		s.fbLater.SetKeepAlivesEnabled(v)
	}
	if !v {
		s.closeIdle()
	}
}

// ReuseRequestHeaders(true) lets each connection reuse its request
// header map: once a handler has returned and its response is finished,
// the map it got as Request.Header is cleared and filled with the
// connection's next request. That saves two allocations per request on a
// keep-alive connection, and asks more of the handler than net/http does
// (see "Reused header maps" in the package doc): it must not use that map
// after it returns. It must be called before Serve.
func (s *Server) ReuseRequestHeaders(v bool) { s.reuseHeader = v }

// ServeH2C makes the server give a connection that opens with HTTP/2's
// client preface (cleartext HTTP/2 with prior knowledge, RFC 9113 §3.3)
// to serve instead of the http.Server, which would serve it with its own
// HTTP/2 server when its Protocols allow unencrypted HTTP/2. serve runs
// on the connection's goroutine and is given the connection's context
// (ConnContext applied), the connection, which replays what was already
// read, and when the preface's read header timeout, started at accept,
// ends (zero: none); it owns the connection until it returns. The connection
// counts as active meanwhile: Shutdown waits for serve to return (the
// HTTP/2 server's own shutdown, registered with the http.Server's
// RegisterOnShutdown, must end it), and Close closes it. Only a
// connection's first bytes are looked at: after an HTTP/1 request the
// preface is an HTTP/1 request like any other (see fbLater). It must be
// called before Serve.
func (s *Server) ServeH2C(serve func(ctx context.Context, c net.Conn, prefaceBy time.Time)) {
	s.h2c = serve
}

// doKeepAlives is net/http's: keep-alives are on and no shutdown began.
func (s *Server) doKeepAlives() bool { return !s.noKeepAlive.Load() && !s.inShutdown.Load() }

// closeIdle closes the connections waiting for a request (and, as
// net/http, those that sent nothing for 5 s), and reports whether none
// are left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := time.Now().Add(-5 * time.Second).UnixNano()
	for c := range s.conns {
		st := c.state.Load()
		if st == stateIdle || st == stateNew && c.waitSince.Load() < old {
			if !c.state.CompareAndSwap(st, stateClosed) {
				continue
			}
			if c.park.CompareAndSwap(parked, parkNone) {
				s.closeParked(c)
			} else {
				c.nc.Close()
			}
		}
	}
	return len(s.conns) == 0
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// sweep starts a watcher for the client leaving under each handler that
// has run across a whole sweepInterval, parks each connection that has
// waited for its next request across one (conn.maybePark), and closes the
// parked connections whose idle deadline has passed (within a sweep
// interval of it), until Shutdown or Close.
func (s *Server) sweep() {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		s.mu.Lock()
		for c := range s.conns {
			if c.park.Load() == parked {
				// The idle timeout, which no read enforces while parked:
				// closed silently, as net/http's.
				if c.idleUntil != 0 && now >= c.idleUntil && c.park.CompareAndSwap(parked, parkNone) {
					c.state.Store(stateClosed)
					s.closeParked(c)
				}
				continue
			}
			c.maybeWatch()
			c.maybePark(now)
		}
		s.mu.Unlock()
		s.sweeps.Add(1)
	}
}

func (s *Server) logf(format string, args ...any) {
	if l := s.fb.ErrorLog; l != nil {
		l.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// handoffListener is the listener the http.Server serves: it accepts the
// connections this server hands over.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// push hands c over, or closes it when the http.Server has stopped.
func (l *handoffListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

// prefixConn is a handed-over connection: the bytes already read from
// it come first.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn returns the connection itself (h1guard.Of looks through it).
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

// CloseWrite lets net/http half-close before its final close, as it does
// on the connection itself.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom lets net/http's response bodies reach the connection's own
// ReadFrom (sendfile for static files) after a hand-over, as before it.
func (c *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides everything of a writer but Write (io.Copy would
// otherwise find ReadFrom again).
type writerOnly struct{ io.Writer }
