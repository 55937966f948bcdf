package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/runtime"
	"gatehouse/internal/testutil"
	"gatehouse/internal/testutil/fakeidp"
)

func authGate(t *testing.T, idp *fakeidp.IdP) (*gate, *recorder) {
	t.Helper()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
auth:
  issuers:
    main: { issuer: %q, audience: gatehouse, type: at+jwt, roles_claim: realm_access.roles, key_cooldown: 10ms }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: public, match: { path_prefix: /public }, upstream: app }
  - name: admin
    match: { path_prefix: /admin }
    upstream: app
    auth: { roles: { any_of: [admin] }, resource_metadata: "https://gw.example/.well-known/oauth-protected-resource" }
  - name: api
    match: { path_prefix: /api }
    upstream: app
    auth: { scopes: [kline.read], claims: { tenant: kline }, forward_token: false, preflight: true }
  - name: maybe
    match: { path_prefix: /maybe }
    upstream: app
    auth: { mode: optional }
`, idp.Issuer, hostport(up.Server)))
	return g, up
}

func TestBearerAuth(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	g, up := authGate(t, idp)
	admin := idp.Token(t, map[string]any{"sub": "alice", "aud": "gatehouse", "client_id": "portal",
		"realm_access": map[string]any{"roles": []string{"admin", "ops"}}, "scope": "openid kline.read", "tenant": "kline"})
	user := idp.Token(t, map[string]any{"sub": "bob", "aud": "gatehouse", "scope": "kline.read", "tenant": "flow"})
	otherAud := idp.Token(t, map[string]any{"sub": "alice", "aud": "elsewhere", "realm_access": map[string]any{"roles": []string{"admin"}}})
	tests := []struct {
		name, method, path, token string
		hdr                       []string
		body                      string
		want                      int
		wantAuth                  string // WWW-Authenticate contains
		reached                   bool
	}{
		{name: "public needs nothing", path: "/public/x", want: 200, reached: true},
		{name: "no token", path: "/admin/x", want: 401, wantAuth: `Bearer realm="gatehouse", resource_metadata="https://gw.example/.well-known/oauth-protected-resource"`},
		{name: "garbage token", path: "/admin/x", token: "not.a.token", want: 401, wantAuth: `error="invalid_token"`},
		{name: "wrong audience", path: "/admin/x", token: otherAud, want: 401, wantAuth: `error="invalid_token"`},
		{name: "admin allowed", path: "/admin/x", token: admin, want: 200, reached: true},
		{name: "missing role", path: "/admin/x", token: user, want: 403, wantAuth: `error="insufficient_scope"`},
		{name: "scope and claim", path: "/api/x", token: admin, want: 200, reached: true},
		{name: "claim mismatch", path: "/api/x", token: user, want: 403, wantAuth: `scope="kline.read"`},
		{name: "CORS preflight passes", method: "OPTIONS", path: "/api/x", hdr: []string{"Access-Control-Request-Method", "GET", "Origin", "https://app.example"}, want: 200, reached: true},
		// A preflight carries no credentials (Fetch): one that does is not
		// a browser's, and its unverified token must not reach an app that
		// takes every Authorization for Gatehouse's word.
		{name: "CORS preflight's Authorization dropped", method: "OPTIONS", path: "/api/x", token: "eyJhbGciOiJub25lIn0.e30.",
			hdr: []string{"Access-Control-Request-Method", "DELETE", "Origin", "https://app.example"}, want: 200, reached: true},
		{name: "OPTIONS without preflight header needs a token", method: "OPTIONS", path: "/api/x", want: 401},
		{name: "OPTIONS without Origin needs a token", method: "OPTIONS", path: "/api/x", hdr: []string{"Access-Control-Request-Method", "GET"}, want: 401},
		{name: "OPTIONS with a body needs a token", method: "OPTIONS", path: "/api/x", body: "x=1",
			hdr: []string{"Access-Control-Request-Method", "GET", "Origin", "https://app.example"}, want: 401},
		{name: "optional without token", path: "/maybe/x", want: 200, reached: true},
		// A token in the query is never verified: refused (RFC 6750 §2,
		// §3.1; OAuth 2.1), beside a good header, alone on an optional
		// route, or with its name percent-encoded or after a ";".
		{name: "query token beside a header", path: "/api/x?access_token=x.y.z", token: admin, want: 400, wantAuth: `error="invalid_request"`},
		{name: "query token on an optional route", path: "/maybe/x?a=1&access%5Ftoken=x.y.z", want: 400, wantAuth: `error="invalid_request"`},
		{name: "query token after a semicolon", path: "/maybe/x?a=1;access_token=x", want: 400},
		// Names an app reads as access_token: ASP.NET Core ignores case,
		// PHP drops leading spaces and takes " ", "." and "[" for "_".
		{name: "query token, upper case", path: "/maybe/x?ACCESS_TOKEN=x", want: 400},
		{name: "query token, PHP dot", path: "/maybe/x?access.token=x", want: 400},
		{name: "query token, PHP plus", path: "/maybe/x?access+token=x", want: 400},
		{name: "query token, PHP bracket", path: "/maybe/x?access[token=x", want: 400},
		{name: "query token, leading space", path: "/maybe/x?%20access_token=x", want: 400},
		{name: "query token as an array", path: "/maybe/x?access_token%5B%5D=x", want: 400},
		{name: "query token as an array, keyed", path: "/maybe/x?access_token%5Ba%5D=x", want: 400},
		{name: "query token cut at NUL", path: "/maybe/x?access_token%00x=x", want: 400},
		{name: "query token on a preflight", method: "OPTIONS", path: "/api/x?access_token=x",
			hdr: []string{"Access-Control-Request-Method", "GET", "Origin", "https://app.example"}, want: 400},
		{name: "other parameters pass", path: "/maybe/x?token=1&access_token_hint=2", want: 200, reached: true},
		{name: "optional with a bad token", path: "/maybe/x", token: "x.y.z", want: 401},
		{name: "optional with Basic credentials", path: "/maybe/x", hdr: []string{"Authorization", "Basic YTpi"}, want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.method
			if m == "" {
				m = "GET"
			}
			before := up.count()
			var reqBody io.Reader
			if tt.body != "" {
				reqBody = strings.NewReader(tt.body)
			}
			req, _ := http.NewRequest(m, g.srv.URL+tt.path, reqBody)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				req.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			resp, body := g.do(t, req)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if tt.wantAuth != "" && !strings.Contains(resp.Header.Get("WWW-Authenticate"), tt.wantAuth) {
				t.Errorf("WWW-Authenticate %q lacks %q", resp.Header.Get("WWW-Authenticate"), tt.wantAuth)
			}
			if reached := up.count() > before; reached != tt.reached {
				t.Errorf("upstream reached = %v, want %v", reached, tt.reached)
			} else if reached && m == "OPTIONS" {
				if a := up.last(t).Header.Get("Authorization"); a != "" {
					t.Errorf("a preflight's Authorization reached the upstream: %q", a)
				}
			}
			if strings.Contains(body, "audience") || strings.Contains(body, "signature") {
				t.Errorf("error body tells an attacker why: %s", body)
			}
		})
	}
}

func TestIdentityHeadersAndStripping(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	g, up := authGate(t, idp)
	admin := idp.Token(t, map[string]any{"sub": "alice", "aud": "gatehouse", "client_id": "portal",
		"realm_access": map[string]any{"roles": []string{"admin", "ops"}}, "scope": "openid kline.read", "tenant": "kline"})
	spoof := []string{"X-Auth-Subject", "root", "X-Auth-Roles", "admin", "X-Forwarded-User", "root", "Remote-User", "root",
		"X-Auth-Request-Email", "root@example", "X_Auth_Subject", "root",
		// Other gateways' identity families: Authelia, Apache, ALB, Azure,
		// IAP, Cloudflare Access, Kong, Grafana's auth proxy.
		"Remote-Groups", "admins", "X-Remote-Group", "admins", "X-Amzn-Oidc-Identity", "root", "X-Ms-Client-Principal-Name", "root",
		"X-Goog-Authenticated-User-Email", "root@example", "Cf-Access-Authenticated-User-Email", "root@example",
		"X-Consumer-Username", "root", "X-Webauth-User", "root", "X-Authentik-Groups", "admins"}

	// A public route: client copies are removed, nothing is added.
	g.get(t, "/public/x", spoof...)
	got := up.last(t)
	for i := 0; i+1 < len(spoof); i += 2 {
		h := spoof[i]
		if v := got.Header.Get(h); v != "" {
			t.Errorf("public route: client-sent %s = %q reached the upstream", h, v)
		}
	}
	// A protected route: the verified identity, not the client's, once
	// each; the same whether Gatehouse writes the request itself (GET) or
	// net/http's Transport does (a request with a body).
	want := map[string]string{"X-Auth-Subject": "alice", "X-Auth-Roles": "admin,ops", "X-Auth-Scopes": "openid kline.read",
		"X-Auth-Client": "portal", "X-Auth-Issuer": "main", "X-Forwarded-User": ""}
	post, _ := http.NewRequest("POST", g.srv.URL+"/admin/x", strings.NewReader("body"))
	for i := 0; i+1 < len(spoof); i += 2 {
		post.Header.Add(spoof[i], spoof[i+1])
	}
	post.Header.Set("Authorization", "Bearer "+admin)
	g.do(t, post)
	got = up.last(t)
	for h, v := range want {
		if g := strings.Join(got.Header[h], ";"); g != v {
			t.Errorf("POST: %s = %q, want %q", h, g, v)
		}
	}
	g.get(t, "/admin/x", append(spoof, "Authorization", "Bearer "+admin)...)
	got = up.last(t)
	for h, v := range want {
		if g := strings.Join(got.Header[h], ";"); g != v {
			t.Errorf("GET: %s = %q, want %q", h, g, v)
		}
	}
	if got.Header.Get("Authorization") == "" {
		t.Error("token not forwarded on a route that keeps it")
	}
	g.get(t, "/api/x", "Authorization", "Bearer "+admin)
	if up.last(t).Header.Get("Authorization") != "" {
		t.Error("token forwarded on a route with forward_token: false")
	}
	lines := g.logs.lines()
	last := lines[len(lines)-1]
	if last["auth"] != "allow" {
		t.Errorf("access log auth = %v", last["auth"])
	}
	if strings.Contains(fmt.Sprint(lines), admin) {
		t.Error("the token reached the access log")
	}
}

func TestAuthDecisionsAndCache(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	g, _ := authGate(t, idp)
	user := idp.Token(t, map[string]any{"sub": "bob", "aud": "gatehouse"})
	g.get(t, "/admin/x", "Authorization", "Bearer "+user)
	l := g.logs.lines()[0]
	if l["auth"] != "deny" || l["auth_reason"] != "missing role admin" || l["status"] != float64(403) {
		t.Errorf("decision line: %v", l)
	}
	// Rotation: a token signed with a new key verifies without restart.
	idp.Rotate(t, "k2")
	admin := idp.Token(t, map[string]any{"sub": "alice", "aud": "gatehouse", "realm_access": map[string]any{"roles": []string{"admin"}}})
	// (an unknown kid refetches the keys once the short cooldown has passed)
	if !testutil.WaitFor(5*time.Second, func() bool {
		resp, _ := g.get(t, "/admin/x", "Authorization", "Bearer "+admin)
		return resp.StatusCode == 200
	}) {
		t.Fatal("rotated key never accepted")
	}
	// The issuer going down does not matter for tokens it signed with known keys.
	idp.SetDown(true)
	for i := 0; i < 5; i++ {
		if resp, _ := g.get(t, "/admin/x", "Authorization", "Bearer "+admin); resp.StatusCode != 200 {
			t.Fatalf("token refused while the issuer is down: %d", resp.StatusCode)
		}
	}
}

func TestAuthFailsClosedWithoutKeys(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	idp.SetDown(true) // keys were never fetched
	g, up := authGate(t, idp)
	tok := idp.Token(t, map[string]any{"sub": "alice", "aud": "gatehouse", "realm_access": map[string]any{"roles": []string{"admin"}}})
	resp, _ := g.get(t, "/admin/x", "Authorization", "Bearer "+tok)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || up.count() != 0 {
		t.Fatalf("status %d, Retry-After %q, upstream hits %d", resp.StatusCode, resp.Header.Get("Retry-After"), up.count())
	}
}

// BenchmarkEngineAuth: the engine with an in-memory upstream, with and
// without a cached bearer token check on the route.
// BenchmarkEngineAuth measures a cached token check on a proxied request,
// with wrk's minimal request (Authorization only) and with a browser's
// usual dozen headers: Go's header maps grow from a small map to a table
// past eight entries, which makes the minimal case the expensive one.
func BenchmarkEngineAuth(b *testing.B) {
	idp := fakeidp.New(b)
	browser := map[string]string{"Accept": "text/html,application/xhtml+xml", "Accept-Encoding": "gzip, deflate, br",
		"Accept-Language": "en-US,en;q=0.9", "Cache-Control": "no-cache", "Cookie": "theme=dark; lang=en",
		"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-origin",
		"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0", "Referer": "https://gate.example/admin/"}
	for _, headers := range []string{"minimal", "browser"} {
		for _, withAuth := range []bool{false, true} {
			b.Run(fmt.Sprintf("headers=%s/auth=%v", headers, withAuth), func(b *testing.B) {
				authYAML := ""
				if withAuth {
					authYAML = "auth: { roles: { any_of: [admin] } }"
				}
				doc, err := config.Parse("b.yaml", []byte(fmt.Sprintf(`
