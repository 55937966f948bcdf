package h1server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/internal/netx"
)

// Connection states, as net/http's ConnState: new (nothing read yet),
// active (a request is being read or served), idle (waiting for the next
// request), closed (by Shutdown or Close).
const (
	stateNew int32 = iota
	stateActive
	stateIdle
	stateClosed
)

// aLongTimeAgo is a deadline in the past: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// Parking: a connection idle for parkAfter (10 ms) when a sweep comes,
// or across a whole sweep interval, gives back its read buffer and its
// goroutine, whose stack serving a request has grown (8 KiB and more; the
// runtime shrinks one only at a garbage collection, by halves). Its
// goroutine, waiting for the next request in readHead, marks the wait
// parkIdle (waitSince: since when); a sweep that finds it waiting for
// parkAfter already marks it parkAsked, otherwise parkSeen and parkAsked
// at the next sweep, and wakes the read with a deadline in the past. The goroutine then puts its read deadline back,
// returns the buffer to the pool, registers the connection with the
// server's poller (netx.Poller: one epoll instance and one goroutine for
// every parked connection) and ends: a parked connection holds no
// goroutine and no buffer. When it becomes readable, the poller starts
// resume on a new goroutine, which takes a buffer and serves on.
//
// While parked, no goroutine owns the connection: whoever moves it out of
// parked (a compare-and-swap to parkNone) owns it, the poller to resume
// it, or a closer to close and untrack it: the sweep once its idle
// deadline has passed (the read deadline that would have ended a read,
// kept in idleUntil), closeIdle (Shutdown, SetKeepAlivesEnabled(false))
// and Close. A connection the poller cannot wait on (not a socket, or not
// on Linux) or with a byte already held (the guard's, or a watcher's) is
// parkedWaiting instead: resume waits for it on a goroutine of its own on
// a new 2 KiB stack (netx.WaitReadable), owning it as before.
//
// A busy connection is never parked: the cost on the request path is
// two atomic operations per wait.
const (
	parkNone int32 = iota
	parkIdle
	parkSeen
	parkAsked
	parked        // the buffer is given back, the poller waits; no goroutine
	parkedWaiting // the buffer is given back, resume waits on its goroutine
)

// conn is one client connection served here. Its fields belong to its
// own goroutine, except those under mu and state. It is kept while the
// connection is idle, so its fields are ordered and sized to fit a
// 208-byte size class (idle memory per keep-alive connection,
// docs/performance.md).
type conn struct {
	srv        *Server
	nc         net.Conn
	remoteAddr string
	ctx        context.Context
	br         *bufio.Reader
	bw         *bufio.Writer
	werr       error // the first error writing to the client
	// hdr is the header map of the connection's last request, cleared,
	// for its next one (Server.ReuseRequestHeaders); nil when there is
	// none to reuse.
	hdr http.Header
	// rdl is the read deadline in force, when known, in unix
	// nanoseconds: 0 when none or not known (a watcher changed it).
	// rdlStale: a handler changed it, perhaps from another goroutine.
	rdl int64
	// Set when the connection is parked, looked at by closers; under
	// srv.mu.
	token     uint64 // its registration with the poller
	idleUntil int64  // its idle deadline, unix nanoseconds; 0: none
	// waitSince is when the wait for the next request began (unix
	// nanoseconds), for the sweep (maybePark); for a new connection,
	// when it was accepted (closeIdle).
	waitSince atomic.Int64

	state atomic.Int32
	// park is where the connection is in being parked by the sweep
	// (parkNone, parkIdle, parkSeen, parkAsked, parked, parkedWaiting).
	park     atomic.Int32
	rdlStale atomic.Bool
	// plainCtx: ctx is never cancelled, so a request's context is the
	// cheaper reqContext; otherwise context.WithCancel.
	plainCtx  bool
	handedOff bool
	noPark    bool // the connection cannot be waited on without a buffer
	rdlSet    bool // a read deadline may be in force

	// The watch for the client leaving while a handler runs: started by
	// the server's sweep (maybeWatch), stopped by endHandler.
	mu         sync.Mutex         // guards the following fields
	rctx       *reqContext        // the current request's context, when a reqContext
	stdCancel  context.CancelFunc // or its cancel, when context.WithCancel
	watchDone  chan struct{}
	seq        uint64 // requests started
	sweptSeq   uint64 // seq at the last sweep
	watchedSeq uint64 // the request that got a watcher: one per request
	inHandler  bool
	mayWatch   bool // the request body is read, and nothing of a next request is buffered
	watching   bool
	aborting   bool
	clientGone bool
	pending    bool // the watcher read a byte: the next request's first
	pb         [1]byte

	// afterPost (the connection's goroutine's, not under mu: here to fit
	// the size class): the last request was a POST, so leading CR and LF
	// bytes of the next one are skipped (net/http's tolerance for old
	// clients).
	afterPost bool
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc}
	c.waitSince.Store(time.Now().UnixNano())
	if ra := nc.RemoteAddr(); ra != nil {
		c.remoteAddr = ra.String()
	}
	return c
}

