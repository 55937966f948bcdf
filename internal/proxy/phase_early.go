package proxy

import (
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/net/http/httpguts"

	"gatehouse/internal/auth/oidc"
	"gatehouse/internal/h1guard"
	"gatehouse/internal/httpsyntax"
	"gatehouse/internal/phase"
	"gatehouse/internal/route"
	"gatehouse/internal/tlsx"
)

// early runs first: it names the request, works out who the client is,
// and normalizes what the request is for. It answers 400 to what cannot be
// made safe. Default: every request continues.
func (e *Engine) early(st *state, w *respWriter, r *http.Request) bool {
	rc := &st.rc
	rc.TLS = r.TLS != nil // first: the answers below carry HSTS over HTTPS
	rc.Peer = peerAddr(r.RemoteAddr)
	rc.PeerTrusted = st.snap.IsTrusted(rc.Peer)
	rc.ClientIP = rc.Peer
	if rc.PeerTrusted {
		rc.ClientIP = clientFromXFF(st, r.Header["X-Forwarded-For"], rc.Peer)
	}
	rc.RequestID = ""
	if rc.PeerTrusted {
		if id := r.Header.Get("X-Request-Id"); validRequestID(id) {
			rc.RequestID = id
		}
	}
	if rc.RequestID == "" {
		st.ridVals = e.newRequestID()
		rc.RequestID = st.ridVals[0]
	} else {
		st.ridVals = []string{rc.RequestID}
	}
	var guard *h1guard.Conn
	if w.cs != nil {
		guard = w.cs.guard
	}
	if guard != nil && r.Host == h1guard.RefusedHost {
		if ref := guard.Refusal(r.RequestURI); ref != nil {
			// The stand-in for a request head the guard refused: answer for
			// it, and close (nothing after it can be framed). The access
			// log names the refused request, not the stand-in.
			if ref.Method != "" {
				r.Method = ref.Method
				r.URL = &url.URL{Path: ref.Target}
			}
			e.failToProxy(st, w, r, &phase.Error{Kind: phase.KindBadRequest, Status: ref.Status,
				Detail: ref.Reason, Header: closeHeader()})
			return false
		}
	}
	if !e.framingChecks(st, w, r, guard) {
		return false
	}
	fields := 0
	edgeSpace := false
	strip := st.snap.StripHeaders
	for name, vals := range r.Header {
		fields += len(vals)
		if r.ProtoMajor >= 2 && !edgeSpace {
			edgeSpace = hasEdgeSpace(vals)
		}
		if _, identity := strip[name]; identity || dropInbound(name, vals, rc.PeerTrusted, r) {
			delete(r.Header, name)
		}
	}
	if edgeSpace {
		// RFC 9113 §8.2.1: an HTTP/2 field value that starts or ends
		// with SP or HTAB makes the request malformed. HTTP/1.1 parsers
		// trim that whitespace; kept, a route matching "X-Debug: 1"
		// would miss " 1", and the upstream writer, which trims, would
		// hand the app "1". Checked here, for every HTTP/2 server
		// (h2server and net/http's pass such values on).
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "malformed HTTP/2 request: a field value with leading or trailing whitespace", nil))
		return false
	}
	if max := st.snap.MaxHeaderCount; max > 0 && fields > max {
		e.failToProxy(st, w, r, &phase.Error{Kind: phase.KindBadRequest, Status: http.StatusRequestHeaderFieldsTooLarge,
			Detail: "too many request header fields"})
		return false
	}
	if e.tracer != nil {
		e.startServerSpan(st, r)
	}

	if !isToken(r.Method) {
		// HTTP/1 servers refuse these; Go's HTTP/2 server only refuses
		// control characters, so ":method: GET /admin" arrives here and
		// would be written into an upstream request line.
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "invalid method", nil))
		return false
	}
	if hasLower(r.Method) {
		// Methods are case-sensitive (RFC 9110 §9.1), and no registered
		// one has a lower-case letter; but some apps compare them without
		// case (ASP.NET Core), so "get" would reach a GET handler past a
		// route that names GET, and its auth. nginx refuses them too.
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "invalid method: methods are upper case", nil))
		return false
	}
	if r.Method == http.MethodConnect {
		// Gatehouse is no forward proxy, and CONNECT names a tunnel,
		// not a resource (RFC 9110 §9.3.6): its authority form is
		// refused by the servers, and in origin form it is malformed
		// (RFC 9112 §3.2.3). Passed on, an app could open the tunnel.
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "CONNECT is not proxied", nil))
		return false
	}
	if r.ProtoMajor >= 2 && (r.Host == "" || !strings.HasPrefix(r.RequestURI, "/")) {
		// RFC 9113 §8.3.1: an http or https request has an authority
		// (:authority or Host) and a :path in origin form. h2server
		// resets such streams itself; net/http's HTTP/2 server (h2c, and
		// fast_http2: false) passes both through, an absolute :path as
		// a URL whose host nothing checks.
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "malformed HTTP/2 request: no authority, or a :path not in origin form", nil))
		return false
	}
	if u := r.URL; u.Scheme != "" && (u.Host == "" || u.User != nil) {
		// An absolute-form target with an empty host is invalid (RFC 9110
		// §4.2.1), and one with userinfo is refused (§4.2.4): what would
		// route it is not what it names.
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "absolute request target without a host, or with userinfo", nil))
		return false
	}
	host, ok := normalizeHost(r.Host)
	if !ok {
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "invalid Host header", nil))
		return false
	}
	rc.Host = host
	if t := st.snap.TLS; t != nil && r.TLS != nil && t.ClientAuth != nil {
		if err := clientCert(t, rc, r); err != nil {
			e.failToProxy(st, w, r, err)
			return false
		}
	}
	path := r.URL.EscapedPath()
	if path == "" && r.URL.Scheme != "" && r.Method != http.MethodOptions {
		// An absolute-form target with an empty path is for "/" (RFC
		// 9110 §4.2.3); OPTIONS alone means the server itself (RFC 9112
		// §3.2.4), refused below as "*" is.
		path = "/"
		r.URL.Path = "/"
	}
	if r.URL.Opaque != "" || (path == "" && r.Method == http.MethodOptions) {
		// "OPTIONS *" and other non-origin forms are not proxied.
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "request target must be a path", nil))
		return false
	}
	if strings.IndexByte(r.RequestURI, '#') >= 0 {
		// A fragment is never sent (RFC 9112 §3.2). url.ParseRequestURI
		// keeps a raw "#" in the path, and a server behind would cut it.
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "# in request target", nil))
		return false
	}
	if !httpsyntax.TargetBytes(r.RequestURI) {
		// A space ends an HTTP/1.1 request target, and a control byte
		// has no place in one; HTTP/1.1 servers refuse both, but Go's
		// HTTP/2 server passes a space in :path (RFC 9113 §8.3.1 does
		// not allow it). The query goes upstream as it is: "GET /x?a
		// /admin HTTP/1.1" is a request line each parser splits its own
		// way.
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, "space or control byte in request target", nil))
		return false
	}
	// The query as RFC 3986 §3.4 writes it: the bytes it does not allow
	// raw (" < > \ ^ ` { | } and non-ASCII) go upstream percent-encoded.
	// They mean the same once decoded, and every parser behind reads the
	// same request line (some answer 400 to them raw).
	r.URL.RawQuery = encodeQuery(r.URL.RawQuery)
	np, err := route.NormalizePath(path)
	if err != nil {
		e.failToProxy(st, w, r, phase.NewError(phase.KindBadRequest, err.Error(), nil))
		return false
	}
	rc.Path = np
	return true
}

