// Package authn is the request filter that authenticates bearer tokens
// and authorizes them against a route's policy: it picks the issuer by the
// token's iss, verifies it (jwt), remembers verified tokens (Cache), decides
// the policy (rbac), and hands the identity upstream in headers. Errors
// follow RFC 6750: 401 with WWW-Authenticate (error="invalid_token", no
// detail an attacker could use), 403 with error="insufficient_scope", and
// 503 when the issuer's keys cannot be had (fail closed).
package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"gatehouse/internal/auth/assert"
	"gatehouse/internal/auth/introspect"
	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/auth/jwt"
	"gatehouse/internal/auth/oidc"
	"gatehouse/internal/auth/rbac"
	"gatehouse/internal/phase"
)

// Issuer is one accepted token issuer.
type Issuer struct {
	Name       string
	URL        string // exact iss
	Verifier   *jwt.Verifier
	Keys       *issuer.Keys // the issuer's metadata and keys
	RolesClaim string
	ScopeClaim string
	// Introspector checks opaque tokens; nil when the issuer has none.
	Introspector *introspect.Client
	PositiveTTL  time.Duration // reuse an active answer this long (≤ exp)
	NegativeTTL  time.Duration // reuse an inactive answer this long
}

// Headers name the identity headers sent upstream ("" or "off": not sent).
type Headers struct {
	Subject, Roles, Scopes, Client, Issuer string
}

// Observer counts decisions; reason is from a fixed set (see Reason).
type Observer interface {
	Decision(route, result, reason string)
	CacheHit()
}

// DecisionCounter is what an Observer may offer besides Decision: one
// decision's counter, taken once per filter for the decisions nearly
// every request makes (allowed: valid, session), so that they cost no
// label lookup (Prometheus's WithLabelValues hashes its labels on every
// call: 0.7 % of the proxy's CPU with a token on every request).
type DecisionCounter interface {
	DecisionCounter(route, result, reason string) func()
}

// Filter is a route's authn/authz request filter.
type Filter struct {
	Route            string
	Mode             string // optional or required
	Issuers          []*Issuer
	Policy           rbac.Policy
	ForwardToken     bool
	Preflight        bool
	ResourceMetadata string
	// OnIntrospectionError: "deny" answers 401 when introspection cannot
	// answer; anything else answers 503. Never allow.
	OnIntrospectionError string
	Headers              Headers
	// AcceptBearer: the route takes Authorization: Bearer tokens.
	AcceptBearer bool
	// Sessions, when set, lets browsers authenticate with their login
	// session; the session's access token then goes through the same
	// verification, cache and policy as a bearer token.
	Sessions *oidc.Login
	// ForwardSessionToken sends a session's access token upstream.
	ForwardSessionToken bool
	// Assertion, when set, adds a signed identity JWT to the identity
	// headers.
	Assertion *assert.Asserter
	Cache     *Cache
	Obs       Observer // may be nil
	Now       func() time.Time

	// The allow decisions' counters, taken from Obs at their first use
	// (allowed): a series appears when its first decision is counted.
	allowValid, allowSession allowCounter
}

// allowCounter is one allow decision's counter, taken once.
type allowCounter struct {
	once sync.Once
	inc  func()
}

// allowed counts an allow decision for reason (valid or session) through
// c, which it resolves from Obs the first time.
func (f *Filter) allowed(c *allowCounter, reason string) {
	c.once.Do(func() {
		if dc, ok := f.Obs.(DecisionCounter); ok {
			c.inc = dc.DecisionCounter(f.Route, "allow", reason)
		} else {
			c.inc = func() { f.Obs.Decision(f.Route, "allow", reason) }
		}
	})
	c.inc()
}

