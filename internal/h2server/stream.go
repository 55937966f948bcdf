package h2server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"

	"gatehouse/internal/httpsyntax"
)

// stream is one request and its response. Its fields are guarded by
// its connection's mu unless noted.
type stream struct {
	c      *conn
	id     uint32
	cond   sync.Cond    // on c.mu: broadcast when body data arrives or the stream ends
	ctx    streamCtx    // the request's context; st.cancelLocked cancels it, and closes closer
	reqv   http.Request // the request (st.req points here)
	url    url.URL      // the request's URL (reqv.URL points here)
	closer io.Closer    // guarded by c.mu: ctx's CloseOnCancel
	// header is the map the request's fields went into, whatever the
	// handler does with Request.Header: the only one given back for
	// reuse (keepHeader).
	header http.Header
	// vals holds the first values of up to len(vals) of the request's
	// fields: the header's value slices, in the stream's allocation.
	vals [8]string

	remoteClosed bool // END_STREAM received (or reset)
	localClosed  bool // END_STREAM sent (or reset)
	closed       bool // out of c.streams
	resetSent    bool
	gotTrailers  bool
	sentFinal    bool  // the final (non-1xx) response header is appended
	queued       bool  // in c.pending: its handler has not started
	closeErr     error // why the stream closed, for writes after it

	sendWindow int32
	inflow     inflow

	// The request body.
	declLen  int64  // declared Content-Length, or -1
	gotBytes int64  // DATA bytes received
	body     []byte // received, not yet read
	bodyOff  int
	bodyErr  error       // io.EOF or the error reads return once body is drained
	trailer  http.Header // the client's trailers, received
	reqTrail http.Header // the request's Trailer map (declared names)
	readDL   time.Time   // handler's read deadline
	writeDL  time.Time   // handler's write deadline
	// writeWaiting: the handler waits to write (waitWriteLocked), and
	// a new write deadline must wake it.
	writeWaiting bool
	handlerFn    http.HandlerFunc // nil: the connection's handler

	req *http.Request
	// The response writer and the request body live in the stream: one
	// allocation for the three.
	rw      responseWriter
	reqBody requestBody
}