// framingChecks applies to requests that no h1guard read (HTTPS and
// HTTP/2) what the guard enforces on the plain listeners' raw heads, as
// far as a handler can see it: the request target and header field
// lengths (414, 431). A chunked HTTP/1.1 request, or any HTTP/1.0 one, on
// such a connection is answered with a close: net/http drops a
// Content-Length sent beside Transfer-Encoding, and an HTTP/1.0 request's
// Transfer-Encoding, without a trace, and RFC 9112 §6.1 and §6.3 ask that
// the connection not be reused after such a request.
func (e *Engine) framingChecks(st *state, w *respWriter, r *http.Request, guard *h1guard.Conn) bool {
	if guard != nil {
		return true // the guard saw the raw head
	}
	max := st.snap.MaxHeaderLineBytes
	if max <= 0 {
		return true
	}
	// Built only for a refusal: it is a map (two allocations).
	closeH := func() http.Header {
		if r.ProtoMajor == 1 {
			return closeHeader()
		}
		return nil
	}
	if len(r.RequestURI) > max {
		e.failToProxy(st, w, r, &phase.Error{Kind: phase.KindBadRequest, Status: http.StatusRequestURITooLong,
			Detail: "request target too long", Header: closeH()})
		return false
	}
	for name, vals := range r.Header {
		for _, v := range vals {
			if len(name)+2+len(v) > max {
				e.failToProxy(st, w, r, &phase.Error{Kind: phase.KindBadRequest, Status: http.StatusRequestHeaderFieldsTooLarge,
					Detail: "request header line too long", Header: closeH()})
				return false
			}
		}
	}
	if r.ProtoMajor == 1 && (len(r.TransferEncoding) > 0 || r.ProtoMinor == 0) {
		// HTTP/1.0 too: net/http drops an HTTP/1.0 request's
		// Transfer-Encoding without a trace (RFC 9112 §6.1 asks for the
		// connection to be closed), and frames it by Content-Length.
		w.Header()["Connection"] = closeValue
	}
	return true
}