// FilterRequest implements phase.RequestFilter.
func (f *Filter) FilterRequest(rc *phase.RequestCtx, w http.ResponseWriter, r *http.Request) (phase.Outcome, error) {
	if queryHasAccessToken(r.URL.RawQuery) {
		// OAuth 2.1 §5.2.2 takes no token from the query, and RFC 6750
		// §2 allows one method per request (400 invalid_request, §3.1).
		// Gatehouse never verifies such a token, yet the app behind may
		// read it, beside a verified header, or alone on an optional
		// route or a preflight, as one Gatehouse checked.
		return phase.Continue, f.deny(rc, "token_in_query", "an access token in the query string", phase.KindBadRequest, "invalid_request")
	}
	if f.Preflight && isPreflight(r) {
		// A CORS preflight carries no credentials (Fetch §4.8, "CORS-
		// preflight fetch"): a token in one is not a browser's, and the
		// app behind would take it for one Gatehouse verified.
		delete(r.Header, "Authorization")
		return phase.Continue, nil
	}
	token, present := bearer(r)
	if f.Sessions != nil && (!present || !f.AcceptBearer) {
		return f.session(rc, w, r)
	}
	if !present {
		if f.Mode == "optional" && r.Header.Get("Authorization") == "" {
			return phase.Continue, nil
		}
		return phase.Continue, f.deny(rc, "no_token", "no bearer token", phase.KindUnauthorized, "")
	}
	p, reason, err := f.verify(r.Context(), token, f.nowAt(rc))
	if err != nil {
		kind := phase.KindUnauthorized
		switch {
		case reason == "keys_unavailable":
			kind = phase.KindAuthUnavailable
		case reason == "introspection_unavailable" && f.OnIntrospectionError != "deny":
			kind = phase.KindAuthUnavailable
		}
		return phase.Continue, f.deny(rc, reason, err.Error(), kind, "invalid_token")
	}
	rc.Subject, rc.ClientID, rc.Issuer = p.Subject, p.ClientID, p.Issuer
	if ok, why := f.Policy.Decide(p); !ok {
		return phase.Continue, f.deny(rc, "insufficient", why, phase.KindForbidden, "insufficient_scope")
	}
	rc.Auth = "allow"
	if f.Obs != nil {
		f.allowed(&f.allowValid, "valid")
	}
	f.setIdentity(rc, p)
	if !f.ForwardToken {
		delete(r.Header, "Authorization")
	}
	return phase.Continue, nil
}

// session authenticates r by its login session. Without one, a browser
// navigation is sent to log in and anything else gets 401. A session whose
// token is refused answers 401 rather than a new login, so a token the
// policy can never accept does not loop the browser through the issuer.
//
// The client's own Authorization header (Basic, or a bearer token the
// route does not take) was not verified and is never sent on: the app
// would take it for Gatehouse's word. With ForwardSessionToken the
// session's access token takes its place.
func (f *Filter) session(rc *phase.RequestCtx, w http.ResponseWriter, r *http.Request) (phase.Outcome, error) {
	delete(r.Header, "Authorization")
	a, err := f.Sessions.Session(rc, r)
	if err != nil {
		return phase.Continue, f.deny(rc, "session_unavailable", "session store or issuer unavailable", phase.KindAuthUnavailable, "")
	}
	if a == nil {
		if f.Mode == "optional" {
			return phase.Continue, nil
		}
		if oidc.IsNavigation(r) {
			rc.Auth, rc.AuthReason = "deny", "login required"
			if f.Obs != nil {
				f.Obs.Decision(f.Route, "deny", "login_required")
			}
			ret := rc.Path
			if r.URL.RawQuery != "" {
				ret += "?" + r.URL.RawQuery
			}
			if err := f.Sessions.Challenge(w, r, ret); err != nil {
				return phase.Continue, err
			}
			return phase.Responded, nil
		}
		pe := f.deny(rc, "no_session", "no session", phase.KindUnauthorized, "")
		pe.Detail = "a login session is required"
		if f.AcceptBearer {
			pe.Detail = "a login session or a valid bearer token is required"
		}
		return phase.Continue, pe
	}
	p, reason, err := f.verify(r.Context(), a.Record.AccessToken, f.now())
	if err != nil {
		kind := phase.KindUnauthorized
		if reason == "keys_unavailable" || reason == "introspection_unavailable" {
			kind = phase.KindAuthUnavailable
		}
		return phase.Continue, f.deny(rc, reason, "session token: "+err.Error(), kind, "invalid_token")
	}
	rc.Subject, rc.ClientID, rc.Issuer = p.Subject, p.ClientID, p.Issuer
	if ok, why := f.Policy.Decide(p); !ok {
		pe := f.deny(rc, "insufficient", why, phase.KindForbidden, "insufficient_scope")
		pe.Detail = "your account does not have access to this resource"
		pe.Session = &phase.Session{User: a.Record.User(), LogoutPath: f.Sessions.LogoutPath()}
		return phase.Continue, pe
	}
	rc.Auth, rc.AuthReason = "allow", "session"
	if f.Obs != nil {
		f.allowed(&f.allowSession, "session")
	}
	f.Sessions.Track(rc, a)
	f.setIdentity(rc, p)
	if f.ForwardSessionToken {
		r.Header.Set("Authorization", "Bearer "+a.Record.AccessToken)
	}
	return phase.Continue, nil
}