// connReader is what the connection's bufio.Reader reads: the byte a
// watcher read, if any, then the connection. A read error cancels the
// request being served, if any, as net/http's connReader cancels its
// connection's context: a request body cut by the client, or by a read
// deadline, ends the request.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	if c.pending { // no watcher runs now: it ended before the handler did
		c.pending = false
		p[0] = c.pb[0]
		return 1, nil
	}
	n, err := c.nc.Read(p)
	if err != nil {
		// Perhaps on a goroutine of the handler's, reading the body.
		c.mu.Lock()
		c.cancel()
		c.mu.Unlock()
	}
	return n, err
}

// connWriter notes the first write error and cancels the request.
type connWriter struct{ c *conn }

func (w connWriter) Write(p []byte) (int, error) {
	n, err := w.c.nc.Write(p)
	if err != nil && w.c.werr == nil {
		w.c.werr = err
		w.c.cancel()
	}
	return n, err
}

const (
	headOK = iota
	headClose
	headHandoff
	headPark // parked by the sweep: the goroutine ends, resume goes on
)

func (c *conn) serve() { c.serveRequests(true) }

// start prepares a new connection for its first request.
func (c *conn) start() {
	s := c.srv
	s.mu.Lock()
	ctx := s.baseCtx
	s.mu.Unlock()
	ctx = &localAddrCtx{Context: ctx, c: c.nc}
	if s.connContext != nil {
		if ctx = s.connContext(ctx, c.nc); ctx == nil {
			panic("h1server: ConnContext returned nil")
		}
	}
	c.ctx = ctx
	c.plainCtx = ctx.Done() == nil
	c.br = s.getReader(connReader{c})

	if s.rht > 0 {
		c.setReadDeadline(time.Now().Add(s.rht))
	}
}

// localAddrCtx is context.WithValue(ctx, http.LocalAddrContextKey,
// c.LocalAddr()) in half the bytes, which an idle connection keeps: the
// address is the connection's own.
type localAddrCtx struct {
	context.Context
	c net.Conn
}

func (c *localAddrCtx) Value(key any) any {
	if key == http.LocalAddrContextKey {
		return c.c.LocalAddr()
	}
	return c.Context.Value(key)
}

func (c *localAddrCtx) String() string { return "h1server.localAddrCtx" }

// resume goes on serving a parked connection, on a new goroutine: it
// waits for the next request without a read buffer unless the poller did
// (wait false), then takes one.
func (c *conn) resume(wait bool) {
	if wait && !c.pending {
		// An error of the wait is met again by the read that follows.
		if err := netx.WaitReadable(c.nc); errors.Is(err, errors.ErrUnsupported) {
			c.noPark = true // it would only take the buffer back at once
		}
	}
	br := c.srv.getReader(connReader{c})
	c.mu.Lock() // c.br is looked at under c.mu while parked (tests)
	c.br = br
	c.park.Store(parkNone)
	c.mu.Unlock()
	c.serveRequests(false)
}

// Readable is the poller's report that the parked connection is
// readable (netx.Waiter): unless a closer took it first, it is resumed.
func (c *conn) Readable() {
	if c.park.CompareAndSwap(parked, parkNone) {
		go c.resume(false)
	}
}

