package lb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"gatehouse/internal/httpsyntax"
)

// h1Client is a synchronous HTTP/1.1 client, over plain TCP or TLS, used
// for every request that asks for no upgrade and no 100-continue.
//
// Why not http.Transport: the profile in docs/performance.md ("Where the
// time goes") shows the Transport's two goroutines per connection (a write
// loop and a read loop) and the channel hand-offs between them and the
// caller costing about 8 % of a proxied request, and its header writer
// sorting every header on every request. Here the caller's goroutine
// writes the request head and reads the response head itself; the
// response body is read by whoever reads it (ReverseProxy's copy loop),
// and the connection goes back to the idle list when the body ends
// cleanly. A request body is written by one goroutine per request (not
// per connection) while the caller reads the response (h1_body.go).
// Upgrades and Expect stay on the Transport.
//
// It keeps the Transport's contract where a proxy depends on it:
//   - a request that fails on a reused connection before a single response
//     byte arrives is sent again once on a new connection, when it is
//     replayable (GET, HEAD, OPTIONS, TRACE, or an Idempotency-Key, with
//     no body or one GetBody gives again): an app server closing an idle
//     keep-alive connection must never turn into a 502;
//   - a body is framed as the Transport frames it (Content-Length and
//     exactly that many bytes, or chunked with the request's trailers),
//     and a body that fails, or does not match its length, closes the
//     connection before the upstream could see a complete request;
//   - header names and values are checked (no CR/LF smuggled in), and
//     the Host header too;
//   - the response head is bounded (maxResponseHead), and 1xx responses
//     are passed to httptrace's Got1xxResponse, at most Max1xx of them;
//   - cancelling the request's context unblocks any read or write on the
//     connection and the connection is then closed, never reused;
//   - a connection is reused only after a complete response that did not
//     ask to close and left no stray bytes behind it.
type h1Client struct {
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	tls           *tls.Config // nil: plain TCP
	scheme        string      // "http", or "https" over TLS
	maxIdle       int
	idleTimeout   time.Duration
	headerTimeout time.Duration
	maxHead       int64     // bytes of each response head
	maxFields     int       // fields of each response head
	bufs          sync.Pool // *[]byte, 32 KiB: request body writers' copy buffers
	// base is a reading of the clock when the client was made; now reads
	// the time from it.
	base time.Time

	mu     sync.Mutex           // guards the following fields
	idle   map[string][]*h1Conn // by address; oldest first, so LIFO reuse
	sweep  *time.Timer          // armed while any connection is idle
	closed bool                 // CloseIdleConnections was called
}

// maxResponseHead is the most Settings.MaxResponseHeaderBytes may be
// (config validation holds it there), and what the Transport's head
// recorder keeps at most.
const maxResponseHead = 1 << 20

// Response head bounds when Settings names none: Envoy's defaults (60 KiB
// and 100 fields; nginx's proxy_buffer_size is 4 or 8 KiB). net/http's
// 10 MiB let one upstream hold hundreds of MiB of the gateway's memory
// with a few concurrent heads of tens of thousands of fields.
const (
	DefaultMaxResponseHeaderBytes  = 64 << 10
	DefaultMaxResponseHeaderFields = 100
)

// ErrTooManyFields is the error of a round trip whose response head has
// more fields than Settings.MaxResponseHeaderFields.
var ErrTooManyFields = errors.New("lb: upstream response head has too many fields")

// headBounds are s's response head bounds, defaults filled in.
func headBounds(s Settings) (maxBytes int64, maxFields int) {
	maxBytes, maxFields = s.MaxResponseHeaderBytes, s.MaxResponseHeaderFields
	if maxBytes <= 0 {
		maxBytes = DefaultMaxResponseHeaderBytes
	}
	if maxFields <= 0 {
		maxFields = DefaultMaxResponseHeaderFields
	}
	return maxBytes, maxFields
}

// Max1xx bounds the informational (1xx) responses an upstream may send
// before its final one, on every path to it: this client fails the round
// trip on one more (ErrTooMany1xx), and the proxy, which passes 1xx on to
// the client, stops the Transport's round trip there too (the Transport
// sets no bound of its own once a trace looks at 1xx responses). Five is
// net/http's old bound; docs/upstreams.md.
const Max1xx = 5

// ErrTooMany1xx is the error of a round trip whose upstream sent more than
// Max1xx informational responses.
var ErrTooMany1xx = errors.New("lb: upstream sent too many 1xx responses")

