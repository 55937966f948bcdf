//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"
	"gatehouse/internal/testutil/fakeidp"
)

// authStatus sends a GET with a bearer token and returns the status and
// WWW-Authenticate.
func authStatus(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// Issue 14: a token verified once stayed accepted from the auth cache for
// up to 5 minutes after its signing key left the issuer's JWKS. It must be
// refused once a refresh of the keys has seen the key gone.
func TestAuthWithdrawnKeyRefusedAfterRefresh(t *testing.T) {
	idp := fakeidp.New(t)
	addr := testutil.FreePort(t)
	testutil.Start(t, fmt.Sprintf(`
admin: { listen: "off" }
server: { listen: [%q] }
auth:
  issuers: { main: { issuer: %q, audience: gatehouse, refresh_interval: 200ms } }
routes:
  - { name: api, match: { path_prefix: /api }, respond: { status: 204 }, auth: { mode: required } }
`, addr, idp.Issuer), addr)
	url := "http://" + addr + "/api/x"
	old := idp.Token(t, map[string]any{"sub": "alice", "aud": "gatehouse"})
	for range 3 { // verified, then answered from the cache
		if code, _ := authStatus(t, url, old); code != 204 {
			t.Fatalf("token signed with k1: %d", code)
		}
	}
	idp.Rotate(t, "k2")
	idp.Retire("k1")
	if !testutil.WaitFor(10*time.Second, func() bool { code, _ := authStatus(t, url, old); return code == 401 }) {
		t.Fatal("a token whose key left the JWKS is still accepted")
	}
	if code, _ := authStatus(t, url, idp.Token(t, map[string]any{"sub": "alice", "aud": "gatehouse"})); code != 204 {
		t.Fatalf("token signed with the new key: %d", code)
	}
}

// Issue 14: a token that is not a JWS (JWE-shaped, five segments) goes to
// introspection; an endpoint that refuses it with 400 made Gatehouse answer
// 503. It is an inactive token: 401 invalid_token. An endpoint refusing
// Gatehouse's own credentials is a configuration fault: 503, and a warning
// in the event log.
func TestAuthIntrospectionRefusals(t *testing.T) {
	good, badCreds := fakeidp.New(t), fakeidp.New(t)
	good.SetIntrospectionRefusal(http.StatusBadRequest, `{"error":"invalid_request"}`)
	addr := testutil.FreePort(t)
	p := testutil.Start(t, fmt.Sprintf(`
admin: { listen: "off" }
server: { listen: [%q] }
auth:
  issuers:
    good: { issuer: %q, audience: gatehouse, introspection: { client_id: %s, client_secret: %s } }
    bad: { issuer: %q, audience: gatehouse, introspection: { client_id: %s, client_secret: not-the-secret } }
routes:
  - { name: good, match: { path_prefix: /good }, respond: { status: 204 }, auth: { mode: required, issuers: [good] } }
  - { name: bad, match: { path_prefix: /bad }, respond: { status: 204 }, auth: { mode: required, issuers: [bad] } }
`, addr, good.Issuer, fakeidp.IntrospectClient, fakeidp.IntrospectSecret, badCreds.Issuer, fakeidp.IntrospectClient), addr)
	const jweShaped = "eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn"
	code, wwwAuth := authStatus(t, "http://"+addr+"/good/x", jweShaped)
	if code != 401 || !strings.Contains(wwwAuth, `error="invalid_token"`) {
		t.Errorf("token refused by the endpoint with 400: %d %q, want 401 invalid_token", code, wwwAuth)
	}
	if code, _ := authStatus(t, "http://"+addr+"/bad/x", badCreds.Opaque(map[string]any{"sub": "svc", "aud": "gatehouse"})); code != 503 {
		t.Errorf("endpoint refusing gatehouse's credentials: %d, want 503", code)
	}
	if !p.WaitLog("introspection endpoint refuses gatehouse's client", 5*time.Second) {
		t.Error("no warning about the refused client credentials")
	}
}
