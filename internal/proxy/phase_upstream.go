package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"gatehouse/internal/httpsyntax"
	"gatehouse/internal/lb"
	"gatehouse/internal/phase"
	"gatehouse/internal/runtime"
)

// act performs the route's action.
func (e *Engine) act(st *state, w *respWriter, r *http.Request) {
	rt := st.route
	switch rt.Action {
	case runtime.ActionProxy:
		st.pool, st.hostPol, st.retry = rt.Pool, rt.HostPolicy, rt.Retry
		st.upPath, st.fwPrefix = upstreamPath(rt, st.rc.Path)
		e.proxy(st, w, r)
	case runtime.ActionAPI:
		pool, svc, path, ok := apiTarget(rt.API, st.rc.Path)
		if !ok {
			e.failToProxy(st, w, r, phase.NewError(phase.KindNotFound, "unknown API service", nil))
			return
		}
		st.pool, st.hostPol, st.retry, st.upPath = pool, rt.API.HostPol[svc], rt.API.Retry[svc], path
		e.proxy(st, w, r)
	case runtime.ActionStatic:
		e.serveStatic(st, w, r)
	case runtime.ActionRedirect:
		e.redirect(st, w, r)
	case runtime.ActionRespond:
		e.respond(st, w, r)
	case runtime.ActionLocal:
		if err := rt.Local.ServeLocal(&st.rc, w, r); err != nil {
			e.failToProxy(st, w, r, phase.AsError(err))
		}
	}
}

// upstreamPath applies strip_prefix or rewrite to the normalized path. It
// returns the path to send and the prefix removed (for X-Forwarded-Prefix).
func upstreamPath(rt *runtime.Route, path string) (string, string) {
	if !rt.StripPrefix && rt.Rewrite == "" {
		return path, ""
	}
	matched := rt.ExactPath
	if matched == "" {
		matched = rt.PathPrefix
		if matched == "/" {
			matched = ""
		}
	}
	rest := ""
	if len(path) > len(matched) {
		// An exact path also takes itself with a trailing slash added
		// ("/x/" for "/x": rest "/") or taken away ("/x" for "/x/": none).
		rest = path[len(matched):]
	}
	removed := matched
	if rt.ExactPath != "" {
		removed = "" // an exact path was replaced, not a prefix
	}
	if rt.StripPrefix {
		if rest == "" {
			rest = "/"
		}
		return rest, removed
	}
	if strings.HasSuffix(rt.Rewrite, "/") && strings.HasPrefix(rest, "/") {
		rest = rest[1:]
	}
	return rt.Rewrite + rest, removed
}

// apiTarget resolves /<prefix>/<service><rest> through the service table:
// the pool, the service name and the upstream path.
func apiTarget(api *runtime.API, path string) (*lb.Pool, string, string, bool) {
	rest := path[len(api.Prefix):] // the route matched, so path has the prefix
	if len(rest) < 2 || rest[0] != '/' {
		return nil, "", "", false
	}
	svc := rest[1:]
	rest = ""
	if i := strings.IndexByte(svc, '/'); i >= 0 {
		svc, rest = svc[:i], svc[i:]
	}
	pool, ok := api.Services[svc]
	if !ok {
		return nil, "", "", false
	}
	var b strings.Builder
	for _, p := range api.Template {
		switch p.Placeholder {
		case "":
			b.WriteString(p.Literal)
		case "prefix":
			b.WriteString(api.Prefix)
		case "service":
			b.WriteString(svc)
		case "rest":
			b.WriteString(rest)
		}
	}
	out := b.String()
	if out == "" {
		out = "/"
	}
	return pool, svc, out, true
}

// upstreamRequest is the upstream-request phase (ReverseProxy's Rewrite):
// target URL, path, Host policy, forwarding headers, then the route's
// upstream request filters. ReverseProxy has already removed hop-by-hop
// headers and every inbound Forwarded/X-Forwarded-* header from out.
func (e *Engine) upstreamRequest(pr *httputil.ProxyRequest) {
	e.upstreamRequestOf(stateOf(pr.In.Context()), pr.In, pr.Out, nil)
}

