//go:build integration

package integration

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"
	"gatehouse/internal/testutil/fakeidp"
)

// TestReadyzFollowsUpstreamsAndIssuers (issue 15): /readyz answers 503
// with the reasons while a route's only upstream is down or an issuer a
// route needs was never reached, and 200 once both are back; the issuer's
// outage is one event when it starts and one when it ends, whatever the
// refreshes in between; a target never checked nor used is not reported
// up by gatehouse_upstream_target_up.
func TestReadyzFollowsUpstreamsAndIssuers(t *testing.T) {
	idp := fakeidp.New(t)
	idp.SetDown(true)
	appAddr, idle := testutil.FreePort(t), testutil.FreePort(t)
	addr, adminAddr := testutil.FreePort(t), testutil.FreePort(t)
	p := testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q] }
admin: { listen: %q }
auth:
  issuers: { idp: { issuer: %q, jwks_uri: %q, audience: gatehouse, refresh_interval: 100ms } }
upstreams:
  app:
    targets: [%q]
    health: { active: { type: tcp, interval: 100ms, timeout: 50ms, rise: 1, fall: 1 } }
  idle: { targets: [%q] }
routes:
  - { name: app, match: { path_prefix: /app }, upstream: app }
  - { name: idle, match: { path_prefix: /idle }, upstream: idle }
  - { name: api, match: { path_prefix: /api }, respond: { status: 204 }, auth: { mode: required } }
  - { name: home, match: { path_prefix: / }, respond: { status: 200, body: hi } }
`, addr, adminAddr, idp.Issuer, idp.Issuer+"/jwks", appAddr, idle), addr)
	admin := "http://" + adminAddr
	if err := testutil.WaitListening(adminAddr, 5*time.Second, p.Done()); err != nil {
		t.Fatal(err)
	}
	events := func(msg string) int { return strings.Count(p.Output(), `"msg":"`+msg) }
	readyz := func() (int, string) { return fetch(t, "GET", admin+"/readyz") }

	// Both down: not ready, with both reasons; one event for the issuer.
	var body string
	if !testutil.WaitFor(10*time.Second, func() bool {
		code, b := readyz()
		body = b
		return code == 503 && strings.Contains(b, "upstream app (route app): no target available: "+appAddr+" down") &&
			strings.Contains(b, "issuer idp (route api): keys never fetched: ") && events("issuer unreachable") > 0
	}) {
		t.Fatalf("/readyz while the upstream and the issuer are down:\n%s", body)
	}
	if strings.Contains(body, "upstream idle") {
		t.Errorf("an upstream without active checks, never used, made /readyz fail:\n%s", body)
	}
	// The status page says the same.
	if _, st := fetch(t, "GET", admin+"/status.json"); !strings.Contains(st, `"ready": false`) || !strings.Contains(st, "issuer idp") {
		t.Errorf("status.json does not say not ready with the reason:\n%.600s", st)
	}
	fams := scrape(t, admin)
	if v, ok := value(fams, "gatehouse_upstream_target_up", map[string]string{"upstream": "idle", "target": idle}); !ok || v != 0 {
		t.Errorf("target_up of a target never checked nor used = %v (present %v), want 0", v, ok)
	}
	if v, _ := value(fams, "gatehouse_upstream_target_state", map[string]string{"upstream": "idle", "state": "unknown"}); v != 1 {
		t.Errorf("target_state{state=unknown} of the idle target = %v, want 1", v)
	}
	if v, _ := value(fams, "gatehouse_upstream_target_state", map[string]string{"upstream": "app", "state": "down"}); v != 1 {
		t.Errorf("target_state{state=down} of the checked-down target = %v, want 1", v)
	}
	// Several refreshes (every 100 ms) fail: still one event.
	if !testutil.WaitFor(10*time.Second, func() bool { return idp.JWKSFetches.Load() >= 5 }) {
		t.Fatalf("the keys were fetched %d times", idp.JWKSFetches.Load())
	}
	if n := events("issuer unreachable"); n != 1 {
		t.Errorf("%d 'issuer unreachable' events over %d failed fetches, want 1", n, idp.JWKSFetches.Load())
	}

	// Both back: ready, and one recovery event.
	l, err := net.Listen("tcp", appAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app")) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	idp.SetDown(false)
	if !testutil.WaitFor(10*time.Second, func() bool { code, b := readyz(); body = b; return code == 200 }) {
		t.Fatalf("/readyz after both recovered:\n%s", body)
	}
	if !p.WaitLog(`"msg":"issuer reachable again`, 5*time.Second) {
		t.Fatal("no recovery event for the issuer")
	}
	if n := events("issuer unreachable"); n != 1 {
		t.Errorf("%d 'issuer unreachable' events for one outage, want 1", n)
	}

	// The issuer goes down again: one more event, still ready (its keys
	// stay usable); back: one more recovery.
	idp.SetDown(true)
	if !testutil.WaitFor(10*time.Second, func() bool { return events("issuer unreachable") == 2 }) {
		t.Fatal("no event for the second outage")
	}
	if code, b := readyz(); code != 200 {
		t.Errorf("an issuer reached before and down now made /readyz %d:\n%s", code, b)
	}
	idp.SetDown(false)
	if !testutil.WaitFor(10*time.Second, func() bool { return events("issuer reachable again") == 2 }) {
		t.Fatal("no recovery event after the second outage")
	}
	if n := events("issuer unreachable"); n != 2 {
		t.Errorf("%d 'issuer unreachable' events for two outages, want 2", n)
	}

	// The app's only target goes down: not ready again.
	srv.Close()
	if !testutil.WaitFor(10*time.Second, func() bool { code, b := readyz(); body = b; return code == 503 }) {
		t.Fatalf("/readyz with the app's only target down:\n%s", body)
	}
	if !strings.Contains(body, "upstream app (route app)") || strings.Contains(body, "issuer idp") {
		t.Errorf("reasons with the app down:\n%s", body)
	}
	if v, _ := value(scrape(t, admin), "gatehouse_upstream_target_up", map[string]string{"upstream": "app"}); v != 0 {
		t.Errorf("target_up of a target down = %v", v)
	}
}