var closeValue = []string{"close"}

// closeHeader asks net/http to close the connection after the response.
func closeHeader() http.Header { return http.Header{"Connection": closeValue} }

// dropInbound reports whether the client's request header name (in
// canonical form) is removed before any filter or upstream sees it. It is
// one switch over the names early already walks, not a delete per name:
//   - names with "_" (nginx and Apache drop them; a WSGI/CGI app reads
//     X_Auth as X-Auth) and other gateways' identity headers
//     (identityFamily: X-Auth-Request-*, Remote-*, Cf-Access-*, …);
//   - from an untrusted peer, the headers through which proxies tell apps
//     the client's address, the scheme, host or original URL, or the
//     method: apps and frameworks believe them (Symfony and Laminas route
//     by X-Original-URL and X-Rewrite-URL; rate limiters key on X-Real-IP,
//     CF-Connecting-IP; Rails reads Client-IP, Rack X-Forwarded-Ssl and
//     X-Forwarded-Scheme; X-HTTP-Method-Override would get a method past
//     match.methods).
//     Gatehouse sets X-Real-IP and X-Forwarded-Port itself
//     (setForwarding); the others are sent only as a trusted proxy set them;
//   - X-Middleware-Subrequest, from anyone (CVE-2025-29927, below);
//   - HTTP2-Settings, and an Upgrade other than exactly "websocket", from
//     anyone: an h2c upgrade (RFC 7540 §3.2) that the app answered 101
//     turned the connection into a raw tunnel past routing and auth. A
//     server may ignore Upgrade (RFC 9110 §7.8): the request goes on as
//     plain HTTP/1.1, as it would to a server without h2c. WebSocket is
//     relayed on every proxied route (routes have no setting for it),
//     on an HTTP/1.1 GET only (RFC 6455 §4.1): on another method, or in
//     an HTTP/1.0 request (where RFC 9110 §7.8 asks for Upgrade to be
//     ignored), its upgrade is ignored too.
func dropInbound(name string, vals []string, trusted bool, r *http.Request) bool {
	switch name {
	case "X-Real-Ip", "True-Client-Ip", "Cf-Connecting-Ip", "X-Client-Ip", "X-Original-Url", "X-Rewrite-Url",
		"X-Forwarded-Uri", "X-Forwarded-Port", "X-Envoy-Original-Path",
		"Client-Ip", "X-Cluster-Client-Ip", "Fastly-Client-Ip", "X-Proxyuser-Ip", "X-Original-Forwarded-For",
		"X-Forwarded-Scheme", "X-Forwarded-Ssl", "Front-End-Https", "X-Url-Scheme",
		"X-Host", "X-Original-Host", "X-Forwarded-Server", "X-Forwarded-Path",
		"X-Http-Method-Override", "X-Http-Method", "X-Method-Override":
		return !trusted
	case "Http2-Settings",
		// CVE-2025-29927: Next.js trusted this internal header and skipped
		// its middleware (and the auth checks in it) when a client sent it.
		"X-Middleware-Subrequest":
		return true
	case "Upgrade":
		return !isWebSocket(vals) || r.Method != http.MethodGet || r.ProtoMajor == 1 && r.ProtoMinor == 0
	}
	return strings.IndexByte(name, '_') >= 0 || identityFamily(name)
}

// identityFamilies are the name prefixes (canonical form) of the identity
// headers other auth proxies and gateways give their apps; an app moved
// behind Gatehouse may still trust them, so no client may send one:
// oauth2-proxy (X-Auth-Request-*), Authelia and Authentik (Remote-*,
// X-Authentik-*), Apache and Grafana's auth proxy (X-Remote-*,
// X-Webauth-*), AWS ALB (X-Amzn-Oidc-*), Azure App Service
// (X-Ms-Client-Principal*, X-Ms-Token-*), Google IAP
// (X-Goog-Authenticated-User-*), Cloudflare Access (Cf-Access-*),
// Pomerium (X-Pomerium-*), Kong (X-Consumer-*, X-Authenticated-*).
var identityFamilies = [...]string{"X-Auth-Request-", "X-Authentik-", "X-Remote-", "X-Webauth-", "X-Amzn-Oidc-",
	"X-Ms-Client-Principal", "X-Ms-Token-", "X-Goog-Authenticated-User-", "X-Pomerium-", "X-Consumer-", "X-Authenticated-"}

