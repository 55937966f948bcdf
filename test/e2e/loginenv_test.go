//go:build e2e

package e2e

// The login tests' world: an oidc-provider with Gatehouse registered as
// the client gatehouse-web, a Gatehouse with auth.login in front of an
// echo upstream, a browser-like cookie-jar client that follows redirects
// one hop at a time, and the issuer's test-only hooks.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

const (
	loginClient   = "gatehouse-web"
	loginSecret   = "gatehouse-web-secret"
	loginResource = "https://gatehouse.test"
	sessionCookie = "gatehouse_session"
	flowCookiePfx = "gatehouse_session_flow_"
	// loginAccessTTL is the lifetime of gatehouse-web's access tokens
	// (LOGIN_ACCESS_TTL); with refresh_margin 10s a session's token is due
	// for refresh 10s after login.
	loginAccessTTL = 20 * time.Second
	refreshMargin  = 10 * time.Second
)

// loginEnv is one oidc-provider, one echo upstream and one Gatehouse with
// auth.login, shared by the scenarios of a test (each logs in its own user
// with its own cookie jar).
type loginEnv struct {
	as       *authServer
	gw       string // http://127.0.0.1:port, Gatehouse's public origin
	redirect string // auth.login.redirect_url
	up       *echoUpstream
	proc     *testutil.Proc
}

// loginConfig is the auth section shared by the login tests: issuer op,
// Gatehouse as gatehouse-web, refresh 10s before expiry.
func loginConfig(issuer, redirect, postLogout string) string {
	pl := ""
	if postLogout != "" {
		pl = fmt.Sprintf("\n    post_logout_redirect_url: %q", postLogout)
	}
	return fmt.Sprintf(`auth:
  issuers:
    op:
      issuer: %q
      audience: %q
      type: at+jwt
  login:
    issuer: op
    client_id: %s
    client_secret: %s
    redirect_url: %q
    resource: %q
    scopes: [openid, offline_access, kline.read]
    cookie_secret: "e2e-cookie-secret-0123456789-abcdefghijklmnop"
    refresh_margin: %s%s
`, issuer, loginResource, loginClient, loginSecret, redirect, loginResource, refreshMargin, pl)
}

func startLoginEnv(t *testing.T) *loginEnv {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH")
	}
	gwAddr := testutil.FreePort(t)
	opPort := strings.Split(testutil.FreePort(t), ":")[1]
	e := &loginEnv{gw: "http://" + gwAddr, redirect: "http://" + gwAddr + "/_gatehouse/callback", up: newEchoUpstream(t)}
	e.as = startAuthServerEnv(t, opPort, newKeysFile(t, t.TempDir(), "k1"),
		"LOGIN_REDIRECT_URIS="+e.redirect,
		"LOGIN_POST_LOGOUT_URIS="+e.gw+"/",
		fmt.Sprintf("LOGIN_ACCESS_TTL=%d", int(loginAccessTTL/time.Second)))
	e.proc = testutil.Start(t, fmt.Sprintf(`server: { listen: [%q] }
admin: { listen: "off" }
log: { access: stdout }
%supstreams: { app: { targets: [%q] } }
routes:
  - name: admin
    match: { path_prefix: /admin }
    upstream: app
    auth: { accept: [session, bearer], roles: { any_of: [admin] } }
  - name: kline
    match: { path_prefix: /api/kline }
    upstream: app
    auth: { accept: [session, bearer] }
`, gwAddr, loginConfig(e.as.issuer, e.redirect, ""), strings.TrimPrefix(e.up.srv.URL, "http://")), gwAddr)
	return e
}

// echoUpstream answers every request with the headers it received, as
// JSON, and remembers any request that carried a login cookie or an
// Authorization header (neither may ever reach an app on a session route).
type echoUpstream struct {
	srv *httptest.Server

	mu        sync.Mutex // guards the following fields
	bySubject map[string]int
	leaks     []string
}

type echoed struct {
	Path    string      `json:"path"`
	Headers http.Header `json:"headers"`
}

func newEchoUpstream(t *testing.T) *echoUpstream {
	e := &echoUpstream{bySubject: map[string]int{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.bySubject[r.Header.Get("X-Auth-Subject")]++
		for _, c := range r.Cookies() {
			if strings.HasPrefix(c.Name, sessionCookie) || strings.HasPrefix(c.Name, "__Host-"+sessionCookie) {
				e.leaks = append(e.leaks, fmt.Sprintf("%s got cookie %s", r.URL, c.Name))
			}
		}
		if a := r.Header.Get("Authorization"); a != "" {
			e.leaks = append(e.leaks, fmt.Sprintf("%s got Authorization %.12s…", r.URL, a))
		}
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{Path: r.URL.RequestURI(), Headers: r.Header})
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *echoUpstream) requests(subject string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bySubject[subject]
}

func (e *echoUpstream) leaked() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.leaks...)
}

