//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/devidp"
	"gatehouse/internal/testutil"
)

// Two Gatehouse processes share browser sessions through a real
// redis-server: a login on one is a session on the other; when the access
// token comes due, 50 concurrent requests over both make exactly one
// refresh at the issuer; a logout on one ends the session on both and
// closes the event stream it had open on the other.
func TestSessionsSharedThroughRedis(t *testing.T) {
	redis := testutil.StartRedis(t, "")
	up := startUpstream(t, "app")
	addrs := []string{testutil.FreePort(t), testutil.FreePort(t)}
	origin := "http://" + addrs[0] // the public origin both instances serve
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// Short-lived access tokens: the refresh window opens 2s after login
	// (refresh_margin 2s, at most half the 4s lifetime).
	idp, err := devidp.Start(ctx, "127.0.0.1:0", devidp.Options{AccessTTL: 4 * time.Second, Clients: []devidp.Client{{
		ID: "gw", Secret: "gw-secret", RedirectURIs: []string{origin + "/_gatehouse/callback"},
		PostLogoutRedirectURIs: []string{origin + "/"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var gates []string
	for _, addr := range addrs {
		testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q] }
admin: { listen: "off" }
redis: { url: "redis://%s/0", timeout: 500ms }
auth:
  issuers: { dev: { issuer: %q, audience: gatehouse } }
  login:
    client_id: gw
    client_secret: gw-secret
    redirect_url: %s/_gatehouse/callback
    cookie_secret: shared-by-both-instances-0123456789
    refresh_margin: 2s
    store: redis
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: /app }, upstream: app, auth: { accept: [session] } }
`, addr, redis.Addr, idp.Issuer(), origin, up.Addr), addr)
		gates = append(gates, "http://"+addr)
	}

	// Log in on instance 0.
	cookie := loginAt(t, gates[0], idp, "alice")
	loggedIn := time.Now()
	get := func(gate string) int {
		req, _ := http.NewRequest("GET", gate+"/app/x", nil)
		req.Header.Set("Cookie", cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(gates[1]); c != 200 {
		t.Fatalf("session from instance 0 on instance 1: %d", c)
	}

	// The access token comes due; both instances see it at once. The
	// issuer's clock is real, so this waits for real time to pass.
	before := idp.TokenRequests("refresh_token")
	time.Sleep(time.Until(loggedIn.Add(2200 * time.Millisecond)))
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range 50 {
		wg.Go(func() {
			if get(gates[i%2]) != 200 {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of 50 requests failed during the refresh", bad.Load())
	}
	if n := idp.TokenRequests("refresh_token") - before; n != 1 {
		t.Fatalf("refreshes at the issuer = %d, want exactly 1 for one session over two instances", n)
	}

	// A stream open on instance 1 ends when instance 0 logs out.
	req, _ := http.NewRequest("GET", gates[1]+"/app/events?do=stream&sse=1&id=s1", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "id: 0") {
		t.Fatalf("stream: %q", line)
	}
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, br); close(ended) }()

	lreq, _ := http.NewRequest("POST", gates[0]+"/_gatehouse/logout", nil)
	lreq.Header.Set("Cookie", cookie)
	lreq.Header.Set("Origin", origin)
	lresp, err := noRedirect.Do(lreq)
	if err != nil {
		t.Fatal(err)
	}
	lresp.Body.Close()
	if lresp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", lresp.StatusCode)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("instance 1 kept the session's stream open after logout on instance 0")
	}
	for i, g := range gates {
		if c := get(g); c != http.StatusUnauthorized {
			t.Fatalf("instance %d after logout: %d, want 401", i, c)
		}
	}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// loginAt logs user in through gate and returns the Cookie header value of
// the session.
func loginAt(t *testing.T, gate string, idp *devidp.IdP, user string) string {
	t.Helper()
	flows := map[string]string{}
	step := func(u string) *http.Response {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		for k, v := range flows {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			flows[c.Name] = c.Value
		}
		return resp
	}
	r := step(gate + "/app/")
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), idp.Issuer()) {
		t.Fatalf("navigation: %d %q", r.StatusCode, r.Header.Get("Location"))
	}
	r = step(r.Header.Get("Location") + "&login=" + user)
	r = step(r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || flows["gatehouse_session"] == "" {
		t.Fatalf("callback: %d", r.StatusCode)
	}
	return "gatehouse_session=" + flows["gatehouse_session"]
}
