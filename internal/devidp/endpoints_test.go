package devidp

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRevokeThenIntrospect: revoking a refresh token ends its grant;
// revoking an access token ends just that token (RFC 7009).
func TestRevokeThenIntrospect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		revoke       string // token_type to revoke
		wantInactive []string
	}{
		{"refresh token", "refresh_token", []string{"refresh_token", "access_token"}},
		{"access token", "access_token", []string{"access_token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			tok := h.login(webID, "alice")
			resp, m := h.post("/introspect", webID, url.Values{"token": {tok["access_token"].(string)}})
			want := map[string]any{"active": true, "sub": "alice", "client_id": webID, "scope": "openid profile", "token_type": "Bearer"}
			got := map[string]any{}
			for k := range want {
				got[k] = m[k]
			}
			if d := cmp.Diff(want, got); d != "" || resp.StatusCode != http.StatusOK {
				t.Fatalf("introspect %d (-want +got):\n%s", resp.StatusCode, d)
			}
			resp, _ = h.post("/revoke", webID, url.Values{"token": {tok[tt.revoke].(string)}, "token_type_hint": {tt.revoke}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("revoke: %d", resp.StatusCode)
			}
			for _, k := range []string{"access_token", "refresh_token"} {
				wantActive := true
				for _, dead := range tt.wantInactive {
					wantActive = wantActive && dead != k
				}
				if got := h.active(tok[k].(string)); got != wantActive {
					t.Errorf("%s active = %v, want %v", k, got, wantActive)
				}
			}
			if resp, _ := h.post("/revoke", webID, url.Values{"token": {"unknown"}}); resp.StatusCode != http.StatusOK {
				t.Errorf("revoke unknown token: %d, want 200", resp.StatusCode)
			}
		})
	}
}

func TestIntrospectNeedsConfidentialClient(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.login(spaID, "alice")
	resp, m := h.post("/introspect", spaID, url.Values{"token": {tok["access_token"].(string)}})
	wantOAuthError(t, resp, m, 401, "invalid_client")
	if !h.active(tok["access_token"].(string)) { // web may introspect spa's tokens
		t.Error("spa token inactive for web")
	}
	h.clock.Advance(5 * time.Minute)
	if h.active(tok["access_token"].(string)) {
		t.Error("expired access token active")
	}
}

func TestEndSession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		params       func(idToken, accessToken string) url.Values
		advance      time.Duration
		wantStatus   int
		wantLocation string
		wantLoggedIn bool
	}{
		{"registered redirect with state", func(id, _ string) url.Values {
			return url.Values{"id_token_hint": {id}, "post_logout_redirect_uri": {webBye}, "state": {"s 1"}}
		}, 0, http.StatusFound, webBye + "?state=s+1", false},
		{"expired hint accepted", func(id, _ string) url.Values {
			return url.Values{"id_token_hint": {id}, "post_logout_redirect_uri": {webBye}}
		}, time.Hour, http.StatusFound, webBye, false},
		{"no redirect: logged out page", func(id, _ string) url.Values {
			return url.Values{"id_token_hint": {id}}
		}, 0, http.StatusOK, "", false},
		{"unregistered post_logout_redirect_uri", func(id, _ string) url.Values {
			return url.Values{"id_token_hint": {id}, "post_logout_redirect_uri": {"http://127.0.0.1:9/evil"}}
		}, 0, http.StatusBadRequest, "", true},
		{"redirect without hint or client", func(string, string) url.Values {
			return url.Values{"post_logout_redirect_uri": {webBye}}
		}, 0, http.StatusBadRequest, "", true},
		{"access token as hint", func(_, at string) url.Values {
			return url.Values{"id_token_hint": {at}}
		}, 0, http.StatusBadRequest, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			tok := h.login(webID, "alice")
			h.clock.Advance(tt.advance)
			q := tt.params(tok["id_token"].(string), tok["access_token"].(string))
			resp, body := h.get(h.url + "/end_session?" + q.Encode())
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Location") != tt.wantLocation {
				t.Fatalf("got %d Location=%q, want %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), tt.wantStatus, tt.wantLocation, body)
			}
			resp, m := h.refresh(webID, tok["refresh_token"].(string))
			if loggedIn := resp.StatusCode == http.StatusOK; loggedIn != tt.wantLoggedIn {
				t.Errorf("refresh after end_session: %d %v, want logged in %v", resp.StatusCode, m, tt.wantLoggedIn)
			}
		})
	}
}

func TestRevokeGrant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.login(webID, "alice"), h.login(spaID, "bob")
	h.idp.RevokeGrant("alice")
	if h.active(a["refresh_token"].(string)) || h.active(a["access_token"].(string)) {
		t.Error("alice's tokens survive RevokeGrant")
	}
	if !h.active(b["refresh_token"].(string)) {
		t.Error("bob's token revoked too")
	}
}

// TestTablesBounded: a full table sweeps expired entries and otherwise
// refuses instead of growing.
func TestTablesBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.idp.max = 2
	_, challenge := pkcePair()
	q := authQuery(webID, challenge)
	q.Set("login", "alice")
	errorOf := func() string {
		resp, _ := h.get(h.url + "/authorize?" + q.Encode())
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc.Query().Get("error")
	}
	for n, want := range []string{"", "", "temporarily_unavailable"} {
		if got := errorOf(); got != want {
			t.Fatalf("code %d: error %q, want %q", n, got, want)
		}
	}
	h.clock.Advance(codeTTL)
	if got := errorOf(); got != "" {
		t.Errorf("after expiry: error %q, want a code", got)
	}
}

// TestIssuerPath: endpoints live under the issuer's path, and RFC 8414
// metadata is also served with the well-known segment inserted first.
func TestIssuerPath(t *testing.T) {
	t.Parallel()
	idp, err := New("http://127.0.0.1:1/idp/", Options{Clients: []Client{{ID: webID, RedirectURIs: []string{webCB}}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       int
	}{
		{"openid config", "/idp/.well-known/openid-configuration", http.StatusOK},
		{"rfc 8414 inserted", "/.well-known/oauth-authorization-server/idp", http.StatusOK},
		{"jwks", "/idp/jwks", http.StatusOK},
		{"outside the path", "/jwks", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			idp.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.want {
				t.Errorf("GET %s: %d, want %d", tt.path, rec.Code, tt.want)
			}
		})
	}
	if idp.Issuer() != "http://127.0.0.1:1/idp" {
		t.Errorf("Issuer() = %q", idp.Issuer())
	}
}