func newH1Client(dial func(ctx context.Context, network, addr string) (net.Conn, error), s Settings) *h1Client {
	c := &h1Client{
		bufs:          sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }},
		dial:          dial,
		maxIdle:       s.MaxIdlePerTarget,
		idleTimeout:   s.IdleConnTimeout,
		headerTimeout: s.ResponseHeaderTimeout,
		idle:          map[string][]*h1Conn{},
		tls:           s.TLS,
		scheme:        "http",
		base:          time.Now(),
	}
	c.maxHead, c.maxFields = headBounds(s)
	if s.TLS != nil {
		c.scheme = "https"
	}
	if c.maxIdle <= 0 {
		c.maxIdle = http.DefaultMaxIdleConnsPerHost // the Transport's meaning of 0
	}
	if c.idleTimeout <= 0 {
		c.idleTimeout = 90 * time.Second
	}
	return c
}

// eligible reports whether req can use the synchronous client: the
// pool's scheme, no upgrade, no Expect, and no body or one it frames as
// the Transport would (bodyLength).
func (c *h1Client) eligible(req *http.Request) bool {
	if req.URL.Scheme != c.scheme || req.Header["Upgrade"] != nil || req.Header["Expect"] != nil {
		return false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return req.ContentLength == 0 || req.Body == http.NoBody // else the Transport's error
	}
	_, ok := bodyLength(req)
	return ok
}

// h1Conn is one upstream connection. It is owned by one request at a
// time, or by the idle list.
type h1Conn struct {
	nc        net.Conn
	lr        headLimit
	br        *bufio.Reader
	bw        *bufio.Writer
	addr      string
	idleSince time.Time
	reused    bool
	// readDeadline is the connection's read deadline: zero, or the
	// response header timeout's, left in place by a response whose body
	// was already buffered.
	readDeadline time.Time
	// cl reads the body of the response readSimpleHead read: one
	// response at a time uses it.
	cl clBody

	// tcp is the TCP socket under a TLS connection (nil for plain TCP,
	// or when it is not a syscall.Conn): where an idle connection's
	// unread bytes are looked for (tlsIdleUnclean), and the socket as
	// crypto/tls reads it (nil for plain TCP).
	tcp   syscall.RawConn
	probe *probeConn

	// writeAndAwait's state (Linux, plain TCP): the socket; set for the
	// flush that ends a request head; its callback, bound once; what is
	// left to write, and how the peek and the write went.
	raw      syscall.RawConn
	await    bool
	sendFn   func(fd uintptr) bool
	sendBuf  []byte
	sendN    int
	sendDone bool
	peeked   bool
	pending  bool // the peek found bytes, an end or an error
	peekBuf  [1]byte
	peekFn   func(fd uintptr) // peekFD, bound once (idlePending, tcpPending)

	// The request body writer's state (h1_body.go). Its inputs and
	// wearly/warmed are shared with it; the rest is the caller's.
	c         *h1Client
	bodyTaken bool          // a writer was started for this request (and closes its body)
	writing   bool          // it was started and not yet joined
	werr      error         // its result, once joined
	wdone     chan error    // its result; made with the connection's first body
	wstage    atomic.Int32  // stageReading or stageFlushing
	writeFn   func()        // writeBody, bound once
	wbody     io.ReadCloser // the body, until joined
	wcl       int64
	wtrailer  http.Header
	wone      [1]byte    // bodyRest's
	wmu       sync.Mutex // guards wearly and warmed
	wearly    bool       // the final response head arrived: the writer arms no deadline
	warmed    time.Time  // the header timeout's deadline the writer set
}

// connWriter is what a connection's bufio.Writer writes to: the last
// flush of a request head may also wait for the response
// (writeAndAwait).
type connWriter struct{ pc *h1Conn }

func (w connWriter) Write(p []byte) (int, error) {
	if w.pc.await {
		return w.pc.writeAndAwait(p)
	}
	return w.pc.nc.Write(p)
}

// headLimit counts the bytes read from the connection while a response
// head is being read; n < 0 means unlimited (reading a body).
type headLimit struct {
	nc net.Conn
	n  int64
	// rec, while recording, gets a copy of every byte read (readFull,
	// which lends it a buffer from headBufs).
	rec       []byte
	recording bool
}

var errHeadTooLarge = errors.New("upstream response head too large")

func (l *headLimit) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.nc.Read(p)
	}
	if l.n == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.nc.Read(p)
	l.n -= int64(n)
	if l.recording {
		l.rec = append(l.rec, p[:n]...)
	}
	return n, err
}

func (pc *h1Conn) close() { pc.nc.Close() }

// Close closes the connection (io.Closer, for closeOnCancel).
func (pc *h1Conn) Close() error { return pc.nc.Close() }

// errRetryable marks a failure on a reused connection before any response
// byte: the server may have closed it while it sat idle.
type errRetryable struct{ err error }

func (e errRetryable) Error() string { return e.err.Error() }
func (e errRetryable) Unwrap() error { return e.err }

