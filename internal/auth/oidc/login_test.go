package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/auth/jwt"
	"gatehouse/internal/auth/session"
	"gatehouse/internal/devidp"
	"gatehouse/internal/phase"
	"gatehouse/internal/testutil"
)

// harness is a development issuer and Gatehouse-like front ends (one per
// instance, all on one session store) serving /app/ behind login.
type harness struct {
	t      *testing.T
	clock  *testutil.Clock
	idp    *devidp.IdP
	idpSrv *httptest.Server
	idpOff atomic.Bool // the token endpoint answers 503
	store  *flakyStore
	gws    []*httptest.Server
	logins []*Login
}

const testSecret = "0123456789abcdef0123456789abcdef"

func newHarness(t *testing.T, instances int) *harness {
	t.Helper()
	h := &harness{t: t, clock: testutil.NewClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))}
	h.store = &flakyStore{Store: session.NewMemory(1000, h.clock.Now)}
	h.idpSrv = httptest.NewUnstartedServer(nil)
	gwSrvs := make([]*httptest.Server, instances)
	var redirects []string
	for i := range gwSrvs {
		gwSrvs[i] = httptest.NewUnstartedServer(nil)
		redirects = append(redirects, "http://"+gwSrvs[i].Listener.Addr().String()+"/_gatehouse/callback")
	}
	iss := "http://" + h.idpSrv.Listener.Addr().String()
	idp, err := devidp.New(iss, devidp.Options{
		Clients: []devidp.Client{{ID: "gw", Secret: "gw-secret", RedirectURIs: redirects,
			PostLogoutRedirectURIs: []string{"http://" + gwSrvs[0].Listener.Addr().String() + "/"}}},
		Now: h.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.idp = idp
	h.idpSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.idpOff.Load() && strings.HasSuffix(r.URL.Path, "/token") {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		idp.ServeHTTP(w, r)
	})
	h.idpSrv.Start()
	t.Cleanup(h.idpSrv.Close)
	keys := &issuer.Keys{Issuer: iss, Client: h.idpSrv.Client(), Cooldown: time.Second, Refresh: time.Hour, Now: h.clock.Now}
	for i, srv := range gwSrvs {
		l, err := New(Config{
			Issuer: iss, ClientID: "gw", ClientSecret: "gw-secret", RedirectURL: redirects[i],
			Scopes: []string{"openid", "offline_access"}, CookieSecret: testSecret, CookieName: "gatehouse_session",
			LoginPath: "/_gatehouse/login", LogoutPath: "/_gatehouse/logout",
			PostLogoutRedirectURL: "http://" + gwSrvs[0].Listener.Addr().String() + "/",
			RefreshMargin:         time.Minute, MaxLifetime: 8 * time.Hour, FlowTimeout: 10 * time.Minute,
			Metadata: keys.Metadata,
			IDTokens: &jwt.Verifier{Issuer: iss, Audience: "gw", Keys: keys, Now: h.clock.Now},
			HTTP:     h.idpSrv.Client(), Now: h.clock.Now,
		}, NewShared(h.store, nil))
		if err != nil {
			t.Fatal(err)
		}
		srv.Config.Handler = front(l)
		srv.Start()
		t.Cleanup(srv.Close)
		h.gws = append(h.gws, srv)
		h.logins = append(h.logins, l)
	}
	return h
}

// front is a minimal Gatehouse: login's own paths, and /app/ answering
// with the session's subject and access token.
func front(l *Login) http.Handler {
	local := func(hd phase.Handler) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := hd.ServeLocal(&phase.RequestCtx{}, w, r); err != nil {
				pe := phase.AsError(err)
				for k, v := range pe.Header {
					w.Header()[k] = v
				}
				http.Error(w, pe.Error(), pe.StatusCode())
			}
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/_gatehouse/callback", local(l.CallbackHandler()))
	mux.Handle("/_gatehouse/login", local(l.LoginHandler()))
	mux.Handle("/_gatehouse/logout", local(l.LogoutHandler()))
	mux.HandleFunc("/app/", func(w http.ResponseWriter, r *http.Request) {
		rc := &phase.RequestCtx{}
		a, err := l.Session(rc, r)
		switch {
		case err != nil:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case a == nil && IsNavigation(r):
			if err := l.Challenge(w, r, r.URL.RequestURI()); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
			}
		case a == nil:
			http.Error(w, "no session", http.StatusUnauthorized)
		default:
			fmt.Fprintf(w, "%s %s", a.Record.Subject, a.Record.AccessToken)
		}
	})
	return mux
}