// identityFamily reports whether name (canonical) is of identityFamilies,
// or Remote-* or Cf-Access-*; most names are ruled out by their first
// letters.
func identityFamily(name string) bool {
	if len(name) < 7 {
		return false
	}
	switch name[0] {
	case 'R':
		return strings.HasPrefix(name, "Remote-")
	case 'C':
		return strings.HasPrefix(name, "Cf-Access-")
	case 'X':
		if name[1] != '-' {
			return false
		}
		for _, p := range identityFamilies {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
	}
	return false
}

// hasEdgeSpace reports whether a value starts or ends with SP or HTAB.
func hasEdgeSpace(vals []string) bool {
	for _, v := range vals {
		if v != "" && (v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
			return true
		}
	}
	return false
}

// encodeQuery percent-encodes the bytes of q that RFC 3986 §3.4 does not
// allow in a query (anything but pchar, "/" and "?"; "%" is left for
// cleanQuery to judge). q itself is returned when there are none: no
// allocation for the common query.
func encodeQuery(q string) string {
	i := 0
	for i < len(q) && queryByte[q[i]] {
		i++
	}
	if i == len(q) {
		return q
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(q)+16)
	b = append(b, q[:i]...)
	for ; i < len(q); i++ {
		if c := q[i]; queryByte[c] {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// queryByte marks the bytes a query may hold as they are: unreserved,
// sub-delims, ":", "@", "/", "?" (RFC 3986 §3.4), and "%".
var queryByte = func() (t [256]bool) {
	for _, c := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?%" {
		t[c] = true
	}
	return t
}()

// isWebSocket reports whether Upgrade values ask for WebSocket and
// nothing else (RFC 6455 §4.1), the one upgrade Gatehouse relays.
func isWebSocket(upgrade []string) bool {
	return len(upgrade) == 1 && strings.EqualFold(upgrade[0], "websocket")
}

// isToken reports whether s is an RFC 9110 token (§5.6.2): what a method
// is (§9.1), and what a Forwarded parameter may be without quotes.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

func peerAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// clientFromXFF walks X-Forwarded-For from the right, skipping trusted
// proxies; the first untrusted address is the client (Caddy's
// trusted_proxies model). A malformed entry stops the walk: everything to
// its left is client-controlled.
func clientFromXFF(st *state, xff []string, peer netip.Addr) netip.Addr {
	client := peer
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			j := strings.LastIndexByte(list, ',')
			part := strings.TrimSpace(list[j+1:])
			if j < 0 {
				list = ""
			} else {
				list = list[:j]
			}
			a, err := netip.ParseAddr(part)
			if err != nil {
				// Some load balancers (Azure Application Gateway, IIS
				// ARR) append the client's port: 203.0.113.9:4711,
				// [2001:db8::1]:4711. Caddy reads those too.
				ap, perr := netip.ParseAddrPort(part)
				if perr != nil {
					return client
				}
				a = ap.Addr()
			}
			a = a.Unmap()
			client = a
			if !st.snap.IsTrusted(a) {
				return a
			}
		}
	}
	return client
}

// validRequestID accepts ids of visible ASCII without quotes or
// backslashes, at most 128 bytes, so an accepted id is safe to log.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// newRequestID returns a new id (a random per-process prefix and 64
// random bits) as the one-value slice the X-Request-Id headers share
// (capped: an append copies). The bits come from the runtime's ChaCha8
// generator (math/rand/v2), a few nanoseconds: a sequence number, as it
// was, told every client how many requests the instance had served
// between two of its own. The id's bytes and the slice are one
// allocation (ridBox), not two; the bytes are never written again.
func (e *Engine) newRequestID() []string {
	b := new(ridBox)
	n := copy(b.buf[:], e.ridPrefix)
	b.buf[n] = '-'
	// Base 36, zero-padded to 13 digits (2^64-1 is "3w5e11264sgsf"): one
	// length for every id.
	var digits [13]byte
	d := strconv.AppendUint(digits[:0], rand.Uint64(), 36)
	out := append(append(b.buf[:n+1], "0000000000000"[len(d):]...), d...)
	if &out[0] == &b.buf[0] {
		b.vals[0] = unsafe.String(&out[0], len(out))
	} else {
		b.vals[0] = string(out) // cannot happen: 12 + 1 + 13 bytes at most
	}
	return b.vals[:]
}

// ridBox is a generated request id and its header value slice.
type ridBox struct {
	vals [1]string
	buf  [32]byte
}

// normalizeHost lowercases the Host header and removes its port and a
// trailing dot. net/http has already rejected syntactically invalid hosts.
func normalizeHost(h string) (string, bool) {
	if h == "" {
		return "", true
	}
	if h[0] == '[' { // IPv6 literal
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", false
		}
		// RFC 3986 §3.2.2: an IPv6 address in the brackets, then a port
		// or nothing. Anything else ("[::1]:80junk", "[internal.host]")
		// would route by the brackets while the upstream gets the rest.
		if a, err := netip.ParseAddr(h[1:end]); err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		if rest := h[end+1:]; rest != "" {
			if rest[0] != ':' || !validPort(rest[1:]) {
				return "", false
			}
		}
		return strings.ToLower(h[:end+1]), true
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if !validPort(h[i+1:]) {
			return "", false
		}
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	upper := false
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return "", false
		}
	}
	if upper {
		h = strings.ToLower(h)
	}
	return h, true
}

