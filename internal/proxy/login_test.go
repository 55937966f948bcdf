package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"gatehouse/internal/auth/oidc"
	"gatehouse/internal/devidp"
	"gatehouse/internal/phase"
	"gatehouse/internal/testutil"
)

// loginGate is Gatehouse with browser login against the development
// issuer, in front of a recorder upstream that can also stream events.
func loginGate(t *testing.T) (*httptest.Server, *recorder, *devidp.IdP) {
	t.Helper()
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/admin/ws" {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_ = c.Write(r.Context(), websocket.MessageText, []byte("hello"))
			_, _, _ = c.Read(r.Context()) // until the connection goes
			return
		}
		if r.URL.Path == "/public/cookies103" {
			// The same through a 103, over plain HTTP with HSTS in it.
			h := w.Header()
			h.Set("Link", "</a.css>; rel=preload")
			h.Set("Strict-Transport-Security", "max-age=0")
			h["Set-Cookie"] = []string{"gatehouse_session=planted; Path=/", "app=1; Path=/"}
			w.WriteHeader(http.StatusEarlyHints)
			clear(h)
		}
		if strings.HasPrefix(r.URL.Path, "/public/cookies") {
			// An app trying to set Gatehouse's login cookies, beside its own.
			for _, c := range []string{"gatehouse_session=planted; Path=/; HttpOnly", "app=1; Path=/",
				"__Host-gatehouse_session=planted; Path=/; Secure", " gatehouse_session_flow_x=planted", "gatehouse_sessions=app-own"} {
				w.Header().Add("Set-Cookie", c)
			}
		}
		if r.URL.Path != "/admin/events" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: hello\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // until Gatehouse cuts it
	})
	idpSrv := httptest.NewUnstartedServer(nil)
	gw := httptest.NewUnstartedServer(nil)
	origin := "http://" + gw.Listener.Addr().String()
	idp, err := devidp.New("http://"+idpSrv.Listener.Addr().String(), devidp.Options{Clients: []devidp.Client{{
		ID: "gatehouse", Secret: "s3cret", RedirectURIs: []string{origin + "/_gatehouse/callback"},
		PostLogoutRedirectURIs: []string{origin + "/"}}}})
	if err != nil {
		t.Fatal(err)
	}
	idpSrv.Config.Handler = idp
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)
	yaml := fmt.Sprintf(`
auth:
  issuers:
    dev: { issuer: %q, audience: gatehouse }
  login:
    client_id: gatehouse
    client_secret: s3cret
    redirect_url: %s/_gatehouse/callback
    cookie_secret: 0123456789abcdef0123456789abcdef
upstreams:
  app: { targets: [%[3]q] }
  # The same app under another name: a host it tells apart (config
  # refuses one upstream path under two auth policies).
  other: { targets: [%[3]q] }
routes:
  - { name: public, match: { path_prefix: /public }, upstream: app }
  - name: admin
    match: { path_prefix: /admin }
    upstream: app
    auth: { accept: [session, bearer], roles: { any_of: [admin] } }
  - name: api
    match: { path_prefix: /api }
    upstream: app
    auth: { accept: [session], forward_session_token: true }
  - { name: other-host, match: { host: [other.example] }, upstream: other }
`, idp.Issuer(), origin, hostport(up.Server))
	return startGate(t, gw, yaml, true).srv, up, idp
}

