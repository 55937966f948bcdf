package devidp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"gatehouse/internal/testutil"
)

func TestDiscovery(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, p := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		t.Run(p, func(t *testing.T) {
			resp, m := h.do(mustRequest(t, http.MethodGet, h.url+p))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			want := map[string]any{
				"issuer":                                         h.url,
				"authorization_endpoint":                         h.url + "/authorize",
				"token_endpoint":                                 h.url + "/token",
				"jwks_uri":                                       h.url + "/jwks",
				"revocation_endpoint":                            h.url + "/revoke",
				"introspection_endpoint":                         h.url + "/introspect",
				"end_session_endpoint":                           h.url + "/end_session",
				"response_types_supported":                       []any{"code"},
				"grant_types_supported":                          []any{"authorization_code", "refresh_token"},
				"code_challenge_methods_supported":               []any{"S256"},
				"token_endpoint_auth_methods_supported":          []any{"client_secret_basic", "client_secret_post", "none"},
				"id_token_signing_alg_values_supported":          []any{"ES256"},
				"authorization_response_iss_parameter_supported": true,
			}
			got := map[string]any{}
			for k := range want {
				got[k] = m[k]
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("metadata (-want +got):\n%s", d)
			}
			if m["scopes_supported"] == nil {
				t.Error("scopes_supported missing")
			}
		})
	}
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestCodeFlow runs the code flow with PKCE for each way a client
// authenticates and checks both tokens against the published key.
func TestCodeFlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client string
		auth   func(*http.Request, url.Values)
	}{
		{"client_secret_basic", webID, func(r *http.Request, _ url.Values) {
			r.SetBasicAuth(url.QueryEscape(webID), url.QueryEscape(webSecret))
		}},
		{"client_secret_post", webID, func(_ *http.Request, f url.Values) {
			f.Set("client_id", webID)
			f.Set("client_secret", webSecret)
		}},
		{"none (public client)", spaID, func(_ *http.Request, f url.Values) { f.Set("client_id", spaID) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			cb := webCB
			if tt.client == spaID {
				cb = spaCB
			}
			verifier, challenge := pkcePair()
			q := authQuery(tt.client, challenge)

			resp, page := h.get(h.url + "/authorize?" + q.Encode())
			if resp.StatusCode != http.StatusOK || !strings.Contains(page, pageTitle) ||
				!strings.Contains(page, `value="alice"`) || !strings.Contains(page, `value="bob"`) {
				t.Fatalf("login page: %d\n%s", resp.StatusCode, page)
			}

			q.Set("login", "alice")
			resp, _ = h.get(h.url + "/authorize?" + q.Encode())
			loc, err := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || err != nil {
				t.Fatalf("authorize: %d %v", resp.StatusCode, err)
			}
			lq := loc.Query()
			code := lq.Get("code")
			lq.Del("code")
			loc.RawQuery = ""
			wantQ := url.Values{"state": {"st-1"}, "iss": {h.url}}
			if tt.client == spaID {
				wantQ.Set("app", "1") // the registered URI's own query survives
			}
			if d := cmp.Diff(wantQ, lq); d != "" || code == "" || !strings.HasPrefix(cb, loc.String()) {
				t.Fatalf("redirect %s, code %q (-want +got):\n%s", resp.Header.Get("Location"), code, d)
			}

			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {cb}, "code_verifier": {verifier}}
			req := mustRequest(t, http.MethodPost, h.url+"/token")
			tt.auth(req, form)
			enc := form.Encode()
			req.Body, req.ContentLength = io.NopCloser(strings.NewReader(enc)), int64(len(enc))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, m := h.do(req)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("token: %d %q %v", resp.StatusCode, resp.Header.Get("Cache-Control"), m)
			}
			if m["token_type"] != "Bearer" || m["expires_in"] != float64(300) || m["scope"] != "openid profile" || m["refresh_token"] == "" {
				t.Errorf("token response %v", m)
			}

			now := float64(h.clock.Now().Unix())
			typ, at := h.verify(m["access_token"].(string))
			wantAT := map[string]any{
				"iss": h.url, "sub": "alice", "aud": "gatehouse", "client_id": tt.client, "scope": "openid profile",
				"roles": []any{"admin"}, "iat": now, "exp": now + 300, "auth_time": now,
			}
			if d := cmp.Diff(wantAT, at, cmpopts.IgnoreMapEntries(func(k string, _ any) bool { return k == "jti" })); d != "" || typ != "at+jwt" || at["jti"] == "" {
				t.Errorf("access token typ %q (-want +got):\n%s", typ, d)
			}
			typ, id := h.verify(m["id_token"].(string))
			wantID := map[string]any{
				"iss": h.url, "sub": "alice", "aud": tt.client, "azp": tt.client, "nonce": "n-1",
				"name": "alice", "roles": []any{"admin"}, "iat": now, "exp": now + 300, "auth_time": now,
			}
			if d := cmp.Diff(wantID, id); d != "" || typ != "JWT" {
				t.Errorf("ID token typ %q (-want +got):\n%s", typ, d)
			}
			if n := h.idp.TokenRequests("authorization_code"); n != 1 {
				t.Errorf("TokenRequests(authorization_code) = %d, want 1", n)
			}
		})
	}
}