// validPort reports whether p is a Host's port: empty (RFC 3986 §3.2.3
// allows it) or a decimal number that fits in 16 bits.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	_, err := strconv.ParseUint(p, 10, 16)
	return err == nil
}

// stripCookies removes the login cookies (named base, base_*, and their
// __Host- forms) from the Cookie headers. Other cookies pass unchanged; a
// header left empty is removed.
func stripCookies(h http.Header, base string) {
	vals := h["Cookie"]
	if len(vals) == 0 {
		return
	}
	found := false
	for _, v := range vals {
		if strings.Contains(v, base) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	var out []string
	for _, v := range vals {
		var kept []string
		for part := range strings.SplitSeq(v, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			if part == "" || oidc.IsOwnCookie(base, strings.TrimSpace(name)) {
				continue
			}
			kept = append(kept, part)
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	if len(out) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = out
}

// dropOwnSetCookies removes from an upstream's response the Set-Cookie
// fields that would set one of the login cookies (named base, base_*, and
// their __Host- forms; oidc.IsOwnCookie).
func dropOwnSetCookies(h http.Header, base string) {
	vals := h["Set-Cookie"]
	var kept []string
	for i, v := range vals {
		name, _, _ := strings.Cut(v, "=")
		if !oidc.IsOwnCookie(base, strings.TrimSpace(name)) {
			if kept != nil {
				kept = append(kept, v)
			}
			continue
		}
		if kept == nil {
			kept = append(make([]string, 0, len(vals)), vals[:i]...)
		}
	}
	switch {
	case kept == nil: // none was a login cookie: nothing allocated
	case len(kept) == 0:
		delete(h, "Set-Cookie")
	default:
		h["Set-Cookie"] = kept
	}
}

// clientCert enforces mutual TLS at the HTTP layer, where the Host is
// known. The handshake verified the certificate (if any) by the settings
// of the name the connection was made for (SNI); a request whose Host has
// other client-auth settings (another CA, another mode, or none) is
// answered 421 Misdirected Request (RFC 9110 §15.5.20), which tells the
// client to open a connection for that host: otherwise a certificate
// from A's CA, on a connection for A, would pass B's require check
// (Caddy's strict_sni_host, on whenever the settings differ). Then a host
// that requires a certificate gets none without one (403), and a verified
// subject goes upstream in the host's header.
func clientCert(t *tlsx.Front, rc *phase.RequestCtx, r *http.Request) *phase.Error {
	ca := t.ClientAuth[rc.Host]
	if sni := r.TLS.ServerName; !strings.EqualFold(strings.TrimSuffix(sni, "."), rc.Host) && t.ForServerName(sni) != ca {
		return &phase.Error{Kind: phase.KindBadRequest, Status: http.StatusMisdirectedRequest,
			Detail: "this connection was not made for this host; connect again"}
	}
	if ca == nil {
		return nil
	}
	subject := tlsx.Subject(r.TLS)
	if subject != "" {
		r.Header[ca.Header] = []string{subject}
		return nil
	}
	if !ca.Require {
		return nil
	}
	return &phase.Error{Kind: phase.KindForbidden, Detail: "a client certificate is required"}
}

// hasLower reports whether s has an ASCII lower-case letter.
func hasLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			return true
		}
	}
	return false
}