auth: { issuers: { main: { issuer: %q, audience: gatehouse } } }
upstreams: { app: { targets: ["127.0.0.1:9"] } }
routes:
  - { name: admin, match: { path_prefix: /admin }, upstream: app, %s }
`, idp.Issuer, authYAML)), ".")
				if err != nil {
					b.Fatal(err)
				}
				snap, _ := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
				inMemoryUpstreams(snap)
				var h runtime.Holder
				h.Store(snap)
				e := New(Options{Holder: &h})
				tok := idp.Token(b, map[string]any{"sub": "alice", "aud": "gatehouse", "roles": []string{"admin"}})
				req := httptest.NewRequest("GET", "http://gate.example/admin/users", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				if headers == "browser" {
					for k, v := range browser {
						req.Header.Set(k, v)
					}
				}
				mustProxy(b, e, req) // verify once; the loop measures cached checks
				b.ReportAllocs()
				for b.Loop() {
					w := discardWriter{h: http.Header{}}
					r := req.Clone(req.Context())
					e.ServeHTTP(&w, r)
				}
			})
		}
	}
}

func TestOpaqueTokensByIntrospection(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
auth:
  issuers:
    main:
      issuer: %q
      audience: gatehouse
      introspection: { client_id: %s, client_secret: %s, cache_ttl: 300ms, negative_ttl: 1s }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: api, match: { path_prefix: /api }, upstream: app, auth: { scopes: [kline.read] } }
  - { name: strict, match: { path_prefix: /strict }, upstream: app, auth: { on_introspection_error: deny } }
`, idp.Issuer, fakeidp.IntrospectClient, fakeidp.IntrospectSecret, hostport(up.Server)))
	tok := idp.Opaque(map[string]any{"sub": "svc", "client_id": "kline-worker", "scope": "kline.read", "aud": "gatehouse"})
	call := func(path, token string) int {
		resp, _ := g.get(t, path, "Authorization", "Bearer "+token)
		return resp.StatusCode
	}

	// Concurrent first uses of a token share one introspection call.
	codes := make(chan int, 20)
	for i := 0; i < 20; i++ {
		go func() { codes <- call("/api/x", tok) }()
	}
	for i := 0; i < 20; i++ {
		if c := <-codes; c != 200 {
			t.Fatalf("active opaque token: %d", c)
		}
	}
	if n := idp.Introspections.Load(); n > 2 {
		t.Errorf("%d introspection calls for 20 concurrent uses of one token", n)
	}
	if up.last(t).Header.Get("X-Auth-Client") != "kline-worker" {
		t.Errorf("identity from introspection: %v", up.last(t).Header)
	}
	if c := call("/api/x", idp.Opaque(map[string]any{"sub": "svc", "scope": "flow.read", "aud": "gatehouse"})); c != 403 {
		t.Errorf("active token without the scope: %d", c)
	}
	if c := call("/api/x", idp.Opaque(map[string]any{"sub": "svc", "scope": "kline.read", "aud": "other"})); c != 401 {
		t.Errorf("active token for another audience: %d", c)
	}

	// Revoked: refused once the cached answer (300ms) runs out.
	idp.Revoke(tok)
	if !testutil.WaitFor(5*time.Second, func() bool { return call("/api/x", tok) == 401 }) {
		t.Fatal("revoked token still accepted")
	}
	before := idp.Introspections.Load()
	for i := 0; i < 5; i++ {
		call("/api/x", tok)
	}
	if idp.Introspections.Load() != before {
		t.Error("an inactive answer was not cached")
	}

	// Introspection down: fail closed, 503 or 401 by route policy.
	idp.SetIntrospectionDown(true)
	fresh := idp.Opaque(map[string]any{"sub": "svc", "scope": "kline.read", "aud": "gatehouse"})
	if c := call("/api/x", fresh); c != 503 {
		t.Errorf("introspection down, default policy: %d, want 503", c)
	}
	if c := call("/strict/x", fresh); c != 401 {
		t.Errorf("introspection down, deny policy: %d, want 401", c)
	}
}