// processHeaders handles a HEADERS frame (with its CONTINUATIONs): a
// new request, or a request's trailers.
func (c *conn) processHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 != 1 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st := c.streams[id]; st != nil {
		if st.resetSent {
			return nil
		}
		if st.remoteClosed {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
		}
		return c.processTrailers(st, f)
	}
	if id <= c.maxClientID {
		if c.resetRecently(id) {
			return nil // the client's trailers, sent before it saw our reset
		}
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.maxClientID = id
	if uint32(len(c.streams))+1 > c.srv.cfg.MaxConcurrentStreams {
		if c.unackedSettings == 0 {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}

	st := &stream{
		c:          c,
		id:         id,
		sendWindow: c.initialSendWindow,
		inflow:     inflow{avail: recvWindow},
	}
	st.cond.L = &c.mu
	st.ctx.Context, st.ctx.st = c.baseCtx, st
	req, fn, err := c.newRequest(st, f)
	if err != nil {
		return err // nothing saw the context: no cancellation to make
	}
	st.req = req
	st.handlerFn = fn
	st.rw.st = st
	if f.StreamEnded() {
		st.remoteClosed = true
		st.bodyErr = io.EOF
	}
	// The idle timer stops only now that a stream exists: a HEADERS
	// refused above makes none, so nothing would re-arm it
	// (idleCheckLocked runs when a stream closes), and one malformed
	// request per connection would defeat IdleTimeout.
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.streams[id] = st
	return c.scheduleHandlerLocked(st)
}

// newRequest builds the request of a new stream as net/http's HTTP/2
// server does. Malformed requests are stream errors; a header list over
// the limit is answered 431, connection-specific fields 400: the
// handler returned is nil unless it is one of those answers.
func (c *conn) newRequest(st *stream, f *http2.MetaHeadersFrame) (*http.Request, http.HandlerFunc, error) {
	protoErr := http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
	// One pass over the pseudo-fields (readHeaderBlock refused repeated
	// ones), where PseudoValue scans them once per name.
	var method, scheme, authority, path string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":authority":
			if hf.Value == "" {
				// Present, it is the target's authority, and Host may
				// not stand in for it (RFC 9113 §8.3.1); an http(s) URI
				// with an empty host is invalid (RFC 9110 §4.2.1).
				// net/http reads an empty one as absent.
				return nil, nil, protoErr
			}
			authority = hf.Value
		case ":path":
			path = hf.Value
		case ":protocol":
			if hf.Value != "" {
				return nil, nil, protoErr // extended CONNECT is not offered
			}
		}
	}
	isConnect := method == http.MethodConnect
	if isConnect {
		if path != "" || scheme != "" || authority == "" {
			return nil, nil, protoErr
		}
	} else if method == "" || path == "" || (scheme != "https" && scheme != "http") {
		return nil, nil, protoErr
	}

	regular := f.RegularFields()
	header := c.srv.takeHeader(len(regular))
	st.header = header
	// One array holds every field's first value, as textproto's reader
	// does: a slice each would be an allocation per field. Capped at
	// one, a slice that gets a second value is copied by append, never
	// written into its neighbour.
	var vals []string
	if len(regular) <= len(st.vals) {
		vals = st.vals[:len(regular)]
	} else {
		vals = make([]string, len(regular))
	}
	for i, hf := range regular {
		k := c.canonical(hf.Name)
		if vv, ok := header[k]; ok {
			header[k] = append(vv, hf.Value)
			continue
		}
		vals[i] = hf.Value
		header[k] = vals[i : i+1 : i+1]
	}

	needsContinue := httpguts.HeaderValuesContainsToken(header["Expect"], "100-continue")
	if needsContinue {
		delete(header, "Expect")
	}
	if cookies := header["Cookie"]; len(cookies) > 1 {
		header["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	var trailer http.Header
	for _, v := range header["Trailer"] {
		for _, key := range strings.Split(v, ",") {
			key = textproto.CanonicalMIMEHeaderKey(textproto.TrimString(key))
			switch key {
			case "Transfer-Encoding", "Trailer", "Content-Length":
			default:
				if trailer == nil {
					trailer = make(http.Header)
				}
				trailer[key] = nil
			}
		}
	}
	delete(header, "Trailer")

	if host := header["Host"]; len(host) == 1 {
		// The Host field may be sent, but must match :authority.
		if authority == "" {
			authority = host[0]
		} else if host[0] != authority {
			return nil, nil, protoErr
		}
		delete(header, "Host")
	} else if len(host) > 1 {
		return nil, nil, protoErr
	}
	if strings.IndexByte(authority, '@') != -1 && (scheme == "http" || scheme == "https") {
		return nil, nil, protoErr // userinfo (RFC 9113 §8.3.1)
	}
	if authority != "" && !httpguts.ValidHostHeader(authority) {
		return nil, nil, protoErr
	}

	var u *url.URL
	var requestURI string
	if isConnect {
		u = &url.URL{Host: authority}
		requestURI = authority
	} else {
		if path[0] != '/' && path != "*" {
			return nil, nil, protoErr
		}
		// absolute-path ["?" query] has no space (RFC 9113 §8.3.1, RFC
		// 3986 §3). The query goes upstream as it is, and over HTTP/1.1
		// "GET /x?a /admin HTTP/1.1" is a request line each parser
		// splits its own way. An HTTP/1.1 request line cannot carry one.
		if strings.IndexByte(path, ' ') >= 0 {
			return nil, nil, protoErr
		}
		// What url.ParseRequestURI makes of it, in the stream's own
		// URL: no allocation for the common path.
		if !httpsyntax.ParseTarget(path, &st.url) {
			return nil, nil, protoErr
		}
		u = &st.url
		requestURI = path
	}

	var tlsState = c.tlsState
	if scheme != "https" {
		tlsState = nil
	}
	body := &st.reqBody
	*body = requestBody{st: st, needsContinue: needsContinue}
	// The request lives in the stream: WithContext's copy, inlined and
	// dereferenced at once, stays on the stack, and the request and its
	// copy cost no allocation of their own.
	st.reqv = *(&http.Request{
		Method:     method,
		URL:        u,
		RemoteAddr: c.remoteAddr,
		Header:     header,
		RequestURI: requestURI,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		TLS:        tlsState,
		Host:       authority,
		Body:       body,
		Trailer:    trailer,
	}).WithContext(&st.ctx)
	req := &st.reqv
	st.reqTrail = trailer
	// Content-Length must be one number, and the body's length
	// (RFC 9113 §8.1.1): a handler (a proxy) shown another is what
	// request smuggling is made of. net/http takes the first value and
	// serves a body-less request that declares one.
	st.declLen = -1
	if vv, ok := header["Content-Length"]; ok {
		cl, err := strconv.ParseUint(vv[0], 10, 63)
		if err != nil {
			return nil, nil, protoErr
		}
		for _, v := range vv[1:] {
			if v != vv[0] {
				return nil, nil, protoErr
			}
		}
		if len(vv) > 1 {
			header["Content-Length"] = vv[:1]
		}
		st.declLen = int64(cl)
	}
	if f.StreamEnded() {
		if st.declLen > 0 {
			return nil, nil, protoErr
		}
		st.declLen = 0
	}
	req.ContentLength = st.declLen

	// nil: the connection's handler. The method value c.h.ServeHTTP would
	// be a closure allocated per request.
	var fn http.HandlerFunc
	if f.Truncated {
		fn = headerListTooLong
	} else if err := checkRequestHeaders(header); err != nil {
		fn = func(w http.ResponseWriter, _ *http.Request) { http.Error(w, err.Error(), http.StatusBadRequest) }
	}
	return req, fn, nil
}

// connHeaders are the connection-specific fields HTTP/2 forbids
// (RFC 9113 §8.2.2).
var connHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}