// isPreflight reports whether r has a CORS preflight's shape: OPTIONS with
// Origin and Access-Control-Request-Method, and no body. Anything else on
// a route with a token policy needs a token, OPTIONS included.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.ContentLength == 0 &&
		r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// bearer extracts an RFC 6750 bearer token from Authorization. present is
// true when the header uses the Bearer scheme (even if malformed).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return "", len(h) > 1
	}
	scheme, tok, ok := strings.Cut(h[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

func (f *Filter) deny(rc *phase.RequestCtx, reason, detail string, kind phase.Kind, code string) *phase.Error {
	rc.Auth, rc.AuthReason = "deny", detail
	if f.Obs != nil {
		f.Obs.Decision(f.Route, "deny", reason)
	}
	var b strings.Builder
	b.WriteString(`Bearer realm="gatehouse"`)
	if code != "" {
		b.WriteString(`, error="` + code + `"`)
	}
	if code == "insufficient_scope" && len(f.Policy.Scopes) > 0 {
		b.WriteString(`, scope="` + strings.Join(f.Policy.Scopes, " ") + `"`)
	}
	if f.ResourceMetadata != "" && kind == phase.KindUnauthorized {
		b.WriteString(`, resource_metadata="` + f.ResourceMetadata + `"`)
	}
	pe := &phase.Error{Kind: kind, Header: http.Header{}}
	switch kind {
	case phase.KindUnauthorized:
		pe.Detail = "a valid bearer token is required"
		pe.Header.Set("WWW-Authenticate", b.String())
	case phase.KindForbidden:
		pe.Detail = "the token does not grant access to this resource"
		pe.Header.Set("WWW-Authenticate", b.String())
	case phase.KindBadRequest:
		pe.Detail = "access tokens are taken from the Authorization header only"
		pe.Header.Set("WWW-Authenticate", b.String())
	default:
		pe.Detail = "authentication is unavailable; try again shortly"
		pe.Header.Set("Retry-After", "5")
	}
	return pe
}

// queryHasAccessToken reports whether the raw query q has a parameter an
// app could read as access_token (RFC 6750 §2.3): its name
// percent-decoded, compared without case (ASP.NET Core's query, which
// SignalR reads the token from, ignores it), with PHP's mangling (leading
// spaces dropped, cut at NUL; a space, "." or an unclosed "[" taken for
// "_"), and with an array's brackets (access_token[]: PHP, Rack and qs
// file it under access_token); ";" separates parameters too, as some
// parsers (older Rack) take it.
func queryHasAccessToken(q string) bool {
	for q != "" {
		var kv string
		i := strings.IndexAny(q, "&;")
		if i < 0 {
			kv, q = q, ""
		} else {
			kv, q = q[:i], q[i+1:]
		}
		k, _, _ := strings.Cut(kv, "=")
		if len(k) < len("access_token") {
			continue
		}
		if strings.ContainsAny(k, "%+") {
			if d, err := url.QueryUnescape(k); err == nil {
				k = d
			}
		}
		k = strings.TrimLeft(k, " ")
		if i := strings.IndexByte(k, 0); i >= 0 {
			k = k[:i] // PHP cuts a name at NUL
		}
		if i := strings.IndexByte(k, '['); i > 0 && strings.IndexByte(k[i:], ']') > 0 {
			k = k[:i] // access_token[] and access_token[a]: an array under access_token (PHP, Rack, qs)
		}
		if len(k) == len("access_token") && strings.EqualFold(k[:6], "access") && strings.EqualFold(k[7:], "token") &&
			(k[6] == '_' || k[6] == ' ' || k[6] == '.' || k[6] == '[') {
			return true
		}
	}
	return false
}

// verify returns the principal of a token, from the cache or by
// verification, or a reason (from a fixed set, for metrics) and an error.
func (f *Filter) verify(ctx context.Context, token string, now time.Time) (*rbac.Principal, string, error) {
	if p, inactiveAt, ok := f.Cache.Get(token, now); ok {
		switch is := f.introspector(); {
		case p != nil:
			if f.Obs != nil {
				f.Obs.CacheHit()
			}
			if !f.accepts(p.Issuer) {
				return nil, "wrong_issuer", jwt.ErrIssuer
			}
			return p, "", nil
		case is != nil && is.Name == inactiveAt:
			// Not active at the issuer this route would ask. Another
			// issuer's answer says nothing about this one's tokens.
			if f.Obs != nil {
				f.Obs.CacheHit()
			}
			return nil, "inactive", introspect.ErrInactive
		}
	}
	if strings.Count(token, ".") != 2 {
		return f.introspect(ctx, token, now)
	}
	is := f.pickIssuer(token)
	if is == nil {
		return nil, "wrong_issuer", jwt.ErrIssuer
	}
	// The generation is read before verifying: a refresh that drops the
	// key while this runs makes the first cache hit check it again.
	ks, _ := is.Verifier.Keys.(KeySet)
	var gen uint64
	if ks != nil {
		gen = ks.Generation()
	}
	claims, signer, err := is.Verifier.VerifyKey(ctx, token)
	if err != nil {
		return nil, Reason(err), err
	}
	p := rbac.Extract(is.Name, claims, is.RolesClaim, is.ScopeClaim)
	if !identityFits(p.Subject) || !identityFits(p.ClientID) {
		return nil, "malformed", errIdentityUnfit
	}
	p.Identity = f.identity(p)
	exp, _ := claims.Expiry() // Verify refused tokens without exp
	if ks != nil {
		f.Cache.PutSigned(token, p, exp, now, SignedBy{Keys: ks, Generation: gen, Signer: signer})
	} else {
		f.Cache.Put(token, p, exp, now)
	}
	return p, "", nil
}

// introspect checks an opaque token with the first of the route's issuers
// that can introspect (RFC 7662). An inactive answer is remembered for
// NegativeTTL, an active one for PositiveTTL (never past exp).
func (f *Filter) introspect(ctx context.Context, token string, now time.Time) (*rbac.Principal, string, error) {
	is := f.introspector()
	if is == nil {
		return nil, "malformed", jwt.ErrMalformed
	}
	claims, err := is.Introspector.Introspect(ctx, token)
	switch {
	case errors.Is(err, introspect.ErrInactive):
		f.Cache.PutNegative(token, is.Name, now.Add(is.NegativeTTL))
		return nil, "inactive", err
	case err != nil:
		return nil, "introspection_unavailable", err
	}
	p := rbac.Extract(is.Name, claims, is.RolesClaim, is.ScopeClaim)
	if !identityFits(p.Subject) || !identityFits(p.ClientID) {
		return nil, "malformed", errIdentityUnfit
	}
	p.Identity = f.identity(p)
	until := now.Add(is.PositiveTTL)
	if exp, ok := jwt.Claims(claims).Expiry(); ok && exp.Before(until) {
		until = exp
	}
	f.Cache.Put(token, p, until, now)
	return p, "", nil
}

// introspector is the first of the route's issuers that can introspect
// (RFC 7662): the one asked about an opaque token. nil: none can.
func (f *Filter) introspector() *Issuer {
	for _, x := range f.Issuers {
		if x.Introspector != nil {
			return x
		}
	}
	return nil
}

func (f *Filter) accepts(name string) bool {
	for _, is := range f.Issuers {
		if is.Name == name {
			return true
		}
	}
	return false
}

// pickIssuer reads the unverified iss to choose a verifier; the verifier
// then checks it (and everything else) properly.
func (f *Filter) pickIssuer(token string) *Issuer {
	if len(f.Issuers) == 1 {
		return f.Issuers[0]
	}
	parts := strings.SplitN(token, ".", 3)
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return nil
	}
	for _, is := range f.Issuers {
		if is.URL == c.Iss {
			return is
		}
	}
	return nil
}

// nowAt is the filter's clock for a bearer token's request: the injected
// clock, or the request's start, which the engine read microseconds
// before (a clock read less per request). A session's request reads the
// clock afresh (now): loading the session may have refreshed its token.
func (f *Filter) nowAt(rc *phase.RequestCtx) time.Time {
	if f.Now == nil && !rc.Start.IsZero() {
		return rc.Start
	}
	return f.now()
}

func (f *Filter) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// identity computes the identity headers of p once, when its token is
// verified; every later request with the token reuses them. Values are
// cleaned of control characters: a claim can hold anything.
func (f *Filter) identity(p *rbac.Principal) phase.Identity {
	var out []phase.Header
	add := func(name, v string) {
		if name == "" || name == "off" || v == "" {
			return
		}
		out = append(out, phase.Header{Name: http.CanonicalHeaderKey(name), Values: []string{clean(v)}[:1:1]})
	}
	add(f.Headers.Subject, p.Subject)
	add(f.Headers.Roles, joinFitting(p.Roles, ",", roleFits))
	add(f.Headers.Scopes, joinFitting(p.Scopes, " ", scopeFits))
	add(f.Headers.Client, p.ClientID)
	add(f.Headers.Issuer, p.Issuer)
	return phase.NewIdentity(out)
}

// setIdentity gives the request the principal's identity headers, and
// its signed assertion when configured (a signing failure leaves it out;
// the app then sees no assertion, never a stale one). The engine sends
// them after every header edit.
func (f *Filter) setIdentity(rc *phase.RequestCtx, p *rbac.Principal) {
	rc.Identity = p.Identity
	if a := f.Assertion; a != nil {
		if tok, err := a.For(p, f.now()); err == nil {
			rc.Identity = p.Identity.With(a.Header, tok)
		}
	}
}

// joinFitting joins the members that fit joined by sep: a list header
// means exactly what the token's list did. A role "viewer,admin" joined
// as is would read as the two roles viewer and admin to the app, which
// trusts the header; it is left out instead (Gatehouse's own policy still
// sees it whole).
func joinFitting(members []string, sep string, fits func(string) bool) string {
	n := 0
	for _, m := range members {
		if fits(m) {
			n++
		}
	}
	if n == len(members) {
		return strings.Join(members, sep)
	}
	kept := make([]string, 0, n)
	for _, m := range members {
		if fits(m) {
			kept = append(kept, m)
		}
	}
	return strings.Join(kept, sep)
}

// roleFits reports whether a role can be a member of a comma-separated
// list (RFC 9110 §5.6.1) as it is: not empty, no comma, no control
// character, no whitespace at either end (a list parser trims it).
func roleFits(s string) bool {
	if s == "" || s[0] == ' ' || s[0] == '\t' || s[len(s)-1] == ' ' || s[len(s)-1] == '\t' {
		return false
	}
	return !strings.ContainsRune(s, ',') && !hasCTL(s)
}

// scopeFits reports whether s is an RFC 6749 §3.3 scope-token, what a
// space-separated scope list can hold: printable ASCII but '"' and '\'.
func scopeFits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// hasCTL reports whether s holds a control character: an identity value
// with one cannot be sent as it is, and without it it would name
// someone else ("al\x00ice" is not alice).
func hasCTL(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// clean removes control characters: the last guard of the identity
// block's values, which verify (sub, client_id) and the list filters
// (roles, scopes) have already kept free of them; it runs once per
// verified token, not per request.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// identityFits reports whether a sub or client_id can be sent as an
// identity header as it is: no control character, and no space or tab at
// either end. Either would make the header name someone else: "al\x00ice"
// would have to lose the NUL, and every HTTP/1.1 parser trims " alice"
// to alice (RFC 9112 §5.1), whom the app takes it for.
func identityFits(s string) bool {
	if s != "" && (s[0] == ' ' || s[len(s)-1] == ' ') {
		return false
	}
	return !hasCTL(s)
}

// errIdentityUnfit refuses a token whose sub or client_id does not fit an
// identity header (identityFits): its header could only name someone
// else.
var errIdentityUnfit = fmt.Errorf("%w: sub or client_id has a control character or a space at an end", jwt.ErrMalformed)

// Reason maps a verification error to a bounded metric label.
func Reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return "expired"
	case errors.Is(err, jwt.ErrNotYetValid):
		return "not_yet_valid"
	case errors.Is(err, jwt.ErrSignature):
		return "bad_signature"
	case errors.Is(err, jwt.ErrUnknownKey):
		return "unknown_kid"
	case errors.Is(err, jwt.ErrIssuer):
		return "wrong_issuer"
	case errors.Is(err, jwt.ErrAudience):
		return "wrong_audience"
	case errors.Is(err, jwt.ErrAlgorithm):
		return "bad_algorithm"
	case errors.Is(err, jwt.ErrType):
		return "wrong_type"
	case errors.Is(err, jwt.ErrKeysUnusable):
		return "keys_unavailable"
	case errors.Is(err, jwt.ErrTooLarge):
		return "too_large"
	case errors.Is(err, introspect.ErrInactive):
		return "inactive"
	}
	return "malformed"
}