// errIdleUnclean: an idle connection about to be reused was closed by
// the server, or holds bytes no request asked for; nothing was written
// on it.
var errIdleUnclean = errors.New("idle upstream connection closed or sent unsolicited bytes")

// staleErr marks err retryable when it is what a connection closed by the
// server looks like (EOF, reset, broken pipe), not a timeout or a
// cancellation.
func staleErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return errRetryable{err}
	}
	return err
}

// RoundTrip sends req on an idle connection to req.URL.Host, or a new one.
func (c *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.roundTrip(req, headBlock{}, nil)
}

// Informer receives the informational (1xx) responses to a request sent
// with Pool.SendDirect, before the final one.
type Informer interface {
	Informational(code int, header http.Header) error
}

// A FieldReserver is an Informer that adds fields to the response header
// it is given (a proxy's own: a request id, security headers): the
// header map of a response read whole is made with room for that many.
type FieldReserver interface {
	ReserveFields() int
}

// A HeaderSupplier is an Informer that supplies the map a final
// response read whole is read into: a proxy's client response writer's
// own, pooled with room for a proxied response's fields, so that handing
// the response to the client costs no map. ResponseHeader returns an
// empty map, or nil when it has none to give (lb then makes one, with
// FieldReserver's room). It is asked at most once per response, and only
// for one the round trip returns, as its Header. A caller that fails the
// attempt after all must empty the map again.
//
// A supplied map gets no hop-by-hop field (RFC 9110 §7.6.1: Connection,
// Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
// Proxy-Authenticate, which a proxy removes), and a response whose
// Connection field names anything but keep-alive (or close) is never
// read into one: the proxy has nothing left to remove.
type HeaderSupplier interface {
	ResponseHeader() http.Header
}

// roundTrip is RoundTrip with a header block written after req.Header,
// and 1xx responses given to info (nil: to req's httptrace, if any).
//
// req.Body, if any, is closed once the round trip no longer needs it, as
// the Transport does: by the body writer when it ends, or here when the
// request fails before one started.
func (c *h1Client) roundTrip(req *http.Request, extra headBlock, info Informer) (*http.Response, error) {
	ctx := req.Context()
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	for attempt := 0; ; attempt++ {
		// The resend goes on a new connection: another idle one could
		// have been closed in the same moment.
		pc, err := c.get(ctx, req.URL.Host, attempt == 0)
		if err != nil {
			closeBody(body)
			return nil, err
		}
		resp, err := c.send(pc, req, body, extra, info)
		if err == nil {
			return resp, nil
		}
		pc.close()
		if errors.Is(err, errIdleUnclean) {
			attempt-- // nothing was sent: take the next idle connection, or dial
			continue
		}
		var re errRetryable
		if attempt == 0 && errors.As(err, &re) && pc.reused && replayable(req) && ctx.Err() == nil {
			if body == nil || !pc.bodyTaken {
				continue // the body, if any, was never read: it goes again as it is
			}
			// net/http's rewindBody: the body was read (and closed by its
			// writer); GetBody gives it again.
			if body, err = req.GetBody(); err != nil {
				return nil, err
			}
			continue
		}
		if !pc.bodyTaken {
			closeBody(body)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			// Both wrapped: the server may have cancelled the context
			// because the body failed (a stall, the route timeout), and
			// the caller tells those apart from a client that left.
			return nil, fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return nil, err
	}
}

func closeBody(body io.ReadCloser) {
	if body != nil {
		_ = body.Close()
	}
}

// replayable: net/http's rule for resending after a stale connection
// (Request.isReplayable): an idempotent method, or an Idempotency-Key,
// and no body, or one that GetBody can give again.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header["Idempotency-Key"] != nil || req.Header["X-Idempotency-Key"] != nil
}

// send writes req, with body (nil: none), on pc and reads the response
// head. On error the caller closes pc; a body writer has ended by then.
func (c *h1Client) send(pc *h1Conn, req *http.Request, body io.ReadCloser, extra headBlock, info Informer) (*http.Response, error) {
	var cw cancelWatch
	cw.start(req.Context(), pc)
	ra := new(respAlloc)
	pc.bodyTaken, pc.werr = false, nil
	var resp *http.Response
	var err error
	if body == nil {
		resp, err = c.sendHead(pc, req, extra, info, ra)
	} else {
		resp, err = c.sendWithBody(pc, req, body, extra, info, ra)
	}
	if err != nil {
		cw.release()
		if pc.bodyTaken {
			pc.close() // unblocks the body writer's write, if it is in one
			var be bodyError
			if errors.As(pc.joinWriter(), &be) {
				err = be.err // the body's own failure comes first, as in net/http
			}
		}
		return nil, err
	}
	reusable := !resp.Close && !req.Close
	if resp.Body == http.NoBody && !pc.writing {
		if cw.release() && reusable && pc.br.Buffered() == 0 && pc.werr == nil {
			c.put(pc)
		} else {
			pc.close()
		}
		return resp, nil
	}
	// A body writer still at work ends with the response's body
	// (h1Body.finish), even an empty one.
	ra.body = h1Body{c: c, pc: pc, body: resp.Body, cw: cw, reusable: reusable}
	resp.Body = &ra.body
	return resp, nil
}