// parkIdle parks the connection, whose read buffer is given back: with
// the poller, or on a goroutine of its own (see parked). It reports false
// when the connection is to close instead: closed as idle, or keep-alives
// are off (Shutdown, SetKeepAlivesEnabled(false)), which closeIdle would
// close the connection for.
func (c *conn) parkIdle() bool {
	s := c.srv
	if s.beforePark != nil {
		s.beforePark(c)
	}
	s.mu.Lock() // closers look at parked connections under s.mu
	if c.state.Load() == stateClosed || !s.doKeepAlives() {
		s.mu.Unlock()
		return false
	}
	c.idleUntil = 0
	if c.rdlSet { // and then c.rdl is the deadline (readHead parks only then)
		c.idleUntil = c.rdl
	}
	c.park.Store(parked) // before the poller can report it
	err := netx.ErrReadable
	if !c.pending {
		c.token, err = s.poller.Wait(c.nc, c)
	}
	if err != nil {
		c.park.Store(parkedWaiting)
	}
	s.mu.Unlock()
	if err != nil {
		go c.resume(true)
	}
	return true
}

// closeParked closes a connection parked with the poller, for a closer
// that took it (park from parked to parkNone: no goroutine owns it). s.mu
// is held.
func (s *Server) closeParked(c *conn) {
	s.poller.Forget(c.token)
	c.nc.Close()
	delete(s.conns, c)
}

