package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"

	"gatehouse/internal/lb"
	"gatehouse/internal/phase"
)

// The direct attempt: what httputil.ReverseProxy does for one attempt,
// done in one pass, for the requests the pool's synchronous client writes
// itself (no upgrade, no Expect, no body of unknown length on a GET-like
// method; plain or TLS: lb.Pool.DirectFor).
// ReverseProxy clones the request and its header map, then deletes
// hop-by-hop headers one canonicalized name at a time, and copies the
// response header value by value; for the common request that was a tenth
// of Gatehouse's CPU (docs/performance.md, "Where the time goes").
//
// It keeps ReverseProxy's behaviour, which TestDirectMatchesReverseProxy
// checks side by side:
//   - hop-by-hop headers (RFC 9110 §7.6.1) and every header a Connection
//     header names are removed both ways; "TE: trailers" is kept;
//   - inbound Forwarded and X-Forwarded-For/Host/Proto are dropped before
//     the upstream-request phase sets Gatehouse's own;
//   - a query ReverseProxy would not parse is re-encoded (cleanQuery);
//   - 1xx responses (103 Early Hints) are passed on, without hop-by-hop
//     fields and at most lb.Max1xx of them (respWriter.informational);
//     a 101 without an upgrade request is an upstream error;
//   - an event stream or a body of unknown length is flushed write by
//     write; trailers are announced and passed on;
//   - a body that fails after the header was sent aborts the response
//     (http.ErrAbortHandler), so the client sees a cut, not an end;
//   - a request body goes as ReverseProxy sends it: none when its length
//     is 0 (golang/go#16036), else its length or chunks, and the trailer
//     keys it announces, without values (ReverseProxy clones the trailer
//     before the body is read, so values never reach the upstream: nor
//     do they here, which keeps fields a client sends past every header
//     filter from the upstream); the inbound body is never closed by
//     the client (directBody), as ReverseProxy's noopCloseReader.
//
// Everything else takes ReverseProxy (attempt).

// hopHeaders are removed by every proxy hop (ReverseProxy's list).
var hopHeaders = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

var teTrailers = []string{"trailers"}

// connNamed returns the canonical names listed in Connection headers, nil
// when there are none. Hop-by-hop names ("keep-alive", as nginx and
// Node.js send) are left out: they go anyway, and canonicalizing them
// would cost an allocation on nearly every response.
func connNamed(conn []string) []string {
	var names []string
	for _, f := range conn {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" && !isHopHeader(sf) {
				names = append(names, textproto.CanonicalMIMEHeaderKey(sf))
			}
		}
	}
	return names
}