func checkRequestHeaders(h http.Header) error {
	for _, k := range connHeaders {
		if _, ok := h[k]; ok {
			return fmt.Errorf("request header %q is not valid in HTTP/2", k)
		}
	}
	te := h["Te"]
	if len(te) > 0 && (len(te) > 1 || (te[0] != "trailers" && te[0] != "")) {
		return errors.New(`request header "TE" may only be "trailers" in HTTP/2`)
	}
	return nil
}

func headerListTooLong(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
	_, _ = io.WriteString(w, "<h1>HTTP Error 431</h1><p>Request Header Field(s) Too Large</p>")
}

// processTrailers takes the HEADERS frame that ends a request body.
func (c *conn) processTrailers(st *stream, f *http2.MetaHeadersFrame) error {
	if st.gotTrailers {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	st.gotTrailers = true
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	if st.reqTrail != nil {
		for _, hf := range f.RegularFields() {
			k := c.canonical(hf.Name)
			if !httpguts.ValidTrailerHeader(k) {
				return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
			}
			if st.trailer == nil {
				st.trailer = make(http.Header)
			}
			st.trailer[k] = append(st.trailer[k], hf.Value)
		}
	}
	c.endRequestBodyLocked(st)
	return nil
}

// scheduleHandlerLocked runs st's handler, or queues it while
// MaxConcurrentStreams handlers run (streams the client reset still hold
// their handler's slot until it returns). A client that piles up more
// than four times that is resetting streams to get past the limit, and
// loses the connection (net/http's rule against rapid reset).
func (c *conn) scheduleHandlerLocked(st *stream) error {
	limit := int(c.srv.cfg.MaxConcurrentStreams)
	if c.handlers < limit {
		c.startHandlerLocked(st)
		return nil
	}
	if len(c.pending) > 4*limit {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	st.queued = true
	c.pending = append(c.pending, st)
	return nil
}

// maxIdleWorkers bounds the handler goroutines a connection keeps
// waiting for its next stream.
const maxIdleWorkers = 16

// startHandlerLocked counts st's handler as running and runs it on one of
// the connection's idle handler goroutines, or on a new one.
//
// A goroutine whose handler has returned waits for the connection's next
// stream: starting a goroutine per stream, growing its stack (growStack)
// and ending it was 5 % of the proxy's CPU over HTTP/2. A connection
// under load has nothing in progress for moments at a time (it answered
// every stream the client had sent, the next ones are on their way), so
// the goroutines are let go only once it has had nothing in progress for
// Config.HandlerLinger, or ends: an idle connection holds none.
func (c *conn) startHandlerLocked(st *stream) {
	c.handlers++
	if n := len(c.idleWorkers); n > 0 {
		w := c.idleWorkers[n-1]
		c.idleWorkers[n-1] = nil
		c.idleWorkers = c.idleWorkers[:n-1]
		w <- st // buffered, and empty while the goroutine is in the list
		return
	}
	go c.handlerLoop(st)
}

// handlerLoop runs st's handler, then each stream startHandlerLocked
// hands it, until it is let go (releaseWorkersLocked) or not kept.
func (c *conn) handlerLoop(st *stream) {
	growStack(0)
	var next chan *stream
	for {
		c.runHandler(st)
		c.mu.Lock()
		if c.closed || len(c.idleWorkers) >= maxIdleWorkers {
			c.mu.Unlock()
			return
		}
		if next == nil {
			next = make(chan *stream, 1)
		}
		c.idleWorkers = append(c.idleWorkers, next)
		if len(c.streams) == 0 && c.handlers == 0 {
			c.lingerWorkersLocked()
		}
		c.mu.Unlock()
		if st = <-next; st == nil {
			return
		}
	}
}

// lingerWorkersLocked: the connection has nothing in progress; its idle
// handler goroutines end unless a stream comes within HandlerLinger.
func (c *conn) lingerWorkersLocked() {
	d := c.srv.cfg.HandlerLinger
	if d < 0 || c.closed {
		c.releaseWorkersLocked()
		return
	}
	if c.workerTimer == nil {
		c.workerTimer = time.AfterFunc(d, c.workersLingered)
		return
	}
	c.workerTimer.Reset(d)
}

// workersLingered ends the idle handler goroutines of a connection that
// still has nothing in progress (one busy again re-arms the timer when
// it next has nothing).
func (c *conn) workersLingered() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.streams) == 0 && c.handlers == 0 {
		c.releaseWorkersLocked()
	}
}