// serveRequests serves the connection's requests until it closes, is
// handed over or is parked; first is whether it is new.
func (c *conn) serveRequests(first bool) {
	s := c.srv
	var inFlight *response
	isParked := false
	defer func() {
		err := recover()
		if isParked && err == nil {
			return // the poller or resume owns the connection now
		}
		if err != nil && err != http.ErrAbortHandler {
			const size = 64 << 10
			buf := make([]byte, size)
			buf = buf[:runtime.Stack(buf, false)]
			s.logf("http: panic serving %v: %v\n%s", c.remoteAddr, err, buf)
		}
		if inFlight != nil {
			c.endHandler()
			c.cancel()
			// What the handler wrote and did not flush is dropped, as
			// net/http drops its unsent 2048-byte buffer: a client gets
			// no response rather than a cut one where net/http's would.
			c.bw.Reset(connWriter{c})
		}
		if !c.handedOff {
			if inFlight != nil {
				// As net/http: what is left of the body is read (up to
				// maxPostHandlerReadBytes) before the connection closes.
				_ = inFlight.reqBody().Close()
			}
			if c.bw != nil {
				_ = c.bw.Flush()
			}
			c.nc.Close()
		}
		s.untrack(c)
		if c.br != nil {
			c.br.Reset(nil)
			s.readers.Put(c.br)
		}
		if c.bw != nil {
			c.bw.Reset(nil)
			s.writers.Put(c.bw)
		}
	}()

	if first {
		c.start()
	}
	for ; ; first = false {
		head, res := c.readHead(first)
		if res == headClose {
			return
		}
		if res == headPark {
			c.hdr = nil // an idle connection keeps as little as it can
			c.br.Reset(nil)
			s.readers.Put(c.br)
			c.mu.Lock()
			c.br = nil
			c.mu.Unlock()
			// Parked, the connection is no longer this goroutine's: the
			// poller's, or resume's.
			isParked = c.parkIdle()
			return
		}
		// One allocation for what lives as long as the request: the
		// response, with the request, its context and its parts in it.
		w := &response{c: c, contentLength: -1}
		var req http.Request
		if res == headHandoff || !parseHead(head, &req, &w.parts, c.hdr) {
			if first && s.h2c != nil && bytes.HasPrefix(head, h2PrefaceHead) {
				c.serveH2C()
				return
			}
			c.handOver(first)
			return
		}
		// The map this request's fields are in, whatever the handler does
		// with Request.Header: the only one that may be reused.
		ownHeader := req.Header
		c.hdr = nil
		_, _ = c.br.Discard(len(head))
		if s.shuttingDown() {
			return // as net/http: a request read during shutdown is not served
		}
		if c.bw == nil {
			c.bw = s.getWriter(connWriter{c})
		}

		w.cw.res = w
		var (
			reqCtx    context.Context
			rctx      *reqContext
			stdCancel context.CancelFunc
		)
		if c.plainCtx {
			w.ctx.Context = c.ctx
			rctx = &w.ctx
			reqCtx = rctx
		} else {
			reqCtx, stdCancel = context.WithCancel(c.ctx)
		}
		req.RemoteAddr = c.remoteAddr
		// WithContext is the only way to set a Request's context; its
		// copy, inlined and dereferenced at once, stays on the stack.
		w.req = *req.WithContext(reqCtx)
		r := &w.req
		hasBody := r.ContentLength != 0
		if hasBody {
			w.body.init(c, r)
			r.Body = &w.body
			// As net/http without a ReadTimeout: no read deadline for the
			// body (the head's is lifted).
			if c.rdlSet {
				_ = c.nc.SetReadDeadline(time.Time{})
				c.rdl, c.rdlSet = 0, false
			}
		}
		isPost := r.Method == http.MethodPost
		w.wantsClose = r.Close || hasToken(hget(r.Header, "Connection"), "close")
		c.startHandler(rctx, stdCancel, hasBody)
		inFlight = w
		s.handler.ServeHTTP(w, r)
		inFlight = nil
		c.endHandler()
		c.cancel()
		c.mu.Lock()
		c.rctx, c.stdCancel = nil, nil // an idle connection keeps nothing of the request
		c.mu.Unlock()
		w.finish()
		w.releaseHeader()
		if c.clientGone || !w.shouldReuseConnection() {
			if w.requestBodyLimitHit || w.closedRequestBodyEarly() {
				c.closeWriteAndWait()
			}
			return
		}
		c.afterPost = isPost
		c.keepHeader(ownHeader)
		// The writer is empty between responses: an idle connection does
		// not keep its 4 KiB (the reader must stay, for the next head).
		c.bw.Reset(nil)
		s.writers.Put(c.bw)
		c.bw = nil
		c.state.Store(stateIdle)
		// After the store: SetKeepAlivesEnabled(false) either is seen
		// here or sees this connection idle, and closes it.
		if !s.doKeepAlives() {
			return
		}
		// Wait for the next request under the idle timeout; its head is
		// bounded by ReadHeaderTimeout from its first 4 bytes (readHead).
		// With 4 or more buffered already, readHead sets that deadline
		// before it reads again; with fewer, the deadline in force may be
		// an earlier head's, long past.
		//
		// An idle deadline set by an earlier wait is kept while it is
		// within an eighth of the timeout (at most 1s) of a fresh one, as
		// the upstream client keeps its header deadline: on a busy
		// connection, no timer update per request. The wait is then
		// bounded by idle minus that slack at least, idle at most (a
		// later deadline, such as a longer ReadHeaderTimeout's, is
		// replaced).
		if c.rdlStale.Swap(false) {
			c.rdl, c.rdlSet = 0, true
		}
		if c.br.Buffered() < 4 {
			now := time.Now()
			c.waitSince.Store(now.UnixNano())
			switch {
			case s.idle > 0:
				if left := time.Duration(c.rdl - now.UnixNano()); c.rdl == 0 || left < s.idle-min(s.idle/8, time.Second) || left > s.idle {
					c.setReadDeadline(now.Add(s.idle))
				}
			case c.rdlSet:
				_ = c.nc.SetReadDeadline(time.Time{})
				c.rdlSet = false
			}
		}
	}
}

// keepHeader clears h, the header map of the request just served, and
// keeps it for the connection's next request, when the server reuses
// header maps (see "Reused header maps" in the package doc). It is called
// only after the handler returned normally and its response is finished,
// on a connection that goes on here. A map the handler grew past what a
// taken head may hold is left to the collector: clear keeps a map's size.
func (c *conn) keepHeader(h http.Header) {
	if !c.srv.reuseHeader || len(h) > maxHeadLines {
		return
	}
	clear(h)
	c.hdr = h
}