// closeOnCancel is a request context that closes a connection when it is
// cancelled without context.AfterFunc's allocations (h1server's request
// contexts are one). CloseOnCancel reports false, registering nothing,
// when it cannot take c; ReleaseClose reports whether c was still
// registered, not closed by cancellation.
type closeOnCancel interface {
	CloseOnCancel(c io.Closer) bool
	ReleaseClose(c io.Closer) bool
}

// cancelWatch closes a connection when the request's context is
// cancelled, which unblocks whatever it is doing (a deadline could be
// undone by the next SetDeadline), until released.
type cancelWatch struct {
	coc  closeOnCancel // the context's own, or nil
	pc   *h1Conn
	stop func() bool // context.AfterFunc's, or nil
}

func (w *cancelWatch) start(ctx context.Context, pc *h1Conn) {
	if coc, ok := ctx.(closeOnCancel); ok && coc.CloseOnCancel(pc) {
		w.coc, w.pc = coc, pc
		return
	}
	if ctx.Done() != nil {
		w.stop = context.AfterFunc(ctx, pc.close)
	}
}

// release ends the watch; it reports whether the connection is still
// open (not closed by cancellation).
func (w *cancelWatch) release() bool {
	switch {
	case w.coc != nil:
		return w.coc.ReleaseClose(w.pc)
	case w.stop != nil:
		return w.stop()
	}
	return true
}

func (c *h1Client) sendHead(pc *h1Conn, req *http.Request, extra headBlock, info Informer, ra *respAlloc) (*http.Response, error) {
	if err := writeHead(pc.bw, req, extra, noBody, ""); err != nil {
		return nil, err
	}
	// Armed before the flush, which may wait for the response itself. The
	// timeout then runs from just before the request's last write, not
	// just after it: the same, unless that write blocks on a full socket.
	if c.headerTimeout > 0 && pc.readDeadline.IsZero() {
		c.armHeaderDeadline(pc, c.now()) // a reused connection's was armed by popIdle
	}
	if pc.reused && (pc.br.Buffered() > 0 || pc.tlsIdleUnclean()) {
		return nil, errIdleUnclean // buffered: cannot happen, put takes only empty readers
	}
	// The flush may check the idle connection and wait for the response
	// (writeAndAwait).
	pc.await = pc.raw != nil
	err := pc.bw.Flush()
	pc.await = false
	if err != nil {
		if errors.Is(err, errIdleUnclean) {
			return nil, err
		}
		return nil, staleErr(err)
	}
	return c.readResponse(pc, req, info, ra)
}

// readResponse reads the response head to req: 1xx responses, passed to
// info or req's httptrace, then the final one.
func (c *h1Client) readResponse(pc *h1Conn, req *http.Request, info Informer, ra *respAlloc) (*http.Response, error) {
	var trace *httptrace.ClientTrace
	if info == nil {
		trace = httptrace.ContextClientTrace(req.Context())
	}
	reserve := 0
	if r, ok := info.(FieldReserver); ok {
		reserve = r.ReserveFields()
	}
	sup, _ := info.(HeaderSupplier)
	for n1xx := 0; ; {
		pc.lr.n = c.maxHead // each head has the whole bound, as in net/http
		if _, err := pc.br.Peek(1); err != nil {
			if n1xx == 0 {
				return nil, staleErr(err)
			}
			return nil, err
		}
		resp, simple := readSimpleHead(pc.br, req, &pc.cl, ra, reserve, sup, c.maxFields)
		if !simple {
			var err error
			if resp, err = pc.readFull(req, c.maxFields); err != nil {
				if !pc.readDeadline.IsZero() && !c.now().Before(pc.readDeadline) {
					// The deadline cut the head short: bufio hands the
					// parser what arrived ("HTTP/1.1 2") without the
					// deadline's error. A timeout, not a bad response.
					err = headTimeout{err}
				}
				return nil, err
			}
		}
		code := resp.StatusCode
		if code < 100 {
			return nil, fmt.Errorf("upstream sent status %d", code)
		}
		if code >= 200 {
			pc.lr.n = -1
			if pc.bodyTaken {
				pc.finalArrived() // the header timeout, if the writer armed it
			}
			// The body may take as long as it takes, unless it is all
			// in the buffer already and never reads the socket.
			if !pc.readDeadline.IsZero() && !bodyBuffered(resp, pc.br) {
				pc.readDeadline = time.Time{}
				pc.nc.SetReadDeadline(time.Time{})
			}
			return resp, nil
		}
		// Informational: no 101 (upgrades never come here), at most
		// Max1xx, each passed on (ReverseProxy forwards 103 Early Hints).
		if code == http.StatusSwitchingProtocols {
			return nil, errors.New("upstream switched protocols without an upgrade request")
		}
		if n1xx++; n1xx > Max1xx {
			return nil, ErrTooMany1xx
		}
		if info != nil {
			if err := info.Informational(code, resp.Header); err != nil {
				return nil, err
			}
		} else if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
		}
	}
}

