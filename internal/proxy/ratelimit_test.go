package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"

	"gatehouse/internal/testutil/fakeidp"
)

func TestRateLimits(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
auth:
  issuers:
    main:
      issuer: %q
      audience: gatehouse
      introspection: { client_id: %s, client_secret: %s }
rate_limits:
  per-ip:   { key: client_ip, rate: 1/m, burst: 3 }
  per-user: { key: user, rate: 1/m, burst: 2 }
  trial:    { key: client_ip, rate: 1/m, burst: 1, mode: soft }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: open, match: { path_prefix: /open }, upstream: app, rate_limits: [per-ip] }
  - { name: api, match: { path_prefix: /api }, upstream: app, rate_limits: [per-ip, per-user], auth: {} }
  - { name: users, match: { path_prefix: /users }, upstream: app, rate_limits: [per-user], auth: {} }
  - { name: soft, match: { path_prefix: /soft }, upstream: app, rate_limits: [trial] }
`, idp.Issuer, fakeidp.IntrospectClient, fakeidp.IntrospectSecret, hostport(up.Server)))

	t.Run("per IP: burst, then 429 with headers and no upstream call", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if resp, _ := g.get(t, "/open/x", "X-Forwarded-For", fmt.Sprintf("10.0.0.%d", i)); resp.StatusCode != 200 {
				t.Fatalf("request %d: %d", i, resp.StatusCode)
			}
		}
		before := up.count()
		// Rotating X-Forwarded-For from an untrusted peer changes nothing.
		resp, body := g.get(t, "/open/x", "X-Forwarded-For", "10.9.9.9")
		if resp.StatusCode != 429 || up.count() != before {
			t.Fatalf("status %d, upstream calls %d → %d: %s", resp.StatusCode, before, up.count(), body)
		}
		for h, want := range map[string]string{"Retry-After": "60", "RateLimit-Policy": `"per-ip";q=3;w=180`, "RateLimit": `"per-ip";r=0;t=60`} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
	})
	t.Run("per-IP limit sheds before any token check", func(t *testing.T) {
		jwks, intro := idp.JWKSFetches.Load(), idp.Introspections.Load()
		for i := 0; i < 5; i++ {
			resp, _ := g.get(t, "/api/x", "Authorization", "Bearer opaque-garbage-"+fmt.Sprint(i))
			if resp.StatusCode != 429 { // the address is already over its limit on /open
				t.Fatalf("request %d: %d, want 429", i, resp.StatusCode)
			}
		}
		if idp.JWKSFetches.Load() != jwks || idp.Introspections.Load() != intro {
			t.Error("a limited request cost a key fetch or an introspection call")
		}
	})
	t.Run("per user, after authentication", func(t *testing.T) {
		alice := idp.Token(t, map[string]any{"sub": "alice", "aud": "gatehouse"})
		bob := idp.Token(t, map[string]any{"sub": "bob", "aud": "gatehouse"})
		codes := func(tok string, n int) string {
			var out []string
			for i := 0; i < n; i++ {
				resp, _ := g.get(t, "/users/x", "Authorization", "Bearer "+tok)
				out = append(out, fmt.Sprint(resp.StatusCode))
			}
			return strings.Join(out, " ")
		}
		if got := codes("not.a.jwt", 4); got != "401 401 401 401" {
			t.Errorf("invalid tokens: %s (they must not reach a per-user bucket)", got)
		}
		if got := codes(alice, 3); got != "200 200 429" {
			t.Errorf("alice: %s", got)
		}
		if got := codes(bob, 2); got != "200 200" {
			t.Errorf("bob, limited separately: %s", got)
		}
	})
	t.Run("soft mode logs and lets through", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if resp, _ := g.get(t, "/soft/x"); resp.StatusCode != 200 {
				t.Fatalf("soft-limited request refused: %d", resp.StatusCode)
			}
		}
		lines := g.logs.lines()
		if last := lines[len(lines)-1]; last["ratelimit"] != "soft-limited:trial" {
			t.Errorf("access log ratelimit = %v", last["ratelimit"])
		}
	})
}

// A concurrency policy holds a slot per request in progress, refuses more
// with 429 (no upstream call), and gives the slot back when the request
// ends, including when the client gives up.
func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	up := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/hold") {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(w, "done")
	})
	defer close(release)
	g := newGate(t, fmt.Sprintf(`
rate_limits:
  two-at-once: { key: client_ip, concurrency: 2 }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: slow, match: { path_prefix: /slow }, upstream: app, rate_limits: [two-at-once] }
`, hostport(up.Server)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 2)
	for _, c := range []context.Context{ctx, context.Background()} {
		go func() {
			req, _ := http.NewRequestWithContext(c, "GET", g.srv.URL+"/slow/hold", nil)
			resp, err := g.srv.Client().Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		<-arrived
	}
	before := up.count()
	resp, _ := g.get(t, "/slow/quick")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || up.count() != before {
		t.Fatalf("third in flight: %d (Retry-After %q), upstream calls %d → %d", resp.StatusCode, resp.Header.Get("Retry-After"), before, up.count())
	}
	cancel() // the first client gives up: its slot comes back
	<-done
	if !testutil.WaitFor(5*time.Second, func() bool { r, _ := g.get(t, "/slow/quick"); return r.StatusCode == 200 }) {
		t.Fatal("the slot of a client that left was not given back")
	}
}

func TestTooManyHeaderFields(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	g := newGate(t, fmt.Sprintf(`
server: { max_header_count: 20 }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, hostport(up.Server)))
	hdr := func(n int) []string {
		var h []string
		for i := 0; i < n; i++ {
			h = append(h, "X-Many", fmt.Sprint(i)) // values of one name count one each
		}
		return h
	}
	if resp, _ := g.get(t, "/x", hdr(15)...); resp.StatusCode != 200 {
		t.Fatalf("15 fields: %d", resp.StatusCode)
	}
	before := up.count()
	if resp, _ := g.get(t, "/x", hdr(30)...); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || up.count() != before {
		t.Fatalf("30 fields: %d, upstream calls %d → %d", resp.StatusCode, before, up.count())
	}
}