// releaseWorkersLocked ends the idle handler goroutines.
func (c *conn) releaseWorkersLocked() {
	for i, w := range c.idleWorkers {
		w <- nil
		c.idleWorkers[i] = nil
	}
	c.idleWorkers = c.idleWorkers[:0]
}

// runHandler runs st's handler on the calling goroutine (handlerLoop's),
// and ends the stream's response side once it returns or panics.
func (c *conn) runHandler(st *stream) {
	rw := &st.rw
	didPanic := true
	defer func() {
		c.mu.Lock()
		st.cancelLocked()
		c.mu.Unlock()
		if didPanic {
			e := recover()
			c.mu.Lock()
			// Not for a stream already closed (the client reset it, say):
			// resetLocked would queue a RST_STREAM for its id all the
			// same, an answer to the client's (RFC 9113 §5.4.2).
			if !st.closed {
				c.resetLocked(st.id, http2.ErrCodeInternal)
				c.flushLocked()
			}
			c.mu.Unlock()
			if e != nil && e != http.ErrAbortHandler {
				const size = 64 << 10
				buf := make([]byte, size)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.logf("http2: panic serving %v: %v\n%s", c.remoteAddr, e, buf)
			}
		} else {
			rw.handlerDone()
			st.keepHeader()
		}
		rw.release()
		c.handlerFinished(st)
	}()
	if st.handlerFn != nil {
		st.handlerFn(rw, st.req)
	} else {
		c.h.ServeHTTP(rw, st.req)
	}
	didPanic = false
}

// keepHeader gives the request's header map back to the server, after
// a handler that returned normally, when it reuses them
// (Config.ReuseRequestHeaders).
func (st *stream) keepHeader() {
	h := st.header
	st.header = nil
	if !st.c.srv.cfg.ReuseRequestHeaders || h == nil || len(h) > maxReusedFields {
		return
	}
	clear(h)
	st.c.srv.reqHeaders.Put(h)
}

// handlerStack is the stack a handler goroutine is given before the
// handler runs: a proxying handler needs more than the 8 KiB a new
// goroutine starts with.
const handlerStack = 16 << 10

// growStack grows the calling goroutine's stack to handlerStack at once,
// while it is two frames deep. Left to itself, a handler's stack grows
// where it first runs out, a dozen frames into the proxy, and that copy
// walks and adjusts every frame (runtime.copystack: 7 % of the proxy's
// CPU over HTTP/2, one growth per stream when every stream had a
// goroutine of its own). Here the copy is of two frames. The frame is
// sized so that it no longer fits in a stack of half handlerStack; i
// is an index the compiler cannot see through, so the array is kept.
// CockroachDB grows its goroutines' stacks early for the same reason
// (pkg/util/growstack).
//
//go:noinline
func growStack(i int) byte {
	var pad [handlerStack/2 + 1<<10]byte
	return pad[i%len(pad)]
}