// readFull is http.ReadResponse, but for one field: a Connection field
// that says "close", which ReadResponse deletes whole (net/http's
// shouldClose), is put back, so that the fields it names are taken out as
// hop-by-hop (RFC 9110 §7.6.1) and never reach the client. An upstream
// saying "Connection: close, X-Internal" means X-Internal for the proxy
// alone. The head's bytes are recorded as they are read: those already
// buffered, then what ReadResponse reads.
//
// A head of more than maxFields fields is refused (ErrTooManyFields).
func (pc *h1Conn) readFull(req *http.Request, maxFields int) (*http.Response, error) {
	bp := headBufs.Get().(*[]byte)
	buffered, _ := pc.br.Peek(pc.br.Buffered())
	pc.lr.rec = append((*bp)[:0], buffered...)
	pc.lr.recording = true
	resp, err := http.ReadResponse(pc.br, req)
	pc.lr.recording = false
	rec := pc.lr.rec
	pc.lr.rec = nil
	if err == nil && resp.Close && resp.ProtoAtLeast(1, 1) && resp.Header["Connection"] == nil {
		if vv := connectionField(rec); vv != nil {
			resp.Header["Connection"] = vv
		}
	}
	putHeadBuf(bp, rec)
	if err == nil && CountFields(resp.Header) > maxFields {
		resp.Body.Close()
		return nil, ErrTooManyFields
	}
	return resp, err
}

// CountFields is the number of fields in h (each value is one).
func CountFields(h http.Header) int {
	n := 0
	for _, vv := range h {
		n += len(vv)
	}
	return n
}

// headBufs holds the buffers response heads are recorded in (readFull,
// headRecorder): a connection keeps none while it idles.
var headBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// putHeadBuf returns rec, recorded in *bp's buffer, to headBufs, unless
// it grew past what is worth keeping.
func putHeadBuf(bp *[]byte, rec []byte) {
	if cap(rec) <= 64<<10 {
		*bp = rec[:0]
		headBufs.Put(bp)
	}
}

// connectionField is the Connection field of the response head at the
// start of raw, read as http.ReadResponse reads it (textproto), or nil.
func connectionField(raw []byte) []string {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	if _, err := tp.ReadLine(); err != nil {
		return nil
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil
	}
	return h["Connection"]
}

// armHeaderDeadline gives pc the response header timeout's deadline. A
// deadline the previous response left on it (see sendHead) is kept while
// it is within an eighth of the timeout (at most 1s) of a fresh one: on a
// busy connection, no timer update per request.
// now is the time now as base plus the monotonic time since: one clock
// read where time.Now makes two. It stamps idle connections and arms
// read deadlines, which compare monotonic readings; its wall reading
// may differ from time.Now's by adjustments of the wall clock since base.
func (c *h1Client) now() time.Time { return c.base.Add(time.Since(c.base)) }

func (c *h1Client) armHeaderDeadline(pc *h1Conn, now time.Time) {
	if pc.readDeadline.Sub(now) < c.headerTimeout-min(c.headerTimeout/8, time.Second) {
		pc.readDeadline = now.Add(c.headerTimeout)
		pc.nc.SetReadDeadline(pc.readDeadline)
	}
}

// bodyBuffered reports whether resp's body is entirely in br already: no
// body, or a declared length that br holds.
func bodyBuffered(resp *http.Response, br *bufio.Reader) bool {
	return resp.Body == http.NoBody || resp.ContentLength >= 0 && int64(br.Buffered()) >= resp.ContentLength
}

// headBlock is a header block written after a request's header map: b,
// validated by the caller; with all, it holds every field and the map is
// not written (Pool.SendDirectBlock).
type headBlock struct {
	b   []byte
	all bool
}

// fieldMap is the header map writeHead writes: req's, or none when
// extra holds every field.
func fieldMap(req *http.Request, extra headBlock) http.Header {
	if extra.all {
		return nil
	}
	return req.Header
}