// browser is a cookie-jar client that sends the headers a browser sends
// and never follows redirects by itself.
type browser struct {
	t   *testing.T
	jar *cookiejar.Jar
	c   *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, jar: jar, c: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// reply is a response with its body read.
type reply struct {
	*http.Response
	body []byte
}

func (r reply) String() string {
	b := r.body
	if len(b) > 600 {
		b = append(b[:600:600], "…"...)
	}
	return fmt.Sprintf("%s %s → %d (Location %q) %s", r.Request.Method, r.Request.URL, r.StatusCode, r.Header.Get("Location"), b)
}

// echoed decodes the echo upstream's answer.
func (r reply) echoed(t *testing.T) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("not an answer from the upstream: %v: %s", err, r)
	}
	return e
}

// setCookie returns the Set-Cookie of the response named name, or nil.
func (r reply) setCookie(name string) *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (b *browser) do(method, target string, h http.Header) reply {
	b.t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return reply{resp, body}
}

// navigationHeaders are what a browser sends for a top-level navigation.
func navigationHeaders() http.Header {
	return http.Header{
		"Accept":         {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Sec-Fetch-Mode": {"navigate"},
		"Sec-Fetch-Dest": {"document"},
		"Sec-Fetch-Site": {"none"},
	}
}

// navigate is a top-level GET navigation (one hop).
func (b *browser) navigate(target string) reply {
	b.t.Helper()
	return b.do(http.MethodGet, target, navigationHeaders())
}

// fetch is a page script's fetch() of JSON (one hop).
func (b *browser) fetch(target string) reply {
	b.t.Helper()
	return b.do(http.MethodGet, target, http.Header{
		"Accept":         {"application/json"},
		"Sec-Fetch-Mode": {"cors"},
		"Sec-Fetch-Dest": {"empty"},
		"Sec-Fetch-Site": {"same-origin"},
	})
}

// follow follows r's redirects as navigations, as a browser does, and
// returns every response (r first). At the issuer's login page it logs in
// as user by opening the page with ?login=user, as submitting its form
// does; with user "" it stops there.
func (b *browser) follow(r reply, user string) []reply {
	b.t.Helper()
	return b.followUntil(r, user, "")
}

// followUntil is follow that stops before opening a URL that starts with
// stop (unless stop is "").
func (b *browser) followUntil(r reply, user, stop string) []reply {
	b.t.Helper()
	hops := []reply{r}
	for range 20 {
		loc := r.Header.Get("Location")
		switch {
		case r.StatusCode >= 300 && r.StatusCode < 400 && loc != "":
			u, err := r.Request.URL.Parse(loc)
			if err != nil {
				b.t.Fatalf("bad Location in %s: %v", r, err)
			}
			if stop != "" && strings.HasPrefix(u.String(), stop) {
				return hops
			}
			r = b.navigate(u.String())
		case r.StatusCode == http.StatusOK && isLoginPage(r) && user != "":
			u := *r.Request.URL
			u.RawQuery = url.Values{"login": {user}}.Encode()
			r = b.navigate(u.String())
		default:
			return hops
		}
		hops = append(hops, r)
	}
	b.t.Fatalf("more than 20 redirects: %v", hops)
	return nil
}

func isLoginPage(r reply) bool {
	return strings.HasPrefix(r.Request.URL.Path, "/interaction/") && strings.Contains(string(r.body), `name="login"`)
}

// login navigates to path without a session and logs in as user. It
// returns every hop (the first is Gatehouse's redirect to the issuer, the
// last the page at path) and when the login completed.
func (e *loginEnv) login(t *testing.T, b *browser, path, user string) ([]reply, time.Time) {
	t.Helper()
	first := b.navigate(e.gw + path)
	if first.StatusCode != http.StatusFound || !strings.HasPrefix(first.Header.Get("Location"), e.as.issuer+"/auth?") {
		t.Fatalf("navigation without a session: want 302 to %s/auth, got %s", e.as.issuer, first)
	}
	hops := b.follow(first, user)
	cb := e.callback(t, hops)
	if cb.StatusCode != http.StatusFound || cb.Header.Get("Location") != path {
		t.Fatalf("callback: want 302 to %s, got %s", path, cb)
	}
	// Gatehouse got its tokens before it answered the callback: a time
	// taken now is no earlier than the session's.
	return hops, time.Now()
}

// callback returns the hop that answered the redirect_url.
func (e *loginEnv) callback(t *testing.T, hops []reply) reply {
	t.Helper()
	for _, h := range hops {
		if strings.HasPrefix(h.Request.URL.String(), e.redirect+"?") {
			return h
		}
	}
	t.Fatalf("the login never reached %s: %v", e.redirect, hops)
	return reply{}
}

// sessionValue is the browser's session cookie for Gatehouse ("" if none).
func (e *loginEnv) sessionValue(b *browser) string {
	u, _ := url.Parse(e.gw)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}

func (e *loginEnv) flowCookies(b *browser) []string {
	u, _ := url.Parse(e.gw)
	var names []string
	for _, c := range b.jar.Cookies(u) {
		if strings.HasPrefix(c.Name, flowCookiePfx) {
			names = append(names, c.Name)
		}
	}
	return names
}

// wantChallenge checks r is Gatehouse sending a navigation to log in.
func (e *loginEnv) wantChallenge(t *testing.T, r reply) {
	t.Helper()
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), e.as.issuer+"/auth?") {
		t.Errorf("want 302 to %s/auth?…, got %s", e.as.issuer, r)
	}
}