// upstreamRequestOf is the upstream-request phase for the outbound
// request out of in, on either path (ReverseProxy's, or the direct
// attempt's). With block not nil (a direct attempt) and no upstream
// filter on the route to read or edit them, the forwarding fields are
// appended to *block as a header block instead of set in out.Header, and
// it reports true: seven map assignments fewer, and an outbound map that
// often stays small enough for Go's small-map form (appendForwarding).
func (e *Engine) upstreamRequestOf(st *state, in, out *http.Request, block *[]byte) (inBlock bool) {
	out.URL.Scheme = st.pool.Scheme()
	out.URL.Host = st.target.Addr
	setPath(out.URL, st.upPath)
	switch st.hostPol.Mode {
	case runtime.HostPreserve:
		out.Host = in.Host
	case runtime.HostTarget:
		out.Host = ""
	case runtime.HostLiteral:
		out.Host = st.hostPol.Literal
	}
	vals := forwardingValues(st, in)
	if block != nil && len(st.route.UpstreamFilters) == 0 {
		*block, inBlock = appendForwarding(*block, vals, st.ridVals)
	}
	if !inBlock {
		setForwarding(out.Header, vals, st.ridVals)
	}
	if name := st.snap.StripCookie; name != "" {
		// Login's own cookies are read by Gatehouse and never sent on.
		stripCookies(out.Header, name)
	}
	if st.cctx != nil {
		// The upstream continues our trace, never one a client made up:
		// an untrusted client's traceparent was not used as our parent.
		delete(out.Header, "Traceparent")
		delete(out.Header, "Tracestate")
		if !st.rc.PeerTrusted {
			// Nor its baggage: the app's SDK would take it as part of
			// our trace.
			delete(out.Header, "Baggage")
		}
		e.tracer.Inject(st.cctx, out.Header)
	}
	for _, f := range st.route.UpstreamFilters {
		f.FilterUpstreamRequest(&st.rc, out)
	}
	return inBlock
}

func setPath(u *url.URL, escaped string) {
	if strings.IndexByte(escaped, '%') < 0 {
		u.Path, u.RawPath = escaped, ""
		if strings.ContainsAny(escaped, "!'()*") {
			// Sub-delimiters url.URL would percent-encode: "f(1).png" is
			// not "f%281%29.png" to every server (RFC 3986 §2.2, §6.2.2.2).
			u.RawPath = escaped
		}
		return
	}
	p, err := url.PathUnescape(escaped)
	if err != nil { // cannot happen: the normalizer produced escaped
		p = escaped
	}
	u.Path, u.RawPath = p, escaped
}

// forwardingValues computes X-Forwarded-For/Proto/Host/Port/Prefix,
// Forwarded (RFC 7239) and X-Real-IP, the fields setForwarding writes
// with X-Request-Id. A trusted peer's values are kept
// and extended; anyone else's were already dropped (by ReverseProxy or
// directRequest, and in early) and are replaced by what Gatehouse saw
// itself: the peer, the scheme, the Host, the listener's port. X-Real-IP
// is always the client address Gatehouse believes (rc.ClientIP: the
// peer, or behind trusted proxies the first untrusted X-Forwarded-For
// entry), as nginx's "proxy_set_header X-Real-IP $remote_addr" sends.
//
// The values are returned in one array, in the order of forwardingNames:
// the direct attempt's pooled one (st.fw), or a new one.
func forwardingValues(st *state, in *http.Request) []string {
	rc := &st.rc
	peer := st.peer()
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	host := in.Host
	port := st.listenerPort(in)
	xff := peer
	var fwd string
	if cs := st.h2cs; cs != nil {
		fwd = cs.sharedForwarded(peer, host, proto)
	} else {
		fwd = st.w.cs.forwarded(peer, host, proto)
	}
	if rc.PeerTrusted {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + peer
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			proto = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			host = v
		}
		if v := in.Header.Get("X-Forwarded-Port"); v != "" {
			if _, err := strconv.ParseUint(v, 10, 16); err == nil {
				port = v
			}
		}
		if prior := in.Header["Forwarded"]; len(prior) > 0 {
			fwd = strings.Join(prior, ", ") + ", " + fwd
		}
		if v := in.Header.Get("X-Forwarded-Prefix"); v != "" && st.fwPrefix != "" {
			st.fwPrefix = v + st.fwPrefix
		}
	}
	// One backing array for all the single values: one allocation, not
	// seven, or none when the direct attempt's pooled one is free
	// (st.fw). Each slice is capped (len == cap) so an append copies.
	if fw := st.fw; fw != nil {
		*fw = [...]string{xff, proto, host, port, fwd, st.fwPrefix, st.clientIP()}
		return fw[:]
	}
	v := [...]string{xff, proto, host, port, fwd, st.fwPrefix, st.clientIP()}
	return v[:]
}

// forwardingNames are the fields of forwardingValues' values, in their
// order (X-Request-Id, the request's own, is not among them).
var forwardingNames = [...]string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
	"X-Forwarded-Port", "Forwarded", "X-Forwarded-Prefix", "X-Real-Ip"}

// isForwarding reports whether k (canonical) is a field setForwarding
// writes or removes: a client's own never reaches the upstream.
func isForwarding(k string) bool {
	switch k {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
		"Forwarded", "X-Forwarded-Prefix", "X-Real-Ip", "X-Request-Id":
		return true
	}
	return false
}

// forwardingOmitted reports whether the value of forwardingNames[i] is
// left out: X-Forwarded-Host without a Host (HTTP/1.0), and
// X-Forwarded-Prefix when no prefix was removed.
func forwardingOmitted(i int, v string) bool {
	return v == "" && (i == 2 || i == 5)
}

// setForwarding writes the forwarding fields (forwardingValues' vals and
// X-Request-Id) into h, over any there, and removes the two it omits.
// Each slice is capped (len == cap) so an append copies.
func setForwarding(h http.Header, vals, rid []string) {
	for i, name := range forwardingNames {
		if forwardingOmitted(i, vals[i]) {
			delete(h, name)
		} else {
			h[name] = vals[i : i+1 : i+1]
		}
	}
	h["X-Request-Id"] = rid
}

