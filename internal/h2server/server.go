// Package h2server is Gatehouse's HTTP/2 server (RFC 9113) for
// connections that negotiated "h2" by ALPN, and for cleartext ones that
// opened with the client preface (h2c with prior knowledge, which
// internal/h1server hands over).
//
// It keeps net/http's HTTP/2 server as its contract (what a handler sees,
// what a client receives, the same protocol errors, the same limits on
// rapid reset, CONTINUATION and control-frame floods), and differs in
// how it writes: net/http hands every frame to a serve loop and flushes
// each on a goroutine of its own, so a response goes out as two TLS
// records and two write(2) calls. Here a handler encodes its frames into
// the connection's write buffer itself, under the connection's lock, and
// whichever goroutine finds no write in progress writes everything
// buffered: a response is one record, and responses finishing together
// share one (group commit).
//
// Goroutines: one per connection reads and processes frames
// (ServeConn's), one per running handler runs it and then waits for the
// connection's next stream (until the connection has had nothing in
// progress for Config.HandlerLinger, or ends), and a short-lived one
// writes control frames (SETTINGS and PING acknowledgements, resets)
// when no handler is writing, so that the reader never blocks on a
// client that does not read.
//
// Frames are read by golang.org/x/net/http2's Framer (frame validation,
// the order of CONTINUATION frames) and header blocks decoded by its
// hpack.Decoder, into the connection's own MetaHeadersFrame by the rules
// of the Framer's (headers.go: the same limits and refusals, fewer
// allocations, and long literals a client repeats taken from a small
// cache); frames are written by this package.
package h2server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Config sizes and times a Server. Zero values take the defaults named.
type Config struct {
	// MaxConcurrentStreams: SETTINGS_MAX_CONCURRENT_STREAMS. Default 250.
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a request's decoded header list, as
	// net/http's Server.MaxHeaderBytes does (a larger one is answered
	// 431). Default 1 MiB.
	MaxHeaderBytes int
	// IdleTimeout closes a connection with no stream open this long
	// (GOAWAY first). 0 means none.
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds the wait for the client preface. Default 10 s.
	ReadHeaderTimeout time.Duration
	// WriteTimeout bounds each write to the socket: a client that stops
	// reading loses its connection after it. 0 means none.
	WriteTimeout time.Duration
	// HandlerLinger is how long a connection with nothing in progress
	// keeps the goroutines that ran its handlers, for its next streams
	// (startHandlerLocked). Default 1 s; negative: none is kept once the
	// connection has nothing in progress.
	HandlerLinger time.Duration
	// ErrorLog receives handler panics and protocol events; nil: the
	// log package's standard logger.
	ErrorLog *log.Logger
	// ReuseRequestHeaders: a request's header map goes back to the
	// server once its handler has returned normally, for another
	// request's fields. The handler contract is then h1server's with
	// Server.ReuseRequestHeaders: once ServeHTTP has returned, the
	// handler, and anything it started or handed the request to, must
	// not use the map it got as Request.Header (the request, its strings
	// and value slices may be kept; a map the handler put in
	// Request.Header is never taken). Off by default, as net/http's
	// contract is looser; Gatehouse's engine keeps to the stricter one.
	ReuseRequestHeaders bool
}

const (
	prefaceStr = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// initialWindow is the protocol's initial flow-control window.
	initialWindow = 65535
	// recvWindow is what a client may send ahead on a stream and on the
	// connection (net/http's defaults for both: 1 MiB).
	recvWindow = 1 << 20
	// maxReadFrame is the SETTINGS_MAX_FRAME_SIZE announced (net/http's).
	maxReadFrame = 1 << 20
	// inflowMinRefresh: window is returned in steps of at least this.
	inflowMinRefresh = 4 << 10
	// maxWriteFrame caps the DATA and header-block frames written
	// (the protocol's initial SETTINGS_MAX_FRAME_SIZE).
	maxWriteFrame = 16384
	// maxWriteBuf: once this much is buffered for the socket, writers
	// wait for the write in progress.
	maxWriteBuf = 64 << 10
	// maxQueuedControl: a client that makes the server queue more
	// control frames than this without reading them is disconnected
	// (net/http's maxQueuedControlFrames).
	maxQueuedControl = 10000
	// goAwayLinger: after GOAWAY, how long the connection stays open for
	// the client to read it once no stream remains (net/http's
	// goAwayTimeout).
	goAwayLinger = time.Second
)