// browser is a cookie-keeping client (testutil.Jar) on a harness.
type browser struct {
	*testutil.Jar
	h *harness
}

func (h *harness) browser() *browser { return &browser{Jar: testutil.NewJar(), h: h} }

var navigate = []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"}

// startLogin navigates to path and returns the authorization URL.
func (b *browser) startLogin(t *testing.T, gw int, path string) string {
	t.Helper()
	resp, _ := b.Do(t, "GET", b.h.gws[gw].URL+path, navigate...)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("navigation to %s: status %d, want 302", path, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// finishLogin logs user in at the issuer and follows the callback.
func (b *browser) finishLogin(t *testing.T, authURL, user string) *http.Response {
	t.Helper()
	resp, body := b.Do(t, "GET", authURL+"&login="+user)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("issuer login: status %d: %s", resp.StatusCode, body)
	}
	cb, _ := b.Do(t, "GET", resp.Header.Get("Location"))
	return cb
}

func (b *browser) login(t *testing.T, user string) {
	t.Helper()
	cb := b.finishLogin(t, b.startLogin(t, 0, "/app/home?tab=1"), user)
	if cb.StatusCode != http.StatusFound || cb.Header.Get("Location") != "/app/home?tab=1" {
		t.Fatalf("callback: status %d, Location %q", cb.StatusCode, cb.Header.Get("Location"))
	}
}

func (b *browser) app(t *testing.T, gw int) (int, string) {
	t.Helper()
	resp, body := b.Do(t, "GET", b.h.gws[gw].URL+"/app/x", "Accept", "application/json")
	return resp.StatusCode, body
}

func TestLoginFlow(t *testing.T) {
	h := newHarness(t, 1)
	b := h.browser()
	auth := b.startLogin(t, 0, "/app/home?tab=1")
	u, _ := url.Parse(auth)
	q := u.Query()
	for k, want := range map[string]string{"response_type": "code", "client_id": "gw", "code_challenge_method": "S256",
		"redirect_uri": h.gws[0].URL + "/_gatehouse/callback", "scope": "openid offline_access"} {
		if q.Get(k) != want {
			t.Errorf("authorization request %s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			t.Errorf("authorization request %s = %q: want 256 random bits", k, q.Get(k))
		}
	}
	cb := b.finishLogin(t, auth, "alice")
	if cb.StatusCode != http.StatusFound || cb.Header.Get("Location") != "/app/home?tab=1" {
		t.Fatalf("callback: %d → %q", cb.StatusCode, cb.Header.Get("Location"))
	}
	var sc *http.Cookie
	for _, c := range cb.Cookies() {
		if c.Name == "gatehouse_session" {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || len(sc.Value) > 100 || sc.Secure {
		t.Fatalf("session cookie = %+v", sc)
	}
	for name := range b.Cookies {
		if strings.Contains(name, "_flow_") {
			t.Errorf("flow cookie %s left after the callback", name)
		}
	}
	if code, body := b.app(t, 0); code != 200 || !strings.HasPrefix(body, "alice ") {
		t.Fatalf("app after login: %d %q", code, body)
	}

	// Logging in again gives a new session id; the old one is dead.
	old := b.Cookies["gatehouse_session"]
	delete(b.Cookies, "gatehouse_session")
	auth = b.startLogin(t, 0, "/app/again")
	b.Cookies["gatehouse_session"] = old // the browser still has the old session at the callback
	b.finishLogin(t, auth, "alice")
	if b.Cookies["gatehouse_session"] == old {
		t.Fatal("session id reused across logins (fixation)")
	}
	stale := &browser{Jar: &testutil.Jar{Cookies: map[string]string{"gatehouse_session": old}}, h: h}
	if code, _ := stale.app(t, 0); code != http.StatusUnauthorized {
		t.Fatalf("old session after a new login: %d, want 401", code)
	}

	// A forged cookie is no session.
	forged := &browser{Jar: &testutil.Jar{Cookies: map[string]string{"gatehouse_session": randomID(32) + "." + randomID(32)}}, h: h}
	if code, _ := forged.app(t, 0); code != http.StatusUnauthorized {
		t.Fatalf("forged cookie: %d", code)
	}
}

func TestCallbackRefusals(t *testing.T) {
	h := newHarness(t, 1)
	cb := h.gws[0].URL + "/_gatehouse/callback"
	t.Run("no flow cookie", func(t *testing.T) {
		b := h.browser()
		auth := b.startLogin(t, 0, "/app/")
		b.Cookies = map[string]string{} // another browser
		if resp := b.finishLogin(t, auth, "alice"); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", resp.StatusCode)
		}
	})
	t.Run("issuer mix-up", func(t *testing.T) {
		b := h.browser()
		auth := b.startLogin(t, 0, "/app/")
		resp, _ := b.Do(t, "GET", auth+"&login=alice")
		loc, _ := url.Parse(resp.Header.Get("Location"))
		q := loc.Query()
		q.Set("iss", "https://evil.example")
		loc.RawQuery = q.Encode()
		if r, _ := b.Do(t, "GET", loc.String()); r.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.StatusCode)
		}
		if _, ok := b.Cookies["gatehouse_session"]; ok {
			t.Fatal("session started")
		}
	})
	t.Run("wrong code", func(t *testing.T) {
		b := h.browser()
		auth := b.startLogin(t, 0, "/app/")
		u, _ := url.Parse(auth)
		r, _ := b.Do(t, "GET", cb+"?code=made-up&state="+u.Query().Get("state")+"&iss="+url.QueryEscape(h.idp.Issuer()))
		if r.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.StatusCode)
		}
	})
	t.Run("expired flow", func(t *testing.T) {
		b := h.browser()
		auth := b.startLogin(t, 0, "/app/")
		h.clock.Advance(11 * time.Minute)
		defer h.clock.Advance(time.Minute)
		if resp, _ := b.Do(t, "GET", auth+"&login=alice"); resp.StatusCode == http.StatusFound {
			r, _ := b.Do(t, "GET", resp.Header.Get("Location"))
			if r.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", r.StatusCode)
			}
		}
	})
	t.Run("repeated state", func(t *testing.T) {
		b := h.browser()
		if r, _ := b.Do(t, "GET", cb+"?code=a&state=x&state=y"); r.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.StatusCode)
		}
	})
	t.Run("two tabs", func(t *testing.T) {
		b := h.browser()
		first := b.startLogin(t, 0, "/app/one")
		second := b.startLogin(t, 0, "/app/two")
		if r := b.finishLogin(t, second, "alice"); r.Header.Get("Location") != "/app/two" {
			t.Fatalf("second tab: %d %q", r.StatusCode, r.Header.Get("Location"))
		}
		if r := b.finishLogin(t, first, "alice"); r.Header.Get("Location") != "/app/one" {
			t.Fatalf("first tab: %d %q", r.StatusCode, r.Header.Get("Location"))
		}
	})
}