// isHopHeader reports whether name is one of hopHeaders, in any case.
func isHopHeader(name string) bool {
	for _, h := range hopHeaders {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// headerAdopter is a ResponseWriter that can take a header map as its
// own instead of having it copied field by field (h1server's response).
type headerAdopter interface{ AdoptHeader(http.Header) bool }

// headerLender is a ResponseWriter that lends its own header map, while
// it is empty, for an upstream response to be read into (h1server's and
// h2server's EmptyHeader): no map is made, adopted or copied then.
type headerLender interface{ EmptyHeader() http.Header }

// skipHeader reports whether k must not cross the hop.
func skipHeader(k string, named []string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	for _, n := range named {
		if k == n {
			return true
		}
	}
	return false
}

// outbound holds the parts of a direct attempt's outbound request that
// die with the attempt: the request itself, its URL, its header map and
// the forwarding values (setForwarding). They are pooled (Engine.outs):
// the synchronous client writes the request before SendDirect returns and
// keeps no reference to it, and nothing else outlives the attempt with
// one (upstream request filters must not keep out; the response holds out
// as resp.Request but dies with direct: an adopted response header keeps
// its memory, not a way to reach it). A request the Transport sends
// instead (a header edit made it not Direct) keeps its parts: the
// Transport's goroutines may still hold them. Reuse saves about seven
// allocations per request: the request (WithContext's copy), the URL,
// the forwarding values, and a header map of more than eight fields is
// four.
type outbound struct {
	req  http.Request
	url  url.URL
	h    http.Header
	fw   [7]string
	body directBody
	// block is the header block written after h: the forwarding fields
	// (appendForwarding) and the identity's. The request writer copies
	// it before SendDirect returns.
	block []byte
}

// directBody is a direct attempt's outbound request body: the inbound
// one, which the attempt does not own. Close only marks it closed (the
// pool's client closes what it sends; the inbound body is net/http's),
// after which a Read fails, as ReverseProxy's noopCloseReader makes it;
// AbortRead ends a Read waiting for the client (idleBody.abort), which
// the pool's client asks for when the response has ended before the body
// was all sent (lb: readAborter).
type directBody struct {
	in     io.ReadCloser
	closed atomic.Bool
}

var errBodyClosed = errors.New("proxy: read of a request body after its round trip")

func (b *directBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	return b.in.Read(p)
}

func (b *directBody) Close() error {
	b.closed.Store(true)
	return nil
}

func (b *directBody) AbortRead() {
	if ib, ok := b.in.(*idleBody); ok {
		ib.abort()
	}
}

// maxPooledFields bounds the header maps kept for reuse: clear keeps a
// map's size, and one huge request should not pin a huge map.
const maxPooledFields = 64

// maxPooledBlock bounds the header blocks kept for reuse, for the same
// reason (a trusted proxy's long X-Forwarded-For, a large identity).
const maxPooledBlock = 4 << 10

func (e *Engine) getOutbound() *outbound {
	if ob, ok := e.outs.Get().(*outbound); ok {
		return ob
	}
	// Eight fields fit Go's small-map form, where a lookup of a short key
	// needs no hash and clear and iteration touch one group: what an API
	// client's request needs now that the forwarding fields go as a
	// header block. A request with more grows this map once; pooled, it
	// stays grown for the next.
	return &outbound{h: make(http.Header, 8)}
}

// putOutbound clears ob, so it holds no request's values, and keeps it.
func (e *Engine) putOutbound(ob *outbound) {
	if len(ob.h) > maxPooledFields {
		return
	}
	clear(ob.h)
	ob.req, ob.url, ob.fw = http.Request{}, url.URL{}, [7]string{}
	ob.body.in = nil
	ob.body.closed.Store(false)
	if cap(ob.block) > maxPooledBlock {
		ob.block = nil
	}
	ob.block = ob.block[:0]
	e.outs.Put(ob)
}

// directRequest builds the outbound request, ob's: in's method, query
// and header without what must not cross the hop, in ob's URL and
// (empty) header map. Value slices are shared with in: edits replace or
// append to them (an append copies, as textproto caps them), never write
// in place.
//
// With mayShare (nothing will edit the outbound fields: fieldsMayShare),
// and no field named by Connection present to leave out ("Connection:
// close" names none that is there), the map stays empty and shared
// reports true: the fields go as a header block, or are copied later if
// they cannot (blockFields).
func directRequest(in *http.Request, ctx context.Context, ob *outbound, mayShare bool) (out *http.Request, shared bool) {
	named := connNamed(in.Header["Connection"])
	shared = mayShare && !anyPresent(in.Header, named)
	if !shared {
		copyFields(ob.h, in.Header, named)
	}
	ob.url = url.URL{RawQuery: cleanQuery(in.URL.RawQuery), ForceQuery: in.URL.ForceQuery}
	req := http.Request{
		Method:     in.Method,
		URL:        &ob.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     ob.h,
		Host:       in.Host,
		RemoteAddr: in.RemoteAddr,
	}
	if in.ContentLength != 0 && in.Body != nil && in.Body != http.NoBody {
		// What ReverseProxy's clone carries: the length (-1: chunks),
		// and the trailer's keys, whose values come only with the body.
		req.ContentLength = in.ContentLength
		req.Trailer = in.Trailer.Clone()
		if _, replay := in.Body.(*replayBody); replay {
			req.Body = in.Body // the engine's own buffer: in memory, never waits
		} else {
			ob.body.in = in.Body
			req.Body = &ob.body
		}
	}
	// WithContext is the only way to set a Request's context; its copy,
	// inlined and dereferenced at once, stays on the stack.
	ob.req = *req.WithContext(ctx)
	return &ob.req, shared
}

// anyPresent reports whether h has a field of one of names.
func anyPresent(h http.Header, names []string) bool {
	for _, n := range names {
		if _, ok := h[n]; ok {
			return true
		}
	}
	return false
}

// copyFields copies the fields of in that cross the hop into h: all but
// the hop-by-hop ones, those named (by Connection) and the forwarding
// fields, with "TE: trailers" kept.
func copyFields(h, in http.Header, named []string) {
	// The forwarding fields (the four ReverseProxy drops before Rewrite,
	// and those setForwarding writes over a trusted peer's) are left out
	// as the fields are copied, not deleted afterwards: deletes of keys
	// that are nearly always absent cost more than the comparisons, and
	// when they go as a header block (appendForwarding) nothing would
	// write over a client's copy in the map.
	for k, vv := range in {
		if skipHeader(k, named) || isForwarding(k) {
			continue
		}
		h[k] = vv
	}
	// Issue golang/go#21096: tell upstreams that care (gRPC) that
	// trailers are supported.
	if httpguts.HeaderValuesContainsToken(in["Te"], "trailers") {
		h["Te"] = teTrailers
	}
}

// fieldsMayShare reports whether nothing will edit the outbound request's
// fields on this attempt, so they may go from in's map as a header block
// (directRequest, blockFields) instead of through a map of their own: no
// upstream request filter (header edits), no trace context to inject,
// and no login cookie to take out.
func fieldsMayShare(st *state, in *http.Request) bool {
	return len(st.route.UpstreamFilters) == 0 && st.cctx == nil &&
		(st.snap.StripCookie == "" || in.Header["Cookie"] == nil)
}

// omitOutbound reports whether a field of the client's request stays
// behind (copyFields' rule, without Connection-named fields: a shared
// request has none present).
func omitOutbound(k string) bool { return skipHeader(k, nil) || isForwarding(k) }

// blockFields appends the fields of a shared request (directRequest) to
// ob's header block, after the forwarding fields, and reports whether
// they all went: with a field that is not valid, or forwarding fields
// that went into the map (appendForwarding refused a value), the block
// is left as it was and the fields are copied into ob's map, where the
// request writer refuses them as before.
func blockFields(ob *outbound, in *http.Request, inBlock bool) bool {
	if inBlock {
		var ok bool
		if ob.block, ok = lb.AppendFields(ob.block, in.Header, omitOutbound); ok {
			if httpguts.HeaderValuesContainsToken(in.Header["Te"], "trailers") {
				ob.block = append(ob.block, "Te: trailers\r\n"...)
			}
			return true
		}
	}
	copyFields(ob.h, in.Header, nil)
	return false
}

// cleanQuery re-encodes a query that url.ParseQuery would reject (a
// semicolon, a bad escape), dropping what it cannot parse, so Gatehouse
// and a Go upstream never read two different sets of parameters. It is
// ReverseProxy's cleanQueryParams.
func cleanQuery(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// direct makes one attempt through the pool's synchronous client. Like
// ReverseProxy, it reports a failure before the response header through
// upstreamError and writes nothing; after the header, a failed body
// aborts the response.
func (e *Engine) direct(st *state, w *respWriter, in *http.Request, ctx context.Context) {
	ob := e.getOutbound()
	if e.sendDirect(st, w, in, ctx, ob) {
		e.putOutbound(ob)
	}
}

// sendDirect is direct with the outbound parts in ob. It reports whether
// ob may be reused: the synchronous client sent the request, and
// nothing refers to ob any more. (A panic leaves ob to the collector.)
func (e *Engine) sendDirect(st *state, w *respWriter, in *http.Request, ctx context.Context, ob *outbound) (reuse bool) {
	out, shared := directRequest(in, ctx, ob, fieldsMayShare(st, in))
	st.fw = &ob.fw
	inBlock := e.upstreamRequestOf(st, in, out, &ob.block)
	st.fw = nil
	whole := false
	if shared {
		whole = blockFields(ob, in, inBlock)
	}
	var resp *http.Response
	var err error
	if st.pool.Direct(out) {
		reuse = true
		extra := st.rc.Identity.Wire
		if inBlock {
			ob.block = append(ob.block, extra...)
			extra = ob.block
		}
		if whole {
			out.Header = in.Header // read by the client (Idempotency-Key), not written
			resp, err = st.pool.SendDirectBlock(out, extra, st)
		} else {
			resp, err = st.pool.SendDirect(out, extra, st)
		}
	} else {
		if whole {
			// Not reached: nothing edits a shared request into one the
			// synchronous client does not send. Were it, the fields go
			// into the map, where the Transport takes them.
			copyFields(ob.h, in.Header, nil)
		}
		// A header edit (Expect) made it a request the synchronous
		// client does not send: the Transport does, as it would have
		// for ReverseProxy, with 1xx passed on the same way. It takes
		// no header block: the forwarding fields go into the map.
		if inBlock {
			setForwarding(out.Header, ob.fw[:], st.ridVals)
		}
		st.rc.Identity.AddTo(out.Header)
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			return st.Informational(code, http.Header(h))
		}}
		resp, err = st.pool.Send(out.WithContext(httptrace.WithClientTrace(ctx, trace)), nil)
		// The Transport's write loop may read the body after this
		// attempt: it will find it closed (ob is not reused).
		defer ob.body.Close()
	}
	if err != nil {
		st.takeBack()
		e.attemptFailed(st, err)
		return reuse
	}
	if err := e.upstreamResponseOf(st, resp); err != nil {
		resp.Body.Close()
		st.takeBack() // a retry, or an error response, starts from an empty map
		e.attemptFailed(st, err)
		return reuse
	}
	// Decided on the upstream's fields, before response filters edit them.
	flush := resp.ContentLength == -1 || isEventStream(resp.Header.Get("Content-Type"))
	// The response's header map is this attempt's own: hop-by-hop fields
	// go from it in place, and a writer that can adopt it takes it whole.
	// A map the writer lent has none (lb.HeaderSupplier).
	if !st.lent {
		named := connNamed(resp.Header["Connection"])
		for k := range resp.Header {
			if skipHeader(k, named) {
				delete(resp.Header, k)
			}
		}
	}
	var dst http.Header
	if st.lent {
		st.lent = false
		dst = resp.Header // the writer's own already
	} else if a, ok := w.ResponseWriter.(headerAdopter); ok && a.AdoptHeader(resp.Header) {
		dst = resp.Header
	} else {
		dst = w.Header()
		for k, vv := range resp.Header {
			if prior, ok := dst[k]; ok {
				dst[k] = append(prior, vv...)
			} else {
				dst[k] = vv
			}
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(resp.StatusCode)

	// Streams reach the client write by write (ReverseProxy's
	// flushInterval: -1 for an event stream or an unknown length).
	// The header goes out at once, as ReverseProxy's first flush timer
	// sends it, so a client sees the stream begin even before its first
	// event (and no type is sniffed from it).
	if flush {
		err = w.FlushError()
	}
	if err == nil {
		err = copyBody(w, resp.Body, flush)
	}
	if err != nil {
		resp.Body.Close()
		if in.Context().Value(http.ServerContextKey) == nil {
			return reuse // not under a server (unit tests): as ReverseProxy does
		}
		panic(http.ErrAbortHandler)
	}
	resp.Body.Close()
	if len(resp.Trailer) > 0 {
		dropBadTrailers(resp.Trailer)
		_ = w.FlushError() // the trailer may only be known now
	}
	if len(resp.Trailer) == announced {
		copyHeader(dst, resp.Trailer)
		return reuse
	}
	for k, vv := range resp.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
	return reuse
}

// ResponseHeader implements lb.HeaderSupplier: the client writer's own
// header map while it is empty, for the upstream's response to be read
// straight into (st.lent until the attempt ends).
func (st *state) ResponseHeader() http.Header {
	l, ok := st.w.ResponseWriter.(headerLender)
	if !ok {
		return nil
	}
	h := l.EmptyHeader()
	st.lent = h != nil
	return h
}

// takeBack empties the client writer's header map if the failed
// attempt's response was read into it: none of that response's fields
// may reach the client with a retry's response or an error.
func (st *state) takeBack() {
	if st.lent {
		st.lent = false
		clear(st.w.ResponseWriter.Header())
	}
}

// ReserveFields implements lb.FieldReserver: the fields
// respWriter.WriteHeader may add to the upstream's response header.
func (st *state) ReserveFields() int {
	n := 1 // X-Request-Id
	if t := st.snap.TLS; st.rc.TLS && t != nil && t.HSTS != nil {
		n++
	}
	if r := st.route; r != nil {
		for _, f := range r.ResponseFilters {
			if a, ok := f.(phase.FieldAdder); ok {
				n += a.FieldsAdded()
			} else {
				n++
			}
		}
	}
	return n
}

// Informational passes a 1xx response (103 Early Hints) to the client,
// as ReverseProxy does (respWriter.informational drops its hop-by-hop
// fields); it implements lb.Informer. Past lb.Max1xx it fails the round
// trip.
func (st *state) Informational(code int, header http.Header) error {
	h := st.w.Header()
	copyHeader(h, header)
	st.w.WriteHeader(code)
	clear(h) // a 1xx's fields are its own
	if st.bad1xx != nil {
		return st.bad1xx
	}
	return nil
}

func isEventStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// copyBody copies a response body to the client with a pooled buffer,
// flushing after each write when flush is set. A read error other than
// the end, or a write error, is returned.
func copyBody(w *respWriter, body io.Reader, flush bool) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				if ferr := w.FlushError(); ferr != nil {
					return ferr
				}
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return rerr
		}
	}
}
