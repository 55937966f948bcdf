package authn

import (
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/auth/jwt"
	"gatehouse/internal/observe/metrics"
	"gatehouse/internal/phase"
	"gatehouse/internal/testutil/fakeidp"
)

// The identity headers mean what the token said, or say nothing: a role
// that would read as two roles in a comma-separated list ("viewer,admin"
// as viewer and admin), or as another role once trimmed or stripped of a
// control character, is left out; so is a scope that is not an RFC 6749
// scope-token ("x read" would read as x and read). A sub or client_id
// with a control character, or a space at an end (the app's parser trims
// " alice" to alice), is refused: its header could only name someone
// else. Gatehouse's own policy sees every member as it is.
func TestIdentityHeadersMeanWhatTheTokenSaid(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	keys := &issuer.Keys{Issuer: idp.Issuer, Client: idp.Client(), Cooldown: time.Hour, Refresh: time.Hour}
	f := &Filter{Route: "api", Mode: "required", AcceptBearer: true, Cache: NewCache(100, time.Minute),
		Headers: Headers{Subject: "X-Auth-Subject", Roles: "X-Auth-Roles", Scopes: "X-Auth-Scopes", Client: "X-Auth-Client"},
		Issuers: []*Issuer{{Name: "main", URL: idp.Issuer, Keys: keys, RolesClaim: "roles", ScopeClaim: "scope",
			Verifier: &jwt.Verifier{Issuer: idp.Issuer, Audience: "gw", Keys: keys}}}}
	call := func(claims map[string]any) (*phase.RequestCtx, error) {
		claims["aud"] = "gw"
		r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
		r.Header.Set("Authorization", "Bearer "+idp.Token(t, claims))
		rc := &phase.RequestCtx{}
		_, err := f.FilterRequest(rc, httptest.NewRecorder(), r)
		return rc, err
	}
	rc, err := call(map[string]any{"sub": "alice",
		"roles": []any{"viewer,admin", "editor", " ops", "ops ", "ad\x01min", "", "team lead"},
		"scope": []any{"x read", "y", "café", `q"`, "ok", "a\\b"}})
	if err != nil {
		t.Fatal(err)
	}
	header := func(name string) string { return strings.Join(rc.Identity.Values(name), "|") }
	if got := header("X-Auth-Roles"); got != "editor,team lead" {
		t.Errorf("X-Auth-Roles = %q, want %q", got, "editor,team lead")
	}
	if got := header("X-Auth-Scopes"); got != "y ok" {
		t.Errorf("X-Auth-Scopes = %q, want %q", got, "y ok")
	}
	if got := header("X-Auth-Subject"); got != "alice" {
		t.Errorf("X-Auth-Subject = %q", got)
	}
	for _, claims := range []map[string]any{
		{"sub": "al\x00ice"},
		{"sub": "alice\n"},
		{"sub": "alice", "client_id": "app\x7f"},
		{"sub": " alice"},
		{"sub": "alice "},
		{"sub": "alice", "client_id": " app"},
		{"sub": "alice", "client_id": "app "},
	} {
		rc, err := call(claims)
		var pe *phase.Error
		if !errors.As(err, &pe) || pe.StatusCode() != 401 {
			t.Errorf("sub %q, client_id %q: %v, identity %v; want 401", claims["sub"], claims["client_id"], err, rc.Identity.Headers)
		}
	}
}

// Allowed decisions are counted through the observer's counter, taken
// once per filter (no label lookup per request), and still land in
// gatehouse_auth_decisions_total beside the refusals.
func TestAllowDecisionsCountedOnce(t *testing.T) {
	t.Parallel()
	idp := fakeidp.New(t)
	keys := &issuer.Keys{Issuer: idp.Issuer, Client: idp.Client(), Cooldown: time.Hour, Refresh: time.Hour}
	m := metrics.New("test")
	f := &Filter{Route: "api", Mode: "required", AcceptBearer: true, Cache: NewCache(100, time.Minute), Obs: m.Auth(),
		Issuers: []*Issuer{{Name: "main", URL: idp.Issuer, Keys: keys,
			Verifier: &jwt.Verifier{Issuer: idp.Issuer, Audience: "gw", Keys: keys}}}}
	tok := idp.Token(t, map[string]any{"sub": "alice", "aud": "gw"})
	for _, bearer := range []string{tok, tok, tok, "not-a-token"} {
		r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
		r.Header.Set("Authorization", "Bearer "+bearer)
		_, _ = f.FilterRequest(&phase.RequestCtx{}, httptest.NewRecorder(), r)
	}
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, fam := range fams {
		if fam.GetName() != "gatehouse_auth_decisions_total" {
			continue
		}
		for _, c := range fam.GetMetric() {
			labels := map[string]string{}
			for _, l := range c.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["route"]+" "+labels["result"]+" "+labels["reason"]] = c.GetCounter().GetValue()
		}
	}
	if want := map[string]float64{"api allow valid": 3, "api deny malformed": 1}; !maps.Equal(got, want) {
		t.Fatalf("gatehouse_auth_decisions_total = %v, want %v", got, want)
	}
}