func TestLoginPathRefusesOpenRedirect(t *testing.T) {
	h := newHarness(t, 1)
	b := h.browser()
	for _, rd := range []string{"//evil.example", "/\\evil.example", "https:evil.example", "/%2F%2Fevil.example"} {
		if r, _ := b.Do(t, "GET", h.gws[0].URL+"/_gatehouse/login?rd="+url.QueryEscape(rd)); r.StatusCode != http.StatusBadRequest {
			t.Errorf("rd=%q: status %d, want 400", rd, r.StatusCode)
		}
	}
	r, _ := b.Do(t, "GET", h.gws[0].URL+"/_gatehouse/login?rd=/app/ok")
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), h.idp.Issuer()) {
		t.Fatalf("rd=/app/ok: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
}

func TestRefreshOncePerSession(t *testing.T) {
	h := newHarness(t, 2)
	b := h.browser()
	b.login(t, "alice")
	_, before := b.app(t, 0)
	h.clock.Advance(4*time.Minute + 30*time.Second) // 5m tokens, 1m margin
	var wg sync.WaitGroup
	var failed atomic.Int32
	tokens := sync.Map{}
	for i := range 50 {
		wg.Go(func() {
			code, body := b.app(t, i%2) // both instances, one store
			if code != 200 {
				failed.Add(1)
			}
			tokens.Store(body, true)
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	if n := h.idp.TokenRequests("refresh_token"); n != 1 {
		t.Fatalf("refresh requests at the issuer = %d, want 1", n)
	}
	n := 0
	tokens.Range(func(k, _ any) bool { n++; return k.(string) != before })
	if n != 1 {
		t.Fatalf("requests saw %d different tokens after the refresh, want 1 (the new one)", n)
	}
}

func TestRefreshReuseEndsSession(t *testing.T) {
	h := newHarness(t, 1)
	b := h.browser()
	b.login(t, "alice")
	// An attacker redeems the stolen refresh token first.
	stolen := h.idp.LastRefreshToken()
	req, _ := http.NewRequest("POST", h.idpSrv.URL+"/token", strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {stolen}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("gw", "gw-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("attacker's refresh: %v %v", resp, err)
	}
	resp.Body.Close()
	h.clock.Advance(4*time.Minute + 30*time.Second)
	if code, _ := b.app(t, 0); code != http.StatusUnauthorized {
		t.Fatalf("after refresh-token reuse: %d, want 401 (session ended)", code)
	}
	if resp, _ := b.Do(t, "GET", h.gws[0].URL+"/app/", navigate...); resp.StatusCode != http.StatusFound {
		t.Fatalf("navigation after the session ended: %d, want 302 to log in", resp.StatusCode)
	}
}

func TestRefreshTransientErrorKeepsSession(t *testing.T) {
	h := newHarness(t, 1)
	b := h.browser()
	b.login(t, "alice")
	_, first := b.app(t, 0)
	h.idpOff.Store(true)
	h.clock.Advance(4*time.Minute + 30*time.Second) // in the margin, token still valid
	if code, body := b.app(t, 0); code != 200 || body != first {
		t.Fatalf("refresh failing while the token is valid: %d %q", code, body)
	}
	h.clock.Advance(time.Minute) // expired now
	if code, _ := b.app(t, 0); code != http.StatusServiceUnavailable {
		t.Fatalf("refresh failing with an expired token: %d, want 503", code)
	}
	h.idpOff.Store(false)
	if code, body := b.app(t, 0); code != 200 || body == first {
		t.Fatalf("after the issuer is back: %d, token changed %v", code, body != first)
	}
}

func TestMaxLifetime(t *testing.T) {
	h := newHarness(t, 1)
	b := h.browser()
	b.login(t, "alice")
	for range 8 * 12 { // refreshes keep it going, but not past 8h
		h.clock.Advance(5 * time.Minute)
		code, _ := b.app(t, 0)
		if code != 200 {
			break
		}
	}
	if code, _ := b.app(t, 0); code != http.StatusUnauthorized {
		t.Fatalf("after max_lifetime: %d, want 401", code)
	}
}

// flakyStore is a session store that fails, as Redis does while it
// stalls, when down is set.
type flakyStore struct {
	session.Store
	down atomic.Bool
}

var errStoreDown = errors.New("store down (i/o timeout)")

func (s *flakyStore) Load(ctx context.Context, key string) ([]byte, error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.Store.Load(ctx, key)
}

func (s *flakyStore) Delete(ctx context.Context, key string) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.Store.Delete(ctx, key)
}

// A logout the session store could not carry out says so (503) and
// keeps the cookie for the retry: a 303 would tell the user they are
// logged out while the session stays good wherever its cookie is.
func TestLogoutWhenTheStoreFails(t *testing.T) {
	h := newHarness(t, 1)
	b := h.browser()
	b.login(t, "alice")
	old := b.Cookies["gatehouse_session"]
	logout := h.gws[0].URL + "/_gatehouse/logout"
	h.store.down.Store(true)
	r, _ := b.Do(t, "POST", logout, "Origin", h.gws[0].URL)
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("logout with the store down: %d, want 503", r.StatusCode)
	}
	if b.Cookies["gatehouse_session"] != old {
		t.Fatal("the cookie went with a logout that did not happen")
	}
	h.store.down.Store(false)
	if code, _ := b.app(t, 0); code != 200 {
		t.Fatalf("the session after the failed logout: %d (it was never ended)", code)
	}
	if r, _ := b.Do(t, "POST", logout, "Origin", h.gws[0].URL); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("the retry: %d, want 303", r.StatusCode)
	}
	replay := &browser{Jar: &testutil.Jar{Cookies: map[string]string{"gatehouse_session": old}}, h: h}
	if code, _ := replay.app(t, 0); code != http.StatusUnauthorized {
		t.Fatalf("old cookie after the retried logout: %d, want 401", code)
	}
}

func TestLogout(t *testing.T) {
	h := newHarness(t, 1)
	b := h.browser()
	b.login(t, "alice")
	rt := h.idp.LastRefreshToken()
	old := b.Cookies["gatehouse_session"]
	logout := h.gws[0].URL + "/_gatehouse/logout"

	if r, _ := b.Do(t, "POST", logout, "Origin", "https://evil.example"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site logout: %d, want 403", r.StatusCode)
	}
	if r, _ := b.Do(t, "POST", logout); r.StatusCode != http.StatusForbidden {
		t.Fatalf("logout without origin evidence: %d, want 403", r.StatusCode)
	}
	if r, _ := b.Do(t, "GET", logout, "Sec-Fetch-Site", "same-origin"); r.StatusCode != http.StatusOK {
		t.Fatalf("GET of the logout path: %d, want 200 (the logout page)", r.StatusCode)
	}
	if code, _ := b.app(t, 0); code != 200 {
		t.Fatalf("session after refused logouts and a GET: %d", code)
	}

	// A stream open under the session is cut at logout.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc := &phase.RequestCtx{Cancel: cancel}
	req := httptest.NewRequest("GET", "/app/stream", nil)
	req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: old})
	a, err := h.logins[0].Session(rc, req)
	if err != nil || a == nil {
		t.Fatalf("Session = %v, %v", a, err)
	}
	h.logins[0].Track(rc, a)

	r, _ := b.Do(t, "POST", logout, "Origin", h.gws[0].URL)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d, want 303", r.StatusCode)
	}
	loc, _ := url.Parse(r.Header.Get("Location"))
	if loc.Path != "/end_session" || loc.Query().Get("id_token_hint") == "" || loc.Query().Get("post_logout_redirect_uri") != h.gws[0].URL+"/" {
		t.Fatalf("logout redirect = %s", loc)
	}
	if _, ok := b.Cookies["gatehouse_session"]; ok {
		t.Fatal("session cookie not cleared")
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session's stream was not cut at logout")
	}
	rc.End()
	replay := &browser{Jar: &testutil.Jar{Cookies: map[string]string{"gatehouse_session": old}}, h: h}
	if code, _ := replay.app(t, 0); code != http.StatusUnauthorized {
		t.Fatalf("old cookie after logout: %d, want 401", code)
	}
	// The refresh token was revoked at the issuer.
	ireq, _ := http.NewRequest("POST", h.idpSrv.URL+"/introspect", strings.NewReader("token="+url.QueryEscape(rt)))
	ireq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ireq.SetBasicAuth("gw", "gw-secret")
	iresp, err := http.DefaultClient.Do(ireq)
	if err != nil {
		t.Fatal(err)
	}
	var in struct{ Active bool }
	json.NewDecoder(iresp.Body).Decode(&in)
	iresp.Body.Close()
	if in.Active {
		t.Fatal("refresh token still active after logout")
	}
	if h.logins[0].sh.OpenRequests() != 0 {
		t.Fatalf("%d requests still registered", h.logins[0].sh.OpenRequests())
	}
}