// Cache remembers verified tokens by a 128-bit keyed hash of the token
// (never the token), until the token expires or MaxTTL passes, whichever
// is first. It is bounded: when full, an arbitrary entry makes room.
//
// A JWT is remembered only while the key that verified it is in its
// issuer's key set: after each refresh of the set, the first use of a
// remembered token checks that its kid still names that key, and forgets
// the token if not (issue 14: a token stayed accepted for up to MaxTTL
// after its key was withdrawn). Until the set changes, a hit costs two
// atomic loads more (no allocation).
//
// The key is two maphash values under secret per-process seeds: finding a
// token that collides with a cached one would take about 2^128 work
// without the seeds, and maphash costs a tenth of SHA-256 on a 700-byte
// token (measured), which matters on every request.
type Cache struct {
	MaxTTL time.Duration
	max    int
	seeds  [2]maphash.Seed

	mu sync.Mutex // guards m
	m  map[cacheKey]cacheEntry
}

type cacheKey [2]uint64

func (c *Cache) key(token string) cacheKey {
	return cacheKey{maphash.String(c.seeds[0], token), maphash.String(c.seeds[1], token)}
}

type cacheEntry struct {
	p   *rbac.Principal
	exp time.Time
	by  SignedBy // zero for introspected tokens and negative entries
	// inactiveAt, in a negative entry (p nil), names the issuer that
	// answered that the token is not active.
	inactiveAt string
}