func TestProtectedResourceMetadata(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
auth:
  issuers:
    main: { issuer: %q, audience: gatehouse }
  protected_resource:
    resource: https://gw.example/api
    resource_name: Gatehouse test
upstreams: { app: { targets: [%q] } }
routes:
  - { name: api, match: { path_prefix: /api }, upstream: app, auth: { scopes: [kline.read, flow.read] } }
  - { name: other, match: { path_prefix: /other }, upstream: app, auth: { resource_metadata: "https://elsewhere.example/meta" } }
  - { name: all, match: { path_prefix: / }, upstream: app }
`, idp.Issuer, hostport(up.Server)))
	resp, body := g.get(t, "/.well-known/oauth-protected-resource/api")
	want := fmt.Sprintf(`{
  "resource": "https://gw.example/api",
  "authorization_servers": [
    %q
  ],
  "scopes_supported": [
    "flow.read",
    "kline.read"
  ],
  "bearer_methods_supported": [
    "header"
  ],
  "resource_name": "Gatehouse test"
}
`, idp.Issuer)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || body != want {
		t.Fatalf("metadata: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if up.count() != 0 {
		t.Fatal("the metadata request reached the upstream")
	}
	resp, _ = g.get(t, "/api/x")
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `resource_metadata="https://gw.example/.well-known/oauth-protected-resource/api"`) {
		t.Fatalf("401 WWW-Authenticate = %q", got)
	}
	resp, _ = g.get(t, "/other/x")
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `resource_metadata="https://elsewhere.example/meta"`) {
		t.Fatalf("a route's own resource_metadata: %q", got)
	}
	req, _ := http.NewRequest("POST", g.srv.URL+"/.well-known/oauth-protected-resource/api", nil)
	if resp, _ := g.do(t, req); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST metadata: %d", resp.StatusCode)
	}
}

func TestIdentityAssertion(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
auth:
  issuers:
    main: { issuer: %q, audience: gatehouse }
  identity_assertion: { audience: apps, ttl: 30s }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: api, match: { path_prefix: /api }, upstream: app, auth: {} }
  - { name: public, match: { path_prefix: / }, upstream: app }
`, idp.Issuer, hostport(up.Server)))
	tok := idp.Token(t, map[string]any{"sub": "alice", "aud": "gatehouse", "roles": []string{"admin"}})
	g.get(t, "/api/x", "Authorization", "Bearer "+tok, "X-Auth-Assertion", "forged")
	got := up.last(t).Header.Values("X-Auth-Assertion")
	if len(got) != 1 || got[0] == "forged" {
		t.Fatalf("upstream X-Auth-Assertion = %q", got)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(g.snap.AssertionJWKS, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: %v", err)
	}
	jws, err := jose.ParseSignedCompact(got[0], []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify(set.Keys[0])
	if err != nil {
		t.Fatalf("assertion does not verify against the published JWKS: %v", err)
	}
	var c struct {
		Sub, Aud, Iss string
		Roles         []string
	}
	json.Unmarshal(payload, &c)
	if c.Sub != "alice" || c.Aud != "apps" || c.Iss != "gatehouse" || len(c.Roles) != 1 || c.Roles[0] != "admin" {
		t.Fatalf("claims %+v", c)
	}
	// Public routes never pass a client's copy on.
	g.get(t, "/public", "X-Auth-Assertion", "forged")
	if v := up.last(t).Header.Get("X-Auth-Assertion"); v != "" {
		t.Fatalf("public route passed X-Auth-Assertion %q", v)
	}
}

// BenchmarkEngineAuthWire is BenchmarkEngineAuth over the real upstream
// path: the pool's HTTP/1.1 client writes to a loopback upstream that
// answers every request head with 100 bytes. Both variants send the same
// token, so the difference is the check and the identity headers.
func BenchmarkEngineAuthWire(b *testing.B) {
	idp := fakeidp.New(b)
	addr := fastUpstream(b)
	for _, withAuth := range []bool{false, true} {
		b.Run(fmt.Sprintf("auth=%v", withAuth), func(b *testing.B) {
			authYAML := ""
			if withAuth {
				authYAML = "auth: { roles: { any_of: [admin] } }"
			}
			doc, err := config.Parse("b.yaml", []byte(fmt.Sprintf(`
auth: { issuers: { main: { issuer: %q, audience: gatehouse } } }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: admin, match: { path_prefix: /admin }, upstream: app, %s }
`, idp.Issuer, addr, authYAML)), ".")
			if err != nil {
				b.Fatal(err)
			}
			snap, _ := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
			var h runtime.Holder
			h.Store(snap)
			e := New(Options{Holder: &h})
			tok := idp.Token(b, map[string]any{"sub": "alice", "aud": "gatehouse", "roles": []string{"admin"}})
			req := httptest.NewRequest("GET", "http://gate.example/admin/users", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			mustProxy(b, e, req)
			b.ReportAllocs()
			for b.Loop() {
				w := discardWriter{h: http.Header{}}
				e.ServeHTTP(&w, req.Clone(req.Context()))
			}
		})
	}
}

// fastUpstream answers every request head on every connection with a
// 100-byte body, as cheaply as possible.
func fastUpstream(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 2 && line[0] == '\r' {
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