// BenchmarkSession is what a request with a session costs before its token
// is checked: the cookie's MAC, a store lookup, decrypting and decoding the
// record (memory store; Redis adds a round trip).
func BenchmarkSession(b *testing.B) {
	l, err := New(Config{RedirectURL: "https://gw.example/_gatehouse/callback", CookieSecret: testSecret,
		CookieName: "gatehouse_session", RefreshMargin: time.Minute, MaxLifetime: time.Hour}, NewShared(session.NewMemory(10, nil), nil))
	if err != nil {
		b.Fatal(err)
	}
	id := randomID(32)
	now := time.Now()
	rec := &Record{Subject: "alice", AccessToken: strings.Repeat("a", 800), RefreshToken: strings.Repeat("r", 43),
		IDToken: strings.Repeat("i", 700), Expiry: now.Add(time.Hour), Obtained: now, Created: now, Until: now.Add(time.Hour)}
	if err := l.save(context.Background(), storeKey(id), rec); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/app/", nil)
	req.AddCookie(&http.Cookie{Name: l.cookie, Value: l.keys.sessionCookie(id)})
	rc := &phase.RequestCtx{}
	b.ReportAllocs()
	for b.Loop() {
		if a, err := l.Session(rc, req); err != nil || a == nil {
			b.Fatal(a, err)
		}
	}
}