// KeySet is a key set that verified tokens (issuer.Keys, jwks.Set).
type KeySet interface {
	// Generation changes whenever the set may have lost keys.
	Generation() uint64
	// Holds reports whether kid still names key in the set.
	Holds(kid string, key any) bool
}

// SignedBy ties a remembered token to the key that verified it.
type SignedBy struct {
	Keys       KeySet
	Generation uint64 // Keys.Generation(), read before verifying
	Signer     jwt.Signer
}

// NewCache returns a cache of at most max entries (0: caching off).
func NewCache(max int, maxTTL time.Duration) *Cache {
	return &Cache{max: max, MaxTTL: maxTTL, m: make(map[cacheKey]cacheEntry),
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
}

// Get returns the principal of a token verified before and still valid,
// or (p nil) the issuer that answered that it is not active.
func (c *Cache) Get(token string, now time.Time) (p *rbac.Principal, inactiveAt string, ok bool) {
	if c == nil || c.max == 0 {
		return nil, "", false
	}
	k := c.key(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, "", false
	}
	if !now.Before(e.exp) {
		delete(c.m, k)
		return nil, "", false
	}
	if ks := e.by.Keys; ks != nil {
		if g := ks.Generation(); g != e.by.Generation {
			if !ks.Holds(e.by.Signer.KID, e.by.Signer.Key) {
				delete(c.m, k) // the key left the set: verify again (and refuse)
				return nil, "", false
			}
			e.by.Generation = g
			c.m[k] = e
		}
	}
	return e.p, e.inactiveAt, true
}

// Put remembers a verified token until exp (capped by MaxTTL).
func (c *Cache) Put(token string, p *rbac.Principal, exp, now time.Time) {
	c.PutSigned(token, p, exp, now, SignedBy{})
}

// PutSigned remembers a verified JWT until exp (capped by MaxTTL), and
// while by.Keys holds the key that verified it.
func (c *Cache) PutSigned(token string, p *rbac.Principal, exp, now time.Time, by SignedBy) {
	if limit := now.Add(c.MaxTTL); c.MaxTTL > 0 && exp.After(limit) {
		exp = limit
	}
	c.store(token, cacheEntry{p: p, exp: exp, by: by})
}

// PutNegative remembers that issuer answered that a token is not active,
// until until.
func (c *Cache) PutNegative(token, issuer string, until time.Time) {
	c.store(token, cacheEntry{exp: until, inactiveAt: issuer})
}

func (c *Cache) store(token string, e cacheEntry) {
	if c == nil || c.max == 0 {
		return
	}
	k := c.key(token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = e
}

// Len is the number of cached tokens.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