var (
	errClientDisconnected = errors.New("client disconnected")
	errStreamClosed       = errors.New("http2: stream closed")
	errHandlerComplete    = errors.New("http2: request body closed due to handler exiting")
	errClosedBody         = errors.New("body closed by handler")
	// errResetNo: the stream was reset with NO_ERROR after its response.
	errResetNo error = http2.StreamError{Code: http2.ErrCodeNo}
	// errControlFlood ends a connection whose client made the server
	// queue more resets than maxQueuedControl without reading them.
	errControlFlood = errors.New("h2server: too many control frames queued")
)

// Server serves HTTP/2 connections.
type Server struct {
	cfg Config

	date atomic.Pointer[dateEntry] // the Date field of this second

	// reqHeaders holds request header maps between requests
	// (Config.ReuseRequestHeaders; takeHeader, stream.keepHeader).
	reqHeaders sync.Pool

	mu       sync.Mutex // guards the following fields
	conns    map[*conn]struct{}
	shutdown bool
}

// maxReusedFields: a request header map that held more fields than this
// is not kept for another request (clear keeps a map's size).
const maxReusedFields = 64

// takeHeader returns an empty map for a request of n fields: a kept one
// when the server reuses them.
func (s *Server) takeHeader(n int) http.Header {
	if s.cfg.ReuseRequestHeaders {
		if h, ok := s.reqHeaders.Get().(http.Header); ok {
			return h
		}
	}
	return make(http.Header, n)
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = 250
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.HandlerLinger == 0 {
		cfg.HandlerLinger = time.Second
	}
	return &Server{cfg: cfg, conns: make(map[*conn]struct{})}
}

// Configure makes s serve hs's connections that negotiate h2
// (TLSNextProto) and sends them GOAWAY when hs shuts down. hs's
// TLSConfig must offer "h2" by ALPN.
func (s *Server) Configure(hs *http.Server) {
	if hs.TLSNextProto == nil {
		hs.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	hs.TLSNextProto["h2"] = func(_ *http.Server, c *tls.Conn, h http.Handler) { s.ServeConn(c, h) }
	hs.RegisterOnShutdown(s.Shutdown)
}

// Shutdown sends every connection GOAWAY (NO_ERROR, the last stream it
// has taken); each closes once its streams are done. Connections that
// arrive afterwards get the same at once. It returns at once; net/http's
// Server.Shutdown waits for the connections to end.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.shutdown = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		c.goAwayLocked(http2.ErrCodeNo)
		c.mu.Unlock()
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.ErrorLog != nil {
		s.cfg.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// maxHeaderListSize is the SETTINGS_MAX_HEADER_LIST_SIZE announced, as
// net/http computes it: MaxHeaderBytes plus 32 bytes of per-field
// overhead for ten typical fields.
func (s *Server) maxHeaderListSize() uint32 {
	return uint32(s.cfg.MaxHeaderBytes + 10*32)
}

// ServeConn serves HTTP/2 on c until the connection ends. c has not
// yet sent its preface. h serves the requests; their contexts derive
// from h's BaseContext() when it has one (net/http's TLSNextProto
// handler does: it carries ConnContext's values).
func (s *Server) ServeConn(c net.Conn, h http.Handler) {
	base := context.Background()
	if bc, ok := h.(interface{ BaseContext() context.Context }); ok {
		base = bc.BaseContext()
	}
	s.ServeConnContext(base, c, h, time.Time{})
}

// ServeConnContext is ServeConn with the context the requests' contexts
// derive from: the connection's own, from the server that accepted it
// (h1server's ServeH2C, for cleartext HTTP/2). prefaceBy, if not zero, is
// when the client preface must be complete, if earlier than
// ReadHeaderTimeout from now: that server started the clock when it
// accepted the connection, and read the preface's first bytes.
func (s *Server) ServeConnContext(base context.Context, c net.Conn, h http.Handler, prefaceBy time.Time) {
	sc := newConn(s, c, h, base)
	sc.prefaceBy = prefaceBy

	s.mu.Lock()
	s.conns[sc] = struct{}{}
	shutdown := s.shutdown
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
	}()

	sc.serve(shutdown)
}

// newConn prepares a connection's state; serve runs it.
func newConn(s *Server, nc net.Conn, h http.Handler, base context.Context) *conn {
	c := &conn{
		srv:               s,
		nc:                nc,
		h:                 h,
		baseCtx:           base,
		remoteAddr:        nc.RemoteAddr().String(),
		streams:           make(map[uint32]*stream),
		sendWindow:        initialWindow,
		initialSendWindow: initialWindow,
		peerMaxFrame:      maxWriteFrame,
		inflow:            inflow{avail: recvWindow},
	}
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tlsState = &st
	}
	c.cond.L = &c.mu
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.br = bufio.NewReaderSize(nc, 16<<10)
	c.fr = http2.NewFramer(io.Discard, c.br)
	c.hdec = hpack.NewDecoder(4096, c.emitField)
	c.hdec.SetMaxStringLength(int(s.maxHeaderListSize()))
	c.fr.SetMaxReadFrameSize(maxReadFrame)
	return c
}