// login logs j in as user through the dev issuer, starting at path.
func login(t *testing.T, j *testutil.Jar, gw, path, user string) {
	t.Helper()
	r, _ := j.Do(t, "GET", gw+path, "Sec-Fetch-Mode", "navigate")
	if r.StatusCode != http.StatusFound {
		t.Fatalf("navigation: %d", r.StatusCode)
	}
	r, _ = j.Do(t, "GET", r.Header.Get("Location")+"&login="+user)
	r, body := j.Do(t, "GET", r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || r.Header.Get("Location") != path {
		t.Fatalf("callback: %d → %q: %s", r.StatusCode, r.Header.Get("Location"), body)
	}
}

func TestBrowserLoginThroughEngine(t *testing.T) {
	gw, up, _ := loginGate(t)
	anon := testutil.NewJar()
	if r, _ := anon.Do(t, "GET", gw.URL+"/admin/x", "Sec-Fetch-Mode", "cors"); r.StatusCode != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("fetch without session: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r, _ := anon.Do(t, "GET", gw.URL+"/admin/x", "Accept", "text/html"); r.StatusCode != http.StatusFound {
		t.Fatalf("old-style navigation without session: %d, want 302", r.StatusCode)
	}
	if up.count() != 0 {
		t.Fatal("an unauthenticated request reached the upstream")
	}

	alice := testutil.NewJar()
	login(t, alice, gw.URL, "/admin/x?y=1", "alice")
	if r, body := alice.Do(t, "GET", gw.URL+"/admin/x?y=1", "Cookie", "theme=dark"); r.StatusCode != 200 || body != "ok" {
		t.Fatalf("after login: %d %q", r.StatusCode, body)
	}
	seen := up.last(t)
	if seen.Header.Get("X-Auth-Subject") != "alice" || seen.Header.Get("X-Auth-Roles") != "admin" {
		t.Fatalf("identity headers: %v", seen.Header)
	}
	if c := strings.Join(seen.Header.Values("Cookie"), "; "); strings.Contains(c, "gatehouse_session") || !strings.Contains(c, "theme=dark") {
		t.Fatalf("upstream Cookie = %q: want theme=dark only", c)
	}
	if seen.Header.Get("Authorization") != "" {
		t.Fatal("the access token reached a route that does not forward it")
	}
	alice.Do(t, "GET", gw.URL+"/api/x")
	if a := up.last(t).Header.Get("Authorization"); !strings.HasPrefix(a, "Bearer ey") {
		t.Fatalf("forward_session_token route: Authorization = %q", a)
	}
	// Public and other-host routes never see the session cookie either.
	alice.Do(t, "GET", gw.URL+"/public/x")
	if c := up.last(t).Header.Get("Cookie"); c != "" {
		t.Fatalf("public route Cookie = %q", c)
	}
	// Login paths are answered on every host, before routes.
	req, _ := http.NewRequest("GET", gw.URL+"/_gatehouse/login?rd=//evil", nil)
	req.Host = "other.example"
	r, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("login path on another host: %v", err)
	}
	// Closed, or the connection's goroutines wait for the body forever.
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("login path on another host: %d, want 400", r.StatusCode)
	}

	bob := testutil.NewJar()
	login(t, bob, gw.URL, "/api/y", "bob")
	if r, _ := bob.Do(t, "GET", gw.URL+"/admin/x", "Sec-Fetch-Mode", "navigate"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("bob on /admin: %d, want 403 (no login loop)", r.StatusCode)
	}
}

func TestLogoutEndsStreams(t *testing.T) {
	gw, _, _ := loginGate(t)
	alice := testutil.NewJar()
	login(t, alice, gw.URL, "/admin/", "alice")

	req, _ := http.NewRequest("GET", gw.URL+"/admin/events", nil)
	req.AddCookie(&http.Cookie{Name: "gatehouse_session", Value: alice.Cookies["gatehouse_session"]})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "data: hello\n" {
		t.Fatalf("stream: %q", line)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, br)
		ended <- err
	}()
	r, _ := alice.Do(t, "POST", gw.URL+"/_gatehouse/logout", "Origin", gw.URL)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	if u, _ := url.Parse(r.Header.Get("Location")); !strings.HasSuffix(u.Path, "/end_session") {
		t.Fatalf("logout went to %s", u)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the session's event stream stayed open after logout")
	}
}

func TestLogoutClosesWebSocket(t *testing.T) {
	gw, _, _ := loginGate(t)
	alice := testutil.NewJar()
	login(t, alice, gw.URL, "/admin/", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw.URL, "http")+"/admin/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Cookie": {"gatehouse_session=" + alice.Cookies["gatehouse_session"]}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("first message: %q %v", msg, err)
	}
	if r, _ := alice.Do(t, "POST", gw.URL+"/_gatehouse/logout", "Origin", gw.URL); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	if _, _, err := c.Read(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("the WebSocket stayed open after logout (err %v, ctx %v)", err, ctx.Err())
	}
}