// readHead returns the next request head, "\r\n\r\n" included, still in
// the reader's buffer: headClose when the client closed or timed out
// before sending one (net/http closes without an answer then), and
// headHandoff when net/http must answer (a head longer than the buffer,
// or one cut short).
//
// first is whether this is the connection's first request. Its head is
// bounded by ReadHeaderTimeout from the accept. A later one waits under
// the idle timeout for its first 4 bytes (net/http's Peek(4): fewer and
// the connection ends silently), then gets ReadHeaderTimeout from there.
func (c *conn) readHead(first bool) ([]byte, int) {
	scanned := 0
	hdrSet := first
	for {
		n := c.br.Buffered()
		if c.afterPost && !first && n >= 4 {
			// net/http, after a POST, skips the CR and LF bytes among the
			// next request's first 4 (RFC 9112 §2.2), and then reads a
			// head as on a new connection: one cut short is answered.
			c.afterPost = false
			b, _ := c.br.Peek(4)
			if k := leadingCRorLF(b); k > 0 {
				_, _ = c.br.Discard(k)
				n -= k
				if !hdrSet && c.srv.rht > 0 {
					c.setReadDeadline(time.Now().Add(c.srv.rht))
				}
				first, hdrSet = true, true
			}
		}
		// A later request is looked at from its 4th byte on, as net/http's
		// Peek(4) does: fewer and then EOF end the connection silently.
		if n > 0 && (first || n >= 4) {
			buf, _ := c.br.Peek(n)
			end, bare := headEnd(buf, max(scanned-3, 0))
			if end > 0 {
				if bare {
					return nil, headHandoff // bare-LF line ends: net/http reads them
				}
				if !c.activate() {
					return nil, headClose // closed as idle by Shutdown
				}
				return buf[:end], headOK
			}
			scanned = n
			if n == c.br.Size() {
				return nil, headHandoff // net/http reads up to MaxHeaderBytes, and answers 431 beyond
			}
			if !hdrSet && n >= 4 && c.srv.rht > 0 {
				c.setReadDeadline(time.Now().Add(c.srv.rht))
				hdrSet = true
			}
		}
		if !first && n == 0 {
			// The response has just gone out, and the client cannot have
			// sent its next request yet (unless it pipelines: then it is
			// buffered, n > 0). Reading now would find nothing, a read
			// that fails with EAGAIN before the poller waits: on nearly
			// every request of a busy keep-alive connection, one system
			// call in six. Yielding first lets the other connections'
			// goroutines run; when this one runs again the request has
			// often arrived, and the read finds it (nginx waits for the
			// poller instead, and knows from a short read that the socket
			// was empty). With nothing else to run it returns at once.
			// Measured in docs/performance.md ("The read after a
			// response").
			runtime.Gosched()
		}
		// An idle wait for a later request, with nothing read of it and
		// the read deadline known, may be parked (see parkIdle).
		mayPark := !first && n == 0 && !c.noPark && (!c.rdlSet || c.rdl != 0)
		if mayPark {
			c.park.Store(parkIdle)
		}
		_, err := c.br.Peek(n + 1)
		if mayPark && c.park.Swap(parkNone) == parkAsked {
			c.unpark()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if c.br.Buffered() == 0 {
					return nil, headPark
				}
				continue // the sweep's wake-up; a deadline of our own is met again
			}
		}
		if err != nil {
			if c.br.Buffered() == 0 || !first && c.br.Buffered() < 4 || errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, headClose
			}
			return nil, headHandoff // a head cut short: net/http answers it
		}
	}
}

// headEnd finds the blank line that ends a head in buf, looking from
// from: end is the length of the head with it (0: none yet), and bare
// reports a blank line that is not "\r\n\r\n" ("\n\n" or "\n\r\n" after
// a bare LF), which net/http accepts and this server hands over.
func headEnd(buf []byte, from int) (end int, bare bool) {
	for i := from; i < len(buf); i++ {
		i += max(bytes.IndexByte(buf[i:], '\n'), 0)
		if i >= len(buf) || buf[i] != '\n' || i+1 >= len(buf) {
			return 0, false
		}
		switch {
		case buf[i+1] == '\n':
			return i + 2, true
		case buf[i+1] == '\r':
			if i+2 >= len(buf) {
				return 0, false
			}
			if buf[i+2] == '\n' {
				return i + 3, i == 0 || buf[i-1] != '\r'
			}
		}
	}
	return 0, false
}

// activate marks the connection active once a whole head has arrived,
// unless Shutdown closed it as idle first (as net/http, which counts a
// connection active from the request it has read).
func (c *conn) activate() bool {
	for {
		st := c.state.Load()
		if st == stateClosed {
			return false
		}
		if st == stateActive || c.state.CompareAndSwap(st, stateActive) {
			return true
		}
	}
}