// noBody is writeHead's length for a request without a body.
const noBody = -2

// writeHead writes the request line and header block, as net/http's
// Request.write would (minus sorting): Host from req.Host or the URL,
// User-Agent only when set and not empty, no framing or trailer headers
// from the map, then the framing of the body, whose length is cl: with
// none (noBody), Content-Length: 0 for the methods that carry a body; a
// length, Content-Length; -1, Transfer-Encoding: chunked and trailer,
// the Trailer field's value (empty: none). extra's block follows; when
// it holds every field (extra.all), req.Header is not written.
//
// Everything is checked before the first byte is written: a head larger
// than the write buffer is flushed while it is written, so no part of a
// refused request may be written at all. A write error is then the
// connection's (staleErr decides whether it may be retried).
func writeHead(w *bufio.Writer, req *http.Request, extra headBlock, cl int64, trailer string) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	// Checked before its zone is removed, as net/http checks it: "[% ]"
	// is invalid, and would be the valid "[]" after.
	if !httpguts.ValidHostHeader(host) {
		return errors.New("invalid Host header for the upstream request")
	}
	host = removeZone(host)
	if req.Method == "" || strings.IndexFunc(req.Method, func(r rune) bool { return !httpguts.IsTokenRune(r) }) >= 0 {
		return fmt.Errorf("invalid method %q", req.Method)
	}
	// The path is escaped as it is written (EscapedPath); the query and an
	// opaque target go as they are. A control byte there (net/http's
	// Request.Write refuses it too) or a space would end the request
	// line early: "GET /x?a b HTTP/1.1" is a different request line to
	// each parser that reads it. An HTTP/1.1 request line cannot carry
	// one, but an HTTP/2 :path or a rewrite could.
	if !httpsyntax.TargetBytes(req.URL.RawQuery) || !httpsyntax.TargetBytes(req.URL.Opaque) {
		return errors.New("invalid request target for the upstream request: a space or control byte")
	}
	for k, vv := range fieldMap(req, extra) {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpsyntax.ValidFieldValue(v) {
				return fmt.Errorf("invalid header field value for %q", k)
			}
		}
	}
	if err := writeHeadChecked(w, req, host, extra, cl, trailer); err != nil {
		return staleErr(err)
	}
	return nil
}

// removeZone removes an IPv6 zone from a Host value ("[fe80::1%en0]:8080"
// becomes "[fe80::1]:8080"), as net/http's request writer does: a zone
// means something only on the sending host.
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndex(host, "]")
	if i < 0 {
		return host
	}
	j := strings.LastIndex(host[:i], "%")
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}

// writeHeadChecked writes a head that writeHead has checked.
func writeHeadChecked(w *bufio.Writer, req *http.Request, host string, extra headBlock, cl int64, trailer string) error {
	w.WriteString(req.Method)
	w.WriteByte(' ')
	if u := req.URL; u.Opaque == "" && u.RawPath == "" && u.Path != "" && u.Path[0] == '/' && !needsEscape(u.Path) {
		// The usual case, nothing to escape: RequestURI's bytes, without
		// its concatenation (an allocation when there is a query).
		w.WriteString(u.Path)
		if u.ForceQuery || u.RawQuery != "" {
			w.WriteByte('?')
			w.WriteString(u.RawQuery)
		}
	} else {
		w.WriteString(req.URL.RequestURI())
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vv := range fieldMap(req, extra) {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
			continue
		case "User-Agent":
			if len(vv) > 0 && vv[0] != "" {
				w.WriteString("User-Agent: ")
				w.WriteString(textproto.TrimString(vv[0]))
				w.WriteString("\r\n")
			}
			continue
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(textproto.TrimString(v))
			w.WriteString("\r\n")
		}
	}
	switch {
	case cl >= 0:
		var num [20]byte
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(num[:0], cl, 10))
		w.WriteString("\r\n")
	case cl == -1:
		w.WriteString("Transfer-Encoding: chunked\r\n")
		if trailer != "" {
			w.WriteString("Trailer: ")
			w.WriteString(trailer)
			w.WriteString("\r\n")
		}
	case req.Method == http.MethodPost, req.Method == http.MethodPut, req.Method == http.MethodPatch:
		w.WriteString("Content-Length: 0\r\n")
	}
	if req.Close {
		w.WriteString("Connection: close\r\n")
	}
	w.Write(extra.b)
	_, err := w.WriteString("\r\n")
	return err
}