// handlerFinished frees the handler's slot and ends the stream's
// response side.
func (c *conn) handlerFinished(st *stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers--
	if !st.closed {
		// The response is complete (or was reset); a request body still
		// coming is refused without error (RFC 9113 §8.1).
		st.localClosed = true
		if !st.remoteClosed && !st.resetSent {
			c.resetLocked(st.id, http2.ErrCodeNo)
			c.flushLocked()
		} else {
			c.closeStreamLocked(st, errHandlerComplete)
		}
	}
	for len(c.pending) > 0 && c.handlers < int(c.srv.cfg.MaxConcurrentStreams) {
		next := c.pending[0]
		c.pending[0] = nil
		c.pending = c.pending[1:]
		next.queued = false
		if next.closed {
			continue // reset before its handler started
		}
		c.startHandlerLocked(next)
	}
	if len(c.pending) == 0 {
		c.pending = nil
	}
	c.idleCheckLocked()
	c.maybeFinishLocked()
}

// idleCheckLocked restarts the idle timer when nothing is in progress.
func (c *conn) idleCheckLocked() {
	if len(c.streams) == 0 && c.handlers == 0 && !c.closed {
		// Armed here too, not only by a goroutine going idle: the last
		// handler's may not (the list is full, or it called
		// runtime.Goexit).
		if len(c.idleWorkers) > 0 {
			c.lingerWorkersLocked()
		}
		if c.idleTimer != nil {
			c.idleTimer.Reset(c.srv.cfg.IdleTimeout)
		}
	}
}

// resetLocked queues RST_STREAM for id and closes the stream if open.
// The caller writes it (flushLocked) or has it written (kickLocked).
func (c *conn) resetLocked(id uint32, code http2.ErrCode) {
	if c.closed {
		return
	}
	st := c.streams[id]
	if st != nil {
		if st.resetSent {
			return
		}
		st.resetSent = true
		if !st.remoteClosed {
			c.rememberReset(id)
		}
	}
	c.appendRSTStream(id, code)
	c.ctrlQueued++
	if st != nil {
		var err error = errResetNo // the usual case, without an allocation
		if code != http2.ErrCodeNo {
			err = http2.StreamError{StreamID: id, Code: code}
		}
		c.closeStreamLocked(st, err)
	}
}

// recentResets is how many streams reset while the client may still
// be sending on them are remembered.
const recentResets = 32

// rememberReset notes that the server reset stream id while the client
// may still be sending on it: what it sends before it sees the reset
// (trailers, DATA) is then ignored, as RFC 9113 §5.1 asks ("closed"),
// not taken for frames on a stream long closed, which end the
// connection. net/http's server forgets a stream once reset, and kills
// the connection, other streams and all, when a client's trailers cross
// an early answer's reset.
func (c *conn) rememberReset(id uint32) {
	c.resets[c.resetNext%recentResets] = id
	c.resetNext++
}

func (c *conn) resetRecently(id uint32) bool {
	for _, r := range c.resets {
		if r == id && id != 0 {
			return true
		}
	}
	return false
}

// closeStreamLocked takes st out of the connection: its context ends,
// its body fails with err (unless already complete), blocked reads and
// writes return, and the unread body's bytes go back to the
// connection window.
func (c *conn) closeStreamLocked(st *stream, err error) {
	if st.closed {
		return
	}
	st.closed = true
	st.remoteClosed, st.localClosed = true, true
	delete(c.streams, st.id)
	// What was received stays readable (then the error), as from
	// net/http's pipe; its connection window is returned now, and
	// reads of it return none (consumedLocked).
	if unread := len(st.body) - st.bodyOff; unread > 0 {
		c.returnConnWindowLocked(unread)
	}
	if st.queued {
		// Its handler will never run (handlerFinished skips it), and
		// the stream stays in c.pending until a handler slot frees:
		// its body is not kept that long (a window per queued stream,
		// 4 x MaxConcurrentStreams of them).
		st.body, st.bodyOff = nil, 0
	}
	if st.bodyErr == nil {
		st.bodyErr = err
	}
	// Never wrapped (the callers pass a StreamError as it is); a type
	// assertion, where errors.As would move se to the heap.
	if se, ok := err.(http2.StreamError); ok {
		if se.Cause != nil {
			err = se.Cause
		} else {
			err = errStreamClosed
		}
	}
	st.closeErr = err
	st.cancelLocked()
	st.cond.Broadcast()
	c.cond.Broadcast()
	c.idleCheckLocked()
	c.maybeFinishLocked()
}