// h2PrefaceHead is the head of HTTP/2's client preface ("PRI * HTTP/2.0"
// and an empty line); its last six bytes, "SM\r\n\r\n", are the HTTP/2
// server's to check.
var h2PrefaceHead = []byte("PRI * HTTP/2.0\r\n\r\n")

// serveH2C gives the connection, with what is buffered, to the server's
// h2c function (ServeH2C), on this goroutine. The read buffer goes back
// first: the HTTP/2 server reads through its own.
func (c *conn) serveH2C() {
	n := c.br.Buffered()
	b, _ := c.br.Peek(n)
	pre := bytes.Clone(b)
	c.br.Reset(nil)
	c.srv.readers.Put(c.br)
	c.mu.Lock()
	c.br = nil
	c.mu.Unlock()
	c.hdr = nil
	var prefaceBy time.Time
	if c.rdlSet && c.rdl != 0 && !c.rdlStale.Load() {
		prefaceBy = time.Unix(0, c.rdl) // the read header timeout, from accept
	}
	_ = c.nc.SetDeadline(time.Time{}) // the HTTP/2 server sets its own, by prefaceBy
	c.srv.h2c(c.ctx, &prefixConn{Conn: c.nc, pre: pre}, prefaceBy)
}

// handOver gives the connection, with what is buffered, to the
// http.Server (after a first request served here, to its HTTP/1-only
// twin: see Server.fbLater). This server's deadlines are cleared: net/http sets its own.
func (c *conn) handOver(first bool) {
	var pre []byte
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		pre = bytes.Clone(b)
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.handedOff = true
	l := c.srv.handoff
	if !first {
		l = c.srv.handoffLater
	}
	l.push(&prefixConn{Conn: c.nc, pre: pre})
}

// startHandler notes the handler starting. With a request body, no
// watcher may read ahead until the body has been read (bodyDone): it
// would take the body's bytes (net/http's background read likewise
// starts at the body's end).
func (c *conn) startHandler(rctx *reqContext, stdCancel context.CancelFunc, hasBody bool) {
	c.mu.Lock()
	c.rctx, c.stdCancel = rctx, stdCancel
	c.inHandler = true
	c.mayWatch = !hasBody && c.br.Buffered() == 0
	c.seq++
	c.mu.Unlock()
}

// bodyDone is called by the request body once read to its end, on the
// goroutine reading it: from then on the connection may be watched.
func (c *conn) bodyDone() {
	c.mu.Lock()
	if c.inHandler {
		c.mayWatch = c.br.Buffered() == 0
	}
	c.mu.Unlock()
}

// rstAvoidanceDelay is net/http's: how long a connection closed with
// request body bytes left unread stays half-closed, so the client reads
// the response before the reset the final close may cause.
const rstAvoidanceDelay = 500 * time.Millisecond

// closeWriteAndWait is net/http's: after a response that left a request
// body unread, the response is flushed, the connection half-closed, and
// closed only rstAvoidanceDelay later (or at Shutdown or Close).
func (c *conn) closeWriteAndWait() {
	if c.bw != nil {
		_ = c.bw.Flush()
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	t := time.NewTimer(rstAvoidanceDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.srv.done:
	}
}

// leadingCRorLF is how many bytes b starts with that are CR or LF.
func leadingCRorLF(b []byte) int {
	n := 0
	for _, c := range b {
		if c != '\r' && c != '\n' {
			break
		}
		n++
	}
	return n
}

// cancel cancels the current request's context (after the handler, it
// was cancelled already and nothing happens). It is called by the
// connection's goroutine, or by the watcher with c.mu held.
func (c *conn) cancel() {
	if c.rctx != nil {
		c.rctx.cancel()
	} else if c.stdCancel != nil {
		c.stdCancel()
	}
}

// setReadDeadline sets the connection's read deadline from its own
// goroutine, and notes it.
func (c *conn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	c.rdl, c.rdlSet = t.UnixNano(), true
}

// endHandler stops the watcher, if one runs, and waits for it.
func (c *conn) endHandler() {
	c.mu.Lock()
	c.inHandler = false
	watching := c.watching
	if watching {
		c.aborting = true
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
		c.rdlSet = true
	}
	if c.watchedSeq == c.seq {
		c.rdl = 0 // a watcher cleared the deadline, or set aLongTimeAgo
	}
	done := c.watchDone
	c.mu.Unlock()
	if watching {
		<-done
		c.mu.Lock()
		c.aborting = false
		c.mu.Unlock()
	}
}

// maybeWatch is called by the sweep for each connection. A handler still
// running the request it ran at the last sweep gets a watcher: one read
// that notices the client leaving (and cancels the request, as net/http's
// background read does) or keeps the next request's first byte.
// s.mu is held.
func (c *conn) maybeWatch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	// One watcher per request: a second would read over the byte the
	// first one kept.
	if c.inHandler && c.mayWatch && !c.watching && c.seq == c.sweptSeq && c.watchedSeq != c.seq {
		c.watching = true
		c.watchedSeq = c.seq
		c.watchDone = make(chan struct{})
		_ = c.nc.SetReadDeadline(time.Time{})
		go c.watch()
	}
	c.sweptSeq = c.seq
}