// conn is one HTTP/2 connection.
type conn struct {
	srv        *Server
	nc         net.Conn
	h          http.Handler
	baseCtx    context.Context
	remoteAddr string
	tlsState   *tls.ConnectionState // nil over cleartext
	prefaceBy  time.Time            // ServeConnContext's; zero: ReadHeaderTimeout from the start

	// Owned by the reading goroutine (serve).
	br            *bufio.Reader
	fr            *http2.Framer
	hdec          *hpack.Decoder // header blocks (headers.go)
	block         blockState
	sawSettings   bool
	canonCache    map[string]string
	idleTimer     *time.Timer
	shutdownTimer *time.Timer // guarded by mu

	mu   sync.Mutex // guards the following fields
	cond sync.Cond  // on mu: broadcast when windows grow, a write ends, a stream closes, the connection ends

	streams     map[uint32]*stream // open and half-closed streams
	maxClientID uint32             // highest stream id the client has used
	handlers    int                // handlers running
	pending     []*stream          // streams waiting for a handler slot (rapid reset)
	idleWorkers []chan *stream     // handler goroutines waiting for the next stream (startHandlerLocked)
	workerTimer *time.Timer        // ends idleWorkers once the connection has had nothing in progress for HandlerLinger

	sendWindow        int32 // what the client lets us send on the connection
	initialSendWindow int32 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame      int32 // the largest frame written
	inflow            inflow

	resets    [recentResets]uint32 // streams reset while open at the client (rememberReset)
	resetNext int

	unackedSettings int
	goAway          bool // GOAWAY queued: no new streams past maxClientID
	goAwayCode      http2.ErrCode
	closed          bool // the connection is torn down

	enc        *hpack.Encoder
	known      knownFields  // fields enc last sent as an index (encodeKnown)
	hbuf       bytes.Buffer // the header block being encoded
	lowerCache map[string]string
	wbuf       []byte // frames waiting to be written
	spare      []byte // the buffer the last write used
	writing    bool   // a goroutine is writing; it writes what is appended meanwhile
	kicked     bool   // a control-frame writer has been started
	ctrlQueued int    // control frames appended since the last write began
}

// serve reads and processes frames until the connection ends.
func (c *conn) serve(shutdown bool) {
	defer c.teardown()
	defer c.watchBase()()

	// Announce our settings and open the connection window to
	// recvWindow, as net/http does, before the preface is read.
	c.mu.Lock()
	c.appendSettings()
	c.appendWindowUpdate(0, recvWindow-initialWindow)
	c.unackedSettings++
	if shutdown {
		c.goAwayLocked(http2.ErrCodeNo)
	}
	c.kickLocked()
	c.mu.Unlock()

	if !c.readPreface() {
		return
	}
	if d := c.srv.cfg.IdleTimeout; d > 0 {
		c.idleTimer = time.AfterFunc(d, c.onIdle)
		defer c.idleTimer.Stop()
	}

	for first := true; ; first = false {
		f, err := c.readFrame() // on an error, f is nil
		if first {
			// The preface's deadline covered the SETTINGS frame that
			// completes it (RFC 9113 §3.4): 24 bytes alone must not
			// hold a connection until the idle timeout.
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		if err == nil {
			err = c.processFrame(f)
		} else if errors.Is(err, http2.ErrFrameTooLarge) {
			err = http2.ConnectionError(http2.ErrCodeFrameSize)
		}
		readOn := err == nil || c.protocolError(f, err)
		if c.block.meta.HeadersFrame != nil { // a header block was read, whole or not
			c.releaseHeaderBlock()
		}
		if !readOn {
			return
		}
	}
}

// protocolError answers err, from reading a frame (f nil) or from
// processing f: a stream error resets that stream and the connection goes
// on; a connection error ends it with GOAWAY; anything else (the client
// went away, or its bytes are not HTTP/2) ends it at once. It reports
// whether to read on.
func (c *conn) protocolError(f http2.Frame, err error) bool {
	var se http2.StreamError
	if errors.As(err, &se) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if f == nil && se.StreamID%2 == 1 {
			// A header block the Framer decoded but found malformed:
			// the stream was opened (the HPACK state is intact).
			c.maxClientID = max(c.maxClientID, se.StreamID)
		}
		return c.resetFromReaderLocked(se)
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		if f != nil && f.Header().StreamID%2 == 1 {
			// GOAWAY names the stream the error came with.
			c.mu.Lock()
			c.maxClientID = max(c.maxClientID, f.Header().StreamID)
			c.mu.Unlock()
		}
		c.fail(ce)
	}
	return false
}

