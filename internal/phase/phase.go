// Package phase is the contract between Gatehouse's request engine
// (internal/proxy) and the filters that plug into it: the per-request
// context, the one error type, and the filter interfaces, one per phase.
//
// The engine runs, for every request:
//
//	early → route → request filters → upstream peer → upstream request
//	filters → (round trip) → response filters → logging
//
// Feature packages (header edits, auth, rate limits) implement the
// interfaces here and are attached to routes by internal/compile; they never
// import the engine, and the engine never names them.
package phase

import (
	"net/http"
	"net/netip"
	"time"
)

// RequestCtx is the state of one request, shared by all phases (Pingora's
// CTX, oauth2-proxy's RequestScope). It is created in the early phase and
// read by logging, which runs exactly once per request.
type RequestCtx struct {
	Start     time.Time
	RequestID string
	// Peer is the address of the TCP peer; PeerTrusted says whether it is
	// one of server.trusted_proxies.
	Peer        netip.Addr
	PeerTrusted bool
	// ClientIP is the client after the trusted-proxy rules: the peer, or
	// the right-most untrusted X-Forwarded-For entry of a trusted peer.
	ClientIP netip.Addr
	// TLS: the request came over HTTPS.
	TLS bool
	// Host is the request's host, lowercase, without port.
	Host string
	// Path is the normalized, escaped request path.
	Path  string
	Route string // the matched route's name; "" when none matched
	// TraceID is the request's trace (hex), when tracing is on.
	TraceID string

	// Upstream phase results.
	Upstream   string        // the target tried last ("host:port")
	Attempts   int           // upstream attempts made
	UpstreamRT time.Duration // time to upstream response headers

	// Decisions, recorded by the filters that make them, so one access
	// line says why a request got 401/403/429. Empty: the route has no
	// such policy.
	Auth       string // "allow" or "deny"
	AuthReason string // e.g. `missing role admin`; never a token or claim value that is secret
	RateLimit  string // "pass", "limited" or "soft-limited"
	// Subject and ClientID of the verified token, when there is one, and
	// the name of the issuer that issued it: a sub or client_id is only
	// unique within its issuer (OpenID Connect Core §2).
	Subject  string
	ClientID string
	Issuer   string
	// Identity is what authentication asserts about the client. The
	// engine adds it to the upstream request after every header edit, so
	// neither a client nor a route can change it (client-sent copies of
	// these names are removed in the early phase, on every route).
	Identity Identity

	// Cancel, on routes that ask for it (runtime.Route.Cancelable), ends
	// the request's context: an upstream exchange or stream in progress is
	// cut. Filters keep it to end streams later (a session's logout).
	Cancel func()
	// ends run when the request ends, after logging (OnEnd).
	ends []func()

	// Outcome, read by logging.
	Status int   // status sent (or 499 when the client left first)
	Bytes  int64 // response body bytes written
	Err    *Error
}

// Identity is a set of upstream request headers with clean values
// (no control characters), built once per verified token and shared by
// its requests: never modify one in place.
type Identity struct {
	// Headers have canonical names and one value each, as a slice with
	// len == cap (an append copies).
	Headers []Header
	// Wire is the same headers as an HTTP/1.1 header block, "Name:
	// value\r\n" each, written as is where Gatehouse writes the upstream
	// request itself.
	Wire []byte
}

// Header is one header name and its values.
type Header struct {
	Name   string
	Values []string
}

// NewIdentity builds an Identity; values must already be clean.
func NewIdentity(headers []Header) Identity {
	id := Identity{Headers: headers[:len(headers):len(headers)]}
	for _, h := range headers {
		for _, v := range h.Values {
			id.Wire = append(id.Wire, h.Name...)
			id.Wire = append(id.Wire, ": "...)
			id.Wire = append(id.Wire, v...)
			id.Wire = append(id.Wire, "\r\n"...)
		}
	}
	return id
}

// With returns a copy of id with one more header (a per-request value).
func (id Identity) With(name, value string) Identity {
	return NewIdentity(append(id.Headers, Header{Name: name, Values: []string{value}}))
}

// Values returns the values of the identity header named name (canonical
// form), or nil: what filters that key on a header read, since identity
// headers are not in the request's header map.
func (id *Identity) Values(name string) []string {
	if id == nil {
		return nil
	}
	for _, hv := range id.Headers {
		if hv.Name == name {
			return hv.Values
		}
	}
	return nil
}

// AddTo sets the headers in h, replacing any value there.
func (id *Identity) AddTo(h http.Header) {
	for _, hv := range id.Headers {
		h[hv.Name] = hv.Values
	}
}

// OnEnd registers f to run once when the request ends, after the access
// line is written: filters release what they hold for the request there
// (stream registrations, timers, in-flight counts).
func (rc *RequestCtx) OnEnd(f func()) { rc.ends = append(rc.ends, f) }

// End runs the OnEnd functions, last registered first. The engine calls it.
func (rc *RequestCtx) End() {
	for i := len(rc.ends) - 1; i >= 0; i-- {
		rc.ends[i]()
	}
	rc.ends = nil
}

// Handler is a response Gatehouse makes itself (runtime.ActionLocal), such
// as the login callback. It writes a response, or returns an error for the
// engine to answer (failToProxy), never both. Like a RequestFilter, it
// must not keep r's header map past the call.
type Handler interface {
	ServeLocal(rc *RequestCtx, w http.ResponseWriter, r *http.Request) error
}

// Outcome tells the engine what a request filter did.
type Outcome int

const (
	// Continue: go on to the next filter or phase.
	Continue Outcome = iota
	// Responded: the filter wrote a complete response; stop here. A filter
	// never both writes a response and returns an error (Pingora's rule).
	Responded
)

// RequestFilter runs after routing, before an upstream is chosen, in the
// order compile gives: request id → authn → authz → rate limit → header
// edits. It may inspect and change r (never its body's position), answer
// (Responded), or fail with an error that the engine turns into a status.
// It must not keep r's header map (r.Header) past the request, nor start
// anything that reads it later: h1server (plain listeners) and h2server
// (HTTP/2 over TLS) clear that map and fill it with another request
// (their ReuseRequestHeaders). Its strings may be kept.
type RequestFilter interface {
	FilterRequest(rc *RequestCtx, w http.ResponseWriter, r *http.Request) (Outcome, error)
}

// UpstreamRequestFilter edits the request about to be sent upstream (out is
// the engine's copy; forwarding headers are already set). It runs once per
// attempt and must not fail. It must not keep out, its URL or its header
// map past the call: the engine reuses them for later requests.
type UpstreamRequestFilter interface {
	FilterUpstreamRequest(rc *RequestCtx, out *http.Request)
}

// ResponseFilter edits response headers just before they are written to
// the client, for every response the route produces: proxied, local
// (static, redirect, respond) and errors. It runs once per response.
type ResponseFilter interface {
	FilterResponse(rc *RequestCtx, status int, h http.Header)
}

// A FieldAdder is a ResponseFilter that says how many fields it adds to a
// response header at most, so that the header can be made with room for
// them (one that does not say counts as one).
type FieldAdder interface {
	FieldsAdded() int
}