func (c *conn) watch() {
	n, err := c.nc.Read(c.pb[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 1 {
		c.pending = true
	}
	if err != nil && !c.aborting {
		c.clientGone = true
		c.cancel()
	}
	c.watching = false
	close(c.watchDone)
}

// date is the Date value of a response now, formatted once a second
// for the whole server (not per connection: an idle one keeps nothing of
// it).
func (s *Server) date() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := s.dateNow.Load(); d != nil && d.sec == sec {
		return d.b[:]
	}
	d := &dateStamp{sec: sec}
	now.UTC().AppendFormat(d.b[:0], http.TimeFormat)
	s.dateNow.Store(d)
	return d.b[:]
}

// dateStamp is a second's Date value; never written once stored.
type dateStamp struct {
	sec int64
	b   [len(http.TimeFormat)]byte
}

func (s *Server) getReader(r connReader) *bufio.Reader {
	if br, ok := s.readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, 4<<10)
}

func (s *Server) getWriter(w connWriter) *bufio.Writer {
	if bw, ok := s.writers.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, 4<<10)
}

func (s *Server) getPre(cw *chunkWriter) *bufio.Writer {
	if bw, ok := s.pres.Get().(*bufio.Writer); ok {
		bw.Reset(cw)
		return bw
	}
	return bufio.NewWriterSize(cw, bufferBeforeChunkingSize)
}

func (s *Server) putPre(bw *bufio.Writer) {
	bw.Reset(nil)
	s.pres.Put(bw)
}

// parkAfter is how long a connection waits for its next request before
// the sweep may ask it to park: a connection busier than that is never
// parked, and one idle longer is parked at the next sweep (at most a
// sweep interval later; parking it costs some microseconds, once per
// idle spell). Not longer: the sooner an idle connection gives back its
// buffer and goroutine stack, the less a burst of new connections holds
// (and the lower the heap goal it sets).
const parkAfter = 10 * time.Millisecond

// maybePark is called by the sweep for each connection (s.mu is held),
// with the time: one that has waited for a later request, with nothing
// read of it, for parkAfter, or since the last sweep, is asked to park
// (see parkIdle).
func (c *conn) maybePark(now int64) {
	switch c.park.Load() {
	case parkIdle:
		// waitSince is this wait's, or a later one's (stored first).
		if now-c.waitSince.Load() < int64(parkAfter) {
			c.park.CompareAndSwap(parkIdle, parkSeen)
			return
		}
		c.askPark(parkIdle)
	case parkSeen:
		c.askPark(parkSeen)
	}
}

// askPark wakes the connection's read, waiting in state from, to park.
func (c *conn) askPark(from int32) {
	c.mu.Lock()
	if c.park.CompareAndSwap(from, parkAsked) {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
	c.mu.Unlock()
}

// unpark puts back the read deadline the sweep replaced when it asked the
// connection to park. It runs on the connection's goroutine, which knows
// the deadline (readHead parks only then).
func (c *conn) unpark() {
	c.mu.Lock() // the sweep sets its deadline under c.mu: it is done
	c.mu.Unlock()
	if c.rdlSet {
		_ = c.nc.SetReadDeadline(time.Unix(0, c.rdl))
	} else {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}