// TestAuthorizeErrors: before the client and redirect URI are validated
// errors are a 400 page; after, error= redirects.
func TestAuthorizeErrors(t *testing.T) {
	t.Parallel()
	_, challenge := pkcePair()
	tests := []struct {
		name      string
		edit      func(url.Values)
		wantError string // "" = a 400 page, no redirect
	}{
		{"unknown client", func(q url.Values) { q.Set("client_id", "nope") }, ""},
		{"unregistered redirect_uri", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:9/evil") }, ""},
		{"redirect_uri prefix only", func(q url.Values) { q.Set("redirect_uri", webCB+"/more") }, ""},
		{"missing redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, ""},
		{"repeated redirect_uri", func(q url.Values) { q.Add("redirect_uri", webCB) }, ""},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"no challenge method (means plain)", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"no challenge", func(q url.Values) { q.Del("code_challenge") }, "invalid_request"},
		{"short challenge", func(q url.Values) { q.Set("code_challenge", "abc") }, "invalid_request"},
		{"implicit", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"repeated state", func(q url.Values) { q.Add("state", "2") }, "invalid_request"},
		{"unknown user", func(q url.Values) { q.Set("login", "mallory") }, "access_denied"},
		{"prompt none", func(q url.Values) { q.Set("prompt", "none") }, "login_required"},
	}
	h := newHarness(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := authQuery(webID, challenge)
			tt.edit(q)
			resp, body := h.get(h.url + "/authorize?" + q.Encode())
			if tt.wantError == "" {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, pageTitle) {
					t.Fatalf("got %d Location=%q, want a 400 page", resp.StatusCode, resp.Header.Get("Location"))
				}
				return
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), webCB+"?") {
				t.Fatalf("got %d Location=%q, want a redirect to %s", resp.StatusCode, loc, webCB)
			}
			got := loc.Query()
			got.Del("error_description")
			want := url.Values{"error": {tt.wantError}, "state": {q.Get("state")}, "iss": {h.url}}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("redirect query (-want +got):\n%s", d)
			}
		})
	}
}

func TestLoginPageEscapesState(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, challenge := pkcePair()
	q := authQuery(webID, challenge)
	q.Set("state", `"><script>alert(1)</script>`)
	resp, body := h.get(h.url + "/authorize?" + q.Encode())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if strings.Contains(body, "<script>") || !strings.Contains(body, `value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`) {
		t.Errorf("state not escaped:\n%s", body)
	}
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
		t.Errorf("CSP = %q", got)
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		client     string
		edit       func(h *harness, f url.Values)
		wantStatus int
		wantError  string
	}{
		{"wrong verifier", webID, func(_ *harness, f url.Values) { v, _ := pkcePair(); f.Set("code_verifier", v) }, 400, "invalid_grant"},
		{"missing verifier", webID, func(_ *harness, f url.Values) { f.Del("code_verifier") }, 400, "invalid_request"},
		{"other redirect_uri", webID, func(_ *harness, f url.Values) { f.Set("redirect_uri", webCB+"x") }, 400, "invalid_grant"},
		{"expired code", webID, func(h *harness, _ url.Values) { h.clock.Advance(codeTTL) }, 400, "invalid_grant"},
		{"code of another client", spaID, func(_ *harness, f url.Values) { f.Set("redirect_uri", spaCB) }, 400, "invalid_grant"},
		{"unknown grant type", webID, func(_ *harness, f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type"},
		{"wrong secret", "", func(_ *harness, f url.Values) { f.Set("client_id", webID); f.Set("client_secret", "guess") }, 401, "invalid_client"},
		{"no client", "", func(*harness, url.Values) {}, 401, "invalid_client"},
		{"secret from public client", "", func(_ *harness, f url.Values) { f.Set("client_id", spaID); f.Set("client_secret", "x") }, 401, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			code, verifier := h.code(webID, "alice")
			f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webCB}, "code_verifier": {verifier}}
			tt.edit(h, f)
			resp, m := h.post("/token", tt.client, f)
			wantOAuthError(t, resp, m, tt.wantStatus, tt.wantError)
			if tt.wantStatus == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("invalid_client without WWW-Authenticate")
			}
		})
	}
}