// AppendFields appends h's fields to b as writeHead writes a request's
// header map: each value trimmed, on a line of its own; User-Agent's
// first value only, and only when it is not empty; no Host,
// Content-Length, Transfer-Encoding, Trailer or Connection field (the
// writer writes those from the request). A field omit reports true for
// is left out, unchecked. It reports false, with b as it was, when a
// name or value is not valid: sent through the map instead, the request
// is refused as before. The result is a block for SendDirectBlock.
func AppendFields(b []byte, h http.Header, omit func(string) bool) ([]byte, bool) {
	start := len(b)
	for k, vv := range h {
		if omit(k) {
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return b[:start], false
		}
		for _, v := range vv {
			if !httpsyntax.ValidFieldValue(v) {
				return b[:start], false
			}
		}
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
			continue
		case "User-Agent":
			if len(vv) > 0 && vv[0] != "" {
				b = AppendField(b, k, vv[0])
			}
			continue
		}
		for _, v := range vv {
			b = AppendField(b, k, v)
		}
	}
	return b, true
}

// AppendField appends one field line, "k: v\r\n", its value trimmed, as
// the request writer writes it: for header blocks (AppendFields, and a
// caller's own fields), whose names and values the caller has checked.
func AppendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, textproto.TrimString(v)...)
	return append(b, "\r\n"...)
}

// needsEscape reports whether url.URL.EscapedPath would change p, so the
// upstream gets the same bytes as through the Transport: anything but
// letters, digits, "-_.~" and "$&+,/:;=@" is escaped.
func needsEscape(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '/', c == ':', c == '@',
			c == '$', c == '&', c == '+', c == ',', c == ';', c == '=':
		default:
			return true
		}
	}
	return false
}

// h1Body is a response body; its end decides the connection's fate.
type h1Body struct {
	c        *h1Client
	pc       *h1Conn
	body     io.ReadCloser // the response's body; never closed (http.ReadResponse's Close drains)
	cw       cancelWatch
	reusable bool
	done     bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

// Close before the end closes the connection: draining an unknown rest
// could take longer than a new connection.
func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(eof bool) {
	b.done = true
	clean := b.cw.release() && eof && b.reusable && b.pc.br.Buffered() == 0
	if b.pc.bodyTaken {
		clean = b.pc.endWriter(clean) // the request's body writer ends here
	}
	if clean {
		b.c.put(b.pc)
	} else {
		b.pc.close()
	}
	b.pc = nil
	b.cw = cancelWatch{} // the response may outlive the request (an adopted header keeps it)
}

// get returns the most recently idle live connection to addr (when reuse
// is set), or dials.
func (c *h1Client) get(ctx context.Context, addr string, reuse bool) (*h1Conn, error) {
	if reuse {
		// Whether the server closed it, or sent bytes, while it sat idle
		// is checked as the request is written (writeAndAwait).
		if pc := c.popIdle(addr); pc != nil {
			pc.reused = true
			return pc, nil
		}
	}
	nc, err := c.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if c.tls == nil {
		return newH1Conn(nc, addr), nil
	}
	probe := &probeConn{Conn: nc}
	tc := tls.Client(probe, c.tlsConfig(addr))
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	pc := newH1Conn(tc, addr)
	pc.probe = probe
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.tcp = raw
		}
	}
	return pc, nil
}

// tlsIdleUnclean reports whether an idle TLS connection about to be
// reused holds bytes no request asked for, or was ended by the server.
// Plain connections are checked by writeAndAwait's peek as the request
// is written; a TLS connection may also hold them decrypted, or as whole
// records, inside crypto/tls, so first a read that cannot wait (the
// socket under crypto/tls answers errProbe at once) takes what crypto/tls
// holds, then the socket is peeked at.
//
// Any byte on the socket counts, whatever the record: a session ticket
// or a key update cannot be told from application data without reading
// it, and application data read as the next response would go to the
// wrong client. Session tickets do not trip it: TLS 1.3 servers send
// them ahead of the first response, and reading that response consumes
// them (TestTLSUpstreamReusesAfterSessionTickets). A record that arrives
// while the connection is idle costs a new connection, never a
// misattributed response.
func (pc *h1Conn) tlsIdleUnclean() bool {
	if pc.probe == nil {
		return false
	}
	pc.probe.probing = true
	n, err := pc.nc.Read(pc.peekBuf[:])
	pc.probe.probing = false
	if n > 0 || err != errProbe {
		return true // application data, a close_notify, an error
	}
	return pc.tcp != nil && pc.tcpPending()
}

// probeConn is the socket under an upstream TLS connection: while
// probing, its reads fail at once with errProbe instead of reading, so
// that a read of the TLS connection returns only what crypto/tls holds.
// probing belongs to the connection's owner, as its reads do.
type probeConn struct {
	net.Conn
	probing bool
}

func (c *probeConn) Read(p []byte) (int, error) {
	if c.probing {
		return 0, errProbe
	}
	return c.Conn.Read(p)
}