// A logged-in person whom the route's policy refuses gets a 403 page that
// names who is logged in and offers the logout button (the form the logout
// page has), so they can log in as someone else; API clients get problem
// details without it.
func TestRefusedSessionPageOffersLogout(t *testing.T) {
	gw, up, _ := loginGate(t)
	bob := testutil.NewJar()
	login(t, bob, gw.URL, "/api/y", "bob")
	r, body := bob.Do(t, "GET", gw.URL+"/admin/x", "Sec-Fetch-Mode", "navigate", "Accept", "text/html,*/*;q=0.8")
	if r.StatusCode != http.StatusForbidden || r.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("bob on /admin: %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		"You are logged in as <strong>bob</strong>.",
		oidc.LogoutForm("/_gatehouse/logout"),
		`<form method="post" action="/_gatehouse/logout">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("403 page lacks %q:\n%s", want, body)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); csp != oidc.PageCSP || strings.Contains(body, "<script") {
		t.Errorf("CSP %q with page:\n%s", csp, body)
	}
	if r.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options %q", r.Header.Get("X-Frame-Options"))
	}
	r, body = bob.Do(t, "GET", gw.URL+"/admin/x", "Sec-Fetch-Mode", "cors", "Accept", "application/json")
	if r.StatusCode != http.StatusForbidden || r.Header.Get("Content-Type") != "application/problem+json" || strings.Contains(body, "<form") {
		t.Errorf("fetch: %d %q %s", r.StatusCode, r.Header.Get("Content-Type"), body)
	}
	// The page's button: a POST from this origin logs bob out.
	r, _ = bob.Do(t, "POST", gw.URL+"/_gatehouse/logout", "Sec-Fetch-Site", "same-origin", "Origin", gw.URL)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout from the 403 page: %d, want 303", r.StatusCode)
	}
	if r, _ := bob.Do(t, "GET", gw.URL+"/api/y", "Sec-Fetch-Mode", "cors"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after logout: %d, want 401", r.StatusCode)
	}
	if up.count() != 0 {
		t.Fatal("a refused request reached the upstream")
	}
}

// An error page with a session escapes the name; one without shows no
// logout form.
func TestErrorPageEscapes(t *testing.T) {
	t.Parallel()
	page := string(errorPage(403, "Forbidden", "no <b>", "rid<1>", &phase.Session{User: `<script>alert("x")</script>`, LogoutPath: `/out?a="b"`}))
	for _, want := range []string{
		"no &lt;b&gt;", "rid&lt;1&gt;",
		"<strong>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</strong>",
		`action="/out?a=&#34;b&#34;"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script") {
		t.Errorf("unescaped:\n%s", page)
	}
	if page := string(errorPage(502, "Bad Gateway", "", "r", nil)); strings.Contains(page, "<form") || strings.Contains(page, "logged in") {
		t.Errorf("no session, yet:\n%s", page)
	}
}

// TestUpstreamCannotSetLoginCookies: the login cookies are Gatehouse's
// alone in responses too. An app's Set-Cookie for the session cookie, its
// __Host- form or a flow cookie is dropped, so no app can plant a session
// of its choosing in a browser for every other app (fixation, login CSRF)
// or end one; its own cookies pass, a name that only begins like the
// login cookie's included.
func TestUpstreamCannotSetLoginCookies(t *testing.T) {
	t.Parallel()
	gw, _, _ := loginGate(t)
	resp, err := gw.Client().Get(gw.URL + "/public/cookies")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := []string{"app=1; Path=/", "gatehouse_sessions=app-own"}
	if d := cmp.Diff(want, resp.Header["Set-Cookie"]); d != "" {
		t.Fatalf("Set-Cookie reaching the browser (-want +got):\n%s", d)
	}

	// A 103 is held to the same rules (and, over plain HTTP, carries no
	// HSTS): a client that stores a 1xx's cookies (curl does) got the
	// planted session.
	var hints []http.Header
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, http.Header(h).Clone())
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", gw.URL+"/public/cookies103", nil)
	resp, err = gw.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(hints) != 1 {
		t.Fatalf("got %d 1xx responses, want the 103", len(hints))
	}
	want103 := http.Header{"Link": {"</a.css>; rel=preload"}, "Set-Cookie": {"app=1; Path=/"}}
	if d := cmp.Diff(want103, hints[0]); d != "" {
		t.Errorf("103 reaching the browser (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, resp.Header["Set-Cookie"]); d != "" {
		t.Errorf("Set-Cookie after the 103 (-want +got):\n%s", d)
	}
}