// resetFromReaderLocked queues RST_STREAM for a stream error in what the
// client sent and has it written. Those resets count as control frames
// (resetLocked counts them): it reports false when the client has made
// the server queue more than maxQueuedControl without reading them, and
// the connection ends, as net/http's does; else a client that never
// reads could make the server buffer resets without bound.
func (c *conn) resetFromReaderLocked(se http2.StreamError) bool {
	c.resetLocked(se.StreamID, se.Code)
	if c.ctrlQueued > maxQueuedControl {
		return false
	}
	c.kickLocked()
	return true
}

// readPreface reads the client preface within ReadHeaderTimeout, and
// leaves that deadline for the SETTINGS frame that must follow it.
func (c *conn) readPreface() bool {
	deadline := time.Now().Add(c.srv.cfg.ReadHeaderTimeout)
	if !c.prefaceBy.IsZero() && c.prefaceBy.Before(deadline) {
		deadline = c.prefaceBy
	}
	_ = c.nc.SetReadDeadline(deadline)
	var buf [len(prefaceStr)]byte
	if _, err := io.ReadFull(c.br, buf[:]); err != nil || string(buf[:]) != prefaceStr {
		return false
	}
	return true
}

// fail ends the connection on a connection error: GOAWAY with its code,
// written within goAwayLinger, then the socket closes.
func (c *conn) fail(ce http2.ConnectionError) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goAwayLocked(http2.ErrCode(ce))
	deadline := time.Now().Add(goAwayLinger)
	for !c.closed && (c.writing || len(c.wbuf) > 0) {
		if !c.writing {
			_ = c.nc.SetWriteDeadline(deadline)
			c.flushLocked()
			continue
		}
		if !c.waitLocked(&c.cond, deadline) {
			return
		}
	}
}

// teardown ends the connection: the socket closes, every stream's
// context is canceled and its body fails; running handlers see their
// writes fail.
func (c *conn) teardown() {
	c.mu.Lock()
	c.closeLocked(errClientDisconnected)
	c.mu.Unlock()
}

func (c *conn) closeLocked(err error) {
	if c.closed {
		return
	}
	c.closed = true
	_ = c.nc.Close()
	for _, st := range c.streams {
		c.closeStreamLocked(st, err)
	}
	c.pending = nil
	c.releaseWorkersLocked()
	if c.workerTimer != nil {
		c.workerTimer.Stop()
	}
	if c.shutdownTimer != nil {
		c.shutdownTimer.Stop()
	}
	c.cond.Broadcast()
}

// onIdle runs when IdleTimeout passes with no stream open.
func (c *conn) onIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.streams) == 0 && c.handlers == 0 {
		c.goAwayLocked(http2.ErrCodeNo)
	}
}

// goAwayLocked queues GOAWAY once (a later error code replaces
// NO_ERROR, as in net/http; the frame is written once). After an error
// the connection closes once GOAWAY is out; after NO_ERROR, once no
// stream remains.
func (c *conn) goAwayLocked(code http2.ErrCode) {
	if c.closed {
		return
	}
	if c.goAway {
		if c.goAwayCode == http2.ErrCodeNo {
			c.goAwayCode = code
		}
		c.maybeFinishLocked()
		return
	}
	c.goAway = true
	c.goAwayCode = code
	c.appendGoAway(c.maxClientID, code)
	c.kickLocked()
	c.maybeFinishLocked()
}

// maybeFinishLocked starts the linger before closing once GOAWAY has
// been queued and (for NO_ERROR) no stream or handler remains.
func (c *conn) maybeFinishLocked() {
	if !c.goAway || c.shutdownTimer != nil || c.closed {
		return
	}
	if c.goAwayCode == http2.ErrCodeNo && (len(c.streams) > 0 || c.handlers > 0) {
		return
	}
	c.shutdownTimer = time.AfterFunc(goAwayLinger, func() {
		c.mu.Lock()
		c.closeLocked(errClientDisconnected)
		c.mu.Unlock()
	})
}