// TestCodeReuse: a second redemption fails and revokes what the first
// issued (RFC 6749 §4.1.2).
func TestCodeReuse(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	code, verifier := h.code(webID, "alice")
	_, first := h.exchange(webID, code, verifier)
	if !h.active(first["access_token"].(string)) || !h.active(first["refresh_token"].(string)) {
		t.Fatal("tokens inactive before reuse")
	}
	resp, m := h.exchange(webID, code, verifier)
	wantOAuthError(t, resp, m, 400, "invalid_grant")
	for _, k := range []string{"access_token", "refresh_token"} {
		if h.active(first[k].(string)) {
			t.Errorf("%s still active after code reuse", k)
		}
	}
	resp, m = h.refresh(webID, first["refresh_token"].(string))
	wantOAuthError(t, resp, m, 400, "invalid_grant")
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rt := h.login(webID, "alice")["refresh_token"].(string)
	for n := range 3 {
		resp, m := h.refresh(webID, rt)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("refresh %d: %d %v", n, resp.StatusCode, m)
		}
		next := m["refresh_token"].(string)
		if next == "" || next == rt || h.idp.LastRefreshToken() != next {
			t.Fatalf("refresh %d: not rotated: %q -> %q (last %q)", n, rt, next, h.idp.LastRefreshToken())
		}
		if h.active(rt) || !h.active(next) {
			t.Errorf("refresh %d: old active %v, new active %v", n, h.active(rt), h.active(next))
		}
		if _, id := h.verify(m["id_token"].(string)); id["nonce"] != nil {
			t.Errorf("refreshed ID token has nonce %v (OIDC Core §12.2)", id["nonce"])
		}
		rt = next
	}
	if got := h.idp.TokenRequests("refresh_token"); got != 3 {
		t.Errorf("TokenRequests(refresh_token) = %d, want 3", got)
	}
}

// TestRefreshReuseRevokesGrant: replaying a rotated refresh token (theft)
// kills the grant, so the newest refresh token dies too.
func TestRefreshReuseRevokesGrant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	stolen := h.login(webID, "alice")["refresh_token"].(string)
	other := h.login(webID, "bob")["refresh_token"].(string) // another login, unaffected
	_, m := h.refresh(webID, stolen)
	newest := m["refresh_token"].(string)
	at := m["access_token"].(string)

	resp, m := h.refresh(webID, stolen)
	wantOAuthError(t, resp, m, 400, "invalid_grant")
	resp, m = h.refresh(webID, newest)
	wantOAuthError(t, resp, m, 400, "invalid_grant")
	if h.active(at) {
		t.Error("access token of the revoked grant still active")
	}
	if resp, m := h.refresh(webID, other); resp.StatusCode != http.StatusOK {
		t.Errorf("other login: %d %v", resp.StatusCode, m)
	}
}

func TestRefreshExpiryAndScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		advance    time.Duration
		scope      string
		wantError  string
		wantScopes string
	}{
		{"just before expiry", 8*time.Hour - time.Second, "", "", "openid profile"},
		{"expired", 8 * time.Hour, "", "invalid_grant", ""},
		{"narrowed scope", 0, "openid", "", "openid"},
		{"widened scope", 0, "openid admin", "invalid_scope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			rt := h.login(webID, "alice")["refresh_token"].(string)
			h.clock.Advance(tt.advance)
			f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
			if tt.scope != "" {
				f.Set("scope", tt.scope)
			}
			resp, m := h.post("/token", webID, f)
			if tt.wantError != "" {
				wantOAuthError(t, resp, m, 400, tt.wantError)
				return
			}
			if resp.StatusCode != http.StatusOK || m["scope"] != tt.wantScopes {
				t.Errorf("got %d %v, want scope %q", resp.StatusCode, m, tt.wantScopes)
			}
		})
	}
}

func TestStart(t *testing.T) {
	testutil.CheckGoroutines(t)
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0"} {
		if _, err := Start(context.Background(), addr, Options{}); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Start(%q) = %v, want ErrNotLoopback", addr, err)
		}
	}
	if _, err := New("http://example.com", Options{}); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("New(example.com) = %v, want ErrNotLoopback", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idp, err := Start(ctx, "localhost:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(idp.Issuer(), "http://127.0.0.1:") {
		t.Errorf("issuer %q", idp.Issuer())
	}
	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Get(idp.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tr.CloseIdleConnections()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("discovery: %d", resp.StatusCode)
	}
	cancel()
	if err := idp.Wait(); err != nil {
		t.Errorf("Wait: %v", err)
	}
}