// want401 checks r is a 401 with a Bearer challenge and no redirect.
func want401(t *testing.T, r reply) {
	t.Helper()
	if r.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer ") || r.Header.Get("Location") != "" {
		t.Errorf("want 401 with WWW-Authenticate: Bearer …, got %s (WWW-Authenticate %q)", r, r.Header.Get("WWW-Authenticate"))
	}
}

// refreshGrants reads the issuer's count of refresh_token grants for
// account (a test-only hook of server.mjs).
func (a *authServer) refreshGrants(t *testing.T, account string) (ok, failed int) {
	t.Helper()
	var v struct{ Count, Failed int }
	a.testHook(t, "/test/refresh-grants?account="+url.QueryEscape(account), &v)
	return v.Count, v.Failed
}

// lastRefreshToken is the refresh token the issuer issued last to account
// (a test-only hook of server.mjs).
func (a *authServer) lastRefreshToken(t *testing.T, account string) string {
	t.Helper()
	var v struct {
		RefreshToken string `json:"refresh_token"`
	}
	a.testHook(t, "/test/last-refresh-token?account="+url.QueryEscape(account), &v)
	if v.RefreshToken == "" {
		t.Fatalf("the issuer issued no refresh token to %s", account)
	}
	return v.RefreshToken
}

func (a *authServer) testHook(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(a.issuer + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
	}
}

// clientPost posts form to the issuer's endpoint as gatehouse-web
// (client_secret_basic) and decodes the JSON answer.
func (a *authServer) clientPost(t *testing.T, endpoint string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.issuer+endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(loginClient, loginSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// redeemRefreshToken uses a refresh token at the token endpoint as
// gatehouse-web, as whoever stole it would.
func (a *authServer) redeemRefreshToken(t *testing.T, rt string) (int, map[string]any) {
	t.Helper()
	return a.clientPost(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// tokenActive asks the issuer's introspection endpoint (RFC 7662) whether
// a refresh token is active.
func (a *authServer) tokenActive(t *testing.T, token string) bool {
	t.Helper()
	status, body := a.clientPost(t, "/token/introspection", url.Values{"token": {token}, "token_type_hint": {"refresh_token"}})
	if status != http.StatusOK {
		t.Fatalf("introspection: %d %v", status, body)
	}
	active, _ := body["active"].(bool)
	return active
}

// waitUntil blocks until the wall clock reaches at. A session's refresh is
// due by its access token's real expiry, which the issuer (another process,
// with the real clock) sets: there is no clock to inject, and no condition
// to poll that would not itself trigger the refresh under test, so the
// test waits for the moment itself.
func waitUntil(t *testing.T, at time.Time) {
	t.Helper()
	timer := time.NewTimer(time.Until(at))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-t.Context().Done():
		t.Fatal("test cancelled while waiting for the refresh window")
	}
}

// refreshDue is when a session that logged in at login is surely inside
// its refresh window (expiry - margin = login + 10s), with a second to
// spare, and still well before the token expires (login + 20s).
func refreshDue(login time.Time) time.Time {
	return login.Add(loginAccessTTL - refreshMargin + time.Second)
}