// failBodyLocked ends the request body with err (io.EOF: complete).
func (st *stream) failBodyLocked(err error) {
	if st.bodyErr == nil {
		st.bodyErr = err
	}
	st.cond.Broadcast()
}

// maxRetainedBody is the largest request-body buffer a stream keeps
// once a read has emptied it (one DATA frame of the usual size).
const maxRetainedBody = 16 << 10

// requestBody is a request's Body.
type requestBody struct {
	st            *stream
	needsContinue bool
	sawEOF        bool
	closed        bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	st := b.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.needsContinue {
		b.needsContinue = false
		// Not after the final header (net/http's golang.org/issue/14030):
		// a 1xx then would be a second header block without END_STREAM,
		// a malformed response.
		if !st.closed && !st.localClosed && !st.sentFinal {
			c.appendHeaders(st, &resHeaders{status: 100})
			c.flushLocked()
		}
	}
	if b.closed {
		return 0, errClosedBody
	}
	if b.sawEOF {
		return 0, io.EOF
	}
	var (
		timer   *time.Timer
		timerDL time.Time // the deadline timer was armed for
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if n := len(st.body) - st.bodyOff; n > 0 {
			n = copy(p, st.body[st.bodyOff:])
			st.bodyOff += n
			if st.bodyOff == len(st.body) {
				st.body, st.bodyOff = st.body[:0], 0
				// A large buffer is not kept for a stream whose handler
				// may wait long after reading (up to a window, 1 MiB,
				// per stream otherwise).
				if cap(st.body) > maxRetainedBody {
					st.body = nil
				}
			}
			c.consumedLocked(st, n)
			return n, nil
		}
		if st.bodyErr != nil {
			if st.bodyErr == io.EOF {
				b.sawEOF = true
				for k, vv := range st.trailer {
					if _, ok := st.reqTrail[k]; ok {
						st.reqTrail[k] = vv
					}
				}
			}
			return 0, st.bodyErr
		}
		if len(p) == 0 {
			return 0, nil
		}
		if !st.readDL.IsZero() {
			d := time.Until(st.readDL)
			if d <= 0 {
				return 0, fmt.Errorf("%w", os.ErrDeadlineExceeded)
			}
			// Re-armed when SetReadDeadline (from another goroutine)
			// moved the deadline during the wait: else a nearer one is
			// met only at the old one, and a later one never.
			if timer == nil || !timerDL.Equal(st.readDL) {
				if timer != nil {
					timer.Stop()
				}
				timerDL = st.readDL
				timer = time.AfterFunc(d, func() {
					c.mu.Lock()
					st.cond.Broadcast()
					c.mu.Unlock()
				})
			}
		}
		st.cond.Wait()
	}
}

// consumedLocked returns n bytes a handler read to both windows.
func (c *conn) consumedLocked(st *stream, n int) {
	if st.closed {
		return // returned when the stream closed
	}
	if inc := c.inflow.add(n); inc > 0 {
		c.appendWindowUpdate(0, uint32(inc))
	}
	if !st.remoteClosed && !st.closed {
		if inc := st.inflow.add(n); inc > 0 {
			c.appendWindowUpdate(st.id, uint32(inc))
		}
	}
	if len(c.wbuf) > 0 {
		c.flushLocked()
	}
}

// Close discards the rest of the body: its buffered bytes go back to
// the connection window, as will any that still arrive.
func (b *requestBody) Close() error {
	st := b.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if unread := len(st.body) - st.bodyOff; unread > 0 && !st.closed {
		c.returnConnWindowLocked(unread)
	}
	st.body, st.bodyOff = nil, 0
	if st.bodyErr == nil {
		st.bodyErr = errClosedBody
	}
	st.cond.Broadcast()
	return nil
}

// canonical is the canonical form of a lower-case field name from the
// wire, without allocating for common ones (a small cache per
// connection, as net/http keeps).
func (c *conn) canonical(v string) string {
	if cv, ok := commonCanonical[v]; ok {
		return cv
	}
	if cv, ok := c.canonCache[v]; ok {
		return cv
	}
	cv := http.CanonicalHeaderKey(v)
	if c.canonCache == nil {
		c.canonCache = make(map[string]string)
	}
	if len(c.canonCache) < 64 {
		c.canonCache[v] = cv
	}
	return cv
}