// appendForwarding appends the forwarding fields to b as an HTTP/1.1
// header block, as lb's request writer would write them from the map
// (values trimmed). It reports false, with b unchanged, when a value is
// not a valid field value (one a trusted proxy sent): the map then gets
// them, and the request writer refuses the request as before.
func appendForwarding(b []byte, vals, rid []string) ([]byte, bool) {
	for _, v := range vals {
		if !httpsyntax.ValidFieldValue(v) {
			return b, false
		}
	}
	for _, v := range rid {
		if !httpsyntax.ValidFieldValue(v) {
			return b, false
		}
	}
	for i, name := range forwardingNames {
		if !forwardingOmitted(i, vals[i]) {
			b = lb.AppendField(b, name, vals[i])
		}
	}
	for _, v := range rid {
		b = lb.AppendField(b, "X-Request-Id", v)
	}
	return b, true
}

// forwardedElem is one RFC 7239 element; IPv6 addresses and hosts with a
// port are quoted (§6).
func forwardedElem(peer, host, proto string) string {
	forv := peer
	if strings.IndexByte(peer, ':') >= 0 {
		forv = `"[` + peer + `]"`
	}
	if host == "" {
		// An HTTP/1.0 request without Host: a parameter's value is a
		// token or a quoted string, never empty (RFC 7239 §4).
		return "for=" + forv + ";proto=" + proto
	}
	hostv := host
	if !isToken(host) {
		hostv = strconv.Quote(host) // a port's colon, an IPv6 literal, a sub-delim
	}
	return "for=" + forv + ";host=" + hostv + ";proto=" + proto
}

// bodyFault returns the error for an attempt that failed because the
// request body could not be read, or nil. The body's own error may not be
// the one the round trip returns: when the connection guard finds a body
// malformed, net/http cancels the request's context, and the attempt
// fails as if the client had left.
func bodyFault(st *state) *phase.Error {
	cb := st.bodyErr.Load()
	if cb == nil {
		return nil
	}
	if errors.Is(cb.err, io.ErrUnexpectedEOF) {
		return phase.NewError(phase.KindClientGone, "", *cb) // it closed half way
	}
	// The rest of the body cannot be framed: close after answering.
	return &phase.Error{Kind: phase.KindBadRequest, Detail: "malformed request body", Header: closeHeader(), Err: *cb}
}

// classify turns a round-trip error into a phase.Error.
func classify(r *http.Request, err error) *phase.Error { return classifyCtx(r.Context(), err) }

// classifyCtx is classify for a request whose context is ctx.
func classifyCtx(ctx context.Context, err error) *phase.Error {
	var pe *phase.Error
	if errors.As(err, &pe) {
		return pe
	}
	ctxErr := ctx.Err()
	var mbe *http.MaxBytesError
	var bt errBodyTimeout
	if errors.As(err, &bt) {
		return phase.NewError(phase.KindRequestTimeout, "the request body stalled", err)
	}
	if errors.As(err, new(errRouteTimeout)) {
		return phase.NewError(phase.KindRouteTimeout, "the route's time limit was reached", err)
	}
	var cb errClientBody
	if errors.As(err, &cb) {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return phase.NewError(phase.KindClientGone, "", err) // it closed half way
		}
		return &phase.Error{Kind: phase.KindBadRequest, Detail: "malformed request body", Header: closeHeader(), Err: err}
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &mbe):
		return phase.NewError(phase.KindBodyTooLarge, "request body too large", err)
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return phase.NewError(phase.KindRouteTimeout, "the route's time limit was reached", err)
	case errors.Is(ctxErr, context.Canceled):
		return phase.NewError(phase.KindClientGone, "", err)
	case errors.As(err, &ne) && ne.Timeout():
		return &phase.Error{Kind: phase.KindUpstreamTimeout, Detail: "upstream timed out", Retryable: true, Err: err}
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &oe) && oe.Op == "dial":
		return &phase.Error{Kind: phase.KindUpstreamConnect, Detail: "upstream unreachable", Retryable: true, Err: err}
	}
	return &phase.Error{Kind: phase.KindUpstreamProto, Detail: "upstream failed", Retryable: true, Err: err}
}

// poolTransport sends each request through its pool, so pools keep
// separate connection pools and settings under one ReverseProxy. It adds
// the request's identity headers last, after every header edit: as a
// prepared header block where the pool writes the request itself, in the
// header map otherwise.
type poolTransport struct{}

func (poolTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateOf(req.Context())
	id := &st.rc.Identity
	if !st.pool.Direct(req) {
		id.AddTo(req.Header)
		resp, err := st.pool.Send(req, nil)
		if err == nil && st.bad1xx != nil {
			// The final response was read before the cancellation
			// (stop1xx) was seen: the attempt fails all the same.
			resp.Body.Close()
			return nil, st.bad1xx
		}
		return resp, err
	}
	return st.pool.Send(req, id.Wire)
}