// headTimeout is a response head cut short by the response header
// timeout: a net.Error that times out, so the engine answers 504.
type headTimeout struct{ err error }

func (e headTimeout) Error() string {
	return "upstream response header timeout (the head so far: " + e.err.Error() + ")"
}
func (e headTimeout) Unwrap() error { return e.err }
func (headTimeout) Timeout() bool   { return true }
func (headTimeout) Temporary() bool { return false }

// errProbe is what a probing read returns: a temporary net.Error, which
// crypto/tls passes on without keeping it as the connection's error (as
// it does a read deadline's), so later reads go on.
var errProbe error = probeError{}

type probeError struct{}

func (probeError) Error() string   { return "lb: probing an idle TLS connection" }
func (probeError) Timeout() bool   { return true }
func (probeError) Temporary() bool { return true }

// tlsConfig is the pool's TLS configuration for a connection to addr:
// as http.Transport does, the server name checked is the target's host
// unless the configuration names one.
func (c *h1Client) tlsConfig(addr string) *tls.Config {
	if c.tls.ServerName != "" {
		return c.tls
	}
	cfg := c.tls.Clone()
	host := addr // the Transport's tlsHost: the address without its port
	if i := strings.LastIndex(host, ":"); i > strings.LastIndex(host, "]") {
		host = host[:i]
	}
	cfg.ServerName = host
	return cfg
}

func newH1Conn(nc net.Conn, addr string) *h1Conn {
	pc := &h1Conn{nc: nc, addr: addr}
	pc.bw = bufio.NewWriterSize(connWriter{pc}, 4<<10)
	pc.lr = headLimit{nc: nc, n: -1}
	pc.br = bufio.NewReaderSize(&pc.lr, 8<<10)
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.raw, pc.sendFn = raw, pc.writeWait
		}
	}
	return pc
}

// popIdle takes the most recently idle connection to addr that has not
// outlived idleTimeout; nil when there is none.
func (c *h1Client) popIdle(addr string) *h1Conn {
	now := c.now()
	var stale []*h1Conn
	c.mu.Lock()
	list := c.idle[addr]
	n := len(list)
	if n == 0 {
		c.mu.Unlock()
		return nil
	}
	pc := list[n-1]
	list[n-1] = nil
	c.idle[addr] = list[:n-1]
	if now.Sub(pc.idleSince) < c.idleTimeout {
		c.mu.Unlock()
		if c.headerTimeout > 0 {
			// Before the request's write: its RawConn.Read fails on an
			// expired deadline.
			c.armHeaderDeadline(pc, now)
		}
		return pc
	}
	// The newest is stale, so all are.
	stale = append(list[:n-1:n-1], pc)
	delete(c.idle, addr)
	c.mu.Unlock()
	for _, pc := range stale {
		pc.close()
	}
	return nil
}

// put makes pc idle, or closes it when the list for its address is full.
func (c *h1Client) put(pc *h1Conn) {
	c.mu.Lock()
	pc.idleSince = c.now() // under the lock, so each list stays in time order
	list := c.idle[pc.addr]
	if c.closed || len(list) >= c.maxIdle {
		c.mu.Unlock()
		pc.close()
		return
	}
	c.idle[pc.addr] = append(list, pc)
	if c.sweep == nil {
		c.sweep = time.AfterFunc(c.idleTimeout, c.sweepIdle)
	}
	c.mu.Unlock()
}

// sweepIdle closes connections idle longer than idleTimeout, so a target
// that gets no more requests does not keep sockets open, and re-arms
// itself while any connection is idle.
func (c *h1Client) sweepIdle() {
	now := c.now()
	var stale []*h1Conn
	next := time.Duration(-1)
	c.mu.Lock()
	for addr, list := range c.idle {
		i := 0
		for i < len(list) && now.Sub(list[i].idleSince) >= c.idleTimeout {
			i++
		}
		stale = append(stale, list[:i]...)
		if i == len(list) {
			delete(c.idle, addr)
			continue
		}
		c.idle[addr] = append(list[:0:0], list[i:]...)
		if d := c.idleTimeout - now.Sub(list[i].idleSince); next < 0 || d < next {
			next = d
		}
	}
	if next < 0 || c.closed {
		c.sweep = nil
	} else {
		c.sweep.Reset(next)
	}
	c.mu.Unlock()
	for _, pc := range stale {
		pc.close()
	}
}

// CloseIdleConnections closes every idle connection; connections in use
// close when their response ends. The client is not used again.
func (c *h1Client) CloseIdleConnections() {
	c.mu.Lock()
	c.closed = true
	idle := c.idle
	c.idle = map[string][]*h1Conn{}
	if c.sweep != nil {
		c.sweep.Stop()
		c.sweep = nil
	}
	c.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.close()
		}
	}
}
