package authn

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/auth/introspect"
	"gatehouse/internal/phase"
	"gatehouse/internal/testutil/fakeidp"
)

// Issue 14: a token that is not a JWS (here JWE-shaped, five segments)
// goes to introspection; an endpoint that refuses it with 400 made
// Gatehouse answer 503. A 4xx about the token is 401 invalid_token (RFC
// 7662: such a token is inactive); only the endpoint being unavailable,
// or refusing Gatehouse's own credentials (a configuration fault, not the
// user's), is 503.
func TestIntrospectionRefusalStatus(t *testing.T) {
	t.Parallel()
	const jweShaped = "eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn"
	tests := []struct {
		name       string
		status     int // the endpoint's answer; 0: a normal answer
		body       string
		secret     string // Gatehouse's client secret; default the right one
		wantStatus int
		wantReason string
	}{
		{name: "token refused with 400", status: 400, body: `{"error":"invalid_request"}`, wantStatus: 401, wantReason: "inactive"},
		{name: "token refused with 400, no body", status: 400, wantStatus: 401, wantReason: "inactive"},
		{name: "unknown token", wantStatus: 401, wantReason: "inactive"},
		{name: "wrong client secret (401)", secret: "wrong", wantStatus: 503, wantReason: "introspection_unavailable"},
		{name: "client forbidden (403)", status: 403, wantStatus: 503, wantReason: "introspection_unavailable"},
		{name: "invalid_client with 400", status: 400, body: `{"error":"invalid_client"}`, wantStatus: 503, wantReason: "introspection_unavailable"},
		{name: "throttled (429)", status: 429, wantStatus: 503, wantReason: "introspection_unavailable"},
		{name: "server error", status: 500, wantStatus: 503, wantReason: "introspection_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := fakeidp.New(t)
			idp.SetIntrospectionRefusal(tt.status, tt.body)
			secret := fakeidp.IntrospectSecret
			if tt.secret != "" {
				secret = tt.secret
			}
			obs := &decisions{}
			f := &Filter{Route: "api", Mode: "required", AcceptBearer: true, Cache: NewCache(100, time.Minute), Obs: obs,
				Issuers: []*Issuer{{Name: "main", URL: idp.Issuer, NegativeTTL: 10 * time.Second, PositiveTTL: time.Minute,
					Introspector: &introspect.Client{Issuer: idp.Issuer, ClientID: fakeidp.IntrospectClient, ClientSecret: secret,
						HTTP: idp.Client(), Timeout: 5 * time.Second}}}}
			r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
			r.Header.Set("Authorization", "Bearer "+jweShaped)
			_, err := f.FilterRequest(&phase.RequestCtx{}, httptest.NewRecorder(), r)
			var pe *phase.Error
			if !errors.As(err, &pe) {
				t.Fatalf("FilterRequest error = %v, want a *phase.Error", err)
			}
			if got := pe.StatusCode(); got != tt.wantStatus || obs.reason != tt.wantReason {
				t.Fatalf("status %d, reason %q; want %d, %q (%v)", got, obs.reason, tt.wantStatus, tt.wantReason, err)
			}
			if tt.wantStatus == 401 && !strings.Contains(pe.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q, want error=\"invalid_token\"", pe.Header.Get("WWW-Authenticate"))
			}
			if tt.wantStatus == 503 && pe.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// decisions records the last decision's reason, and cache hits.
type decisions struct {
	reason string
	hits   int
}

func (d *decisions) Decision(route, result, reason string) { d.reason = reason }
func (d *decisions) CacheHit()                             { d.hits++ }

// Without an injected clock, a bearer token's cache entry is read and
// written at the request's start (RequestCtx.Start): an inactive answer
// remembered for NegativeTTL serves a request that starts within it, and
// not one that starts after it.
func TestTokenCacheReadAtTheRequestsStart(t *testing.T) {
	t.Parallel()
	const jweShaped = "eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn"
	idp := fakeidp.New(t)
	obs := &decisions{}
	f := &Filter{Route: "api", Mode: "required", AcceptBearer: true, Cache: NewCache(100, time.Minute), Obs: obs,
		Issuers: []*Issuer{{Name: "main", URL: idp.Issuer, NegativeTTL: 10 * time.Second, PositiveTTL: time.Minute,
			Introspector: &introspect.Client{Issuer: idp.Issuer, ClientID: fakeidp.IntrospectClient,
				ClientSecret: fakeidp.IntrospectSecret, HTTP: idp.Client(), Timeout: 5 * time.Second}}}}
	start := time.Unix(1_000_000, 0)
	for i, tc := range []struct {
		after time.Duration
		hits  int
	}{{0, 0}, {5 * time.Second, 1}, {20 * time.Second, 1}} {
		r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
		r.Header.Set("Authorization", "Bearer "+jweShaped)
		if _, err := f.FilterRequest(&phase.RequestCtx{Start: start.Add(tc.after)}, httptest.NewRecorder(), r); err == nil {
			t.Fatalf("request %d: an inactive token passed", i)
		}
		if obs.hits != tc.hits || obs.reason != "inactive" {
			t.Errorf("request %d, %v after the first: cache hits %d, reason %q; want %d, inactive", i, tc.after, obs.hits, obs.reason, tc.hits)
		}
	}
}

// A cached "not active" is the answer of one issuer: a route that would
// ask another issuer about the same opaque token asks it. (It was shared:
// a token refused on a route of one issuer was refused, for negative_ttl,
// on a route of another issuer that would have found it active.)
func TestInactiveAnswerIsOneIssuers(t *testing.T) {
	t.Parallel()
	main, partner := fakeidp.New(t), fakeidp.New(t)
	tok := partner.Opaque(map[string]any{"sub": "alice"}) // unknown to main
	issuer := func(name string, idp *fakeidp.IdP) *Issuer {
		return &Issuer{Name: name, URL: idp.Issuer, NegativeTTL: time.Minute, PositiveTTL: time.Minute,
			Introspector: &introspect.Client{Issuer: idp.Issuer, ClientID: fakeidp.IntrospectClient,
				ClientSecret: fakeidp.IntrospectSecret, HTTP: idp.Client(), Timeout: 5 * time.Second}}
	}
	cache := NewCache(100, time.Minute) // one cache for every route, as compiled
	filter := func(iss *Issuer) *Filter {
		return &Filter{Route: iss.Name, Mode: "required", AcceptBearer: true, Cache: cache, Issuers: []*Issuer{iss}}
	}
	onMain, onPartner := filter(issuer("main", main)), filter(issuer("partner", partner))
	ask := func(f *Filter) error {
		r := httptest.NewRequest(http.MethodGet, "http://gw.test/x", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		_, err := f.FilterRequest(&phase.RequestCtx{}, httptest.NewRecorder(), r)
		return err
	}
	if err := ask(onMain); err == nil {
		t.Fatal("main accepted partner's token")
	}
	if err := ask(onPartner); err != nil {
		t.Fatalf("partner's route refused partner's active token after main's answer: %v", err)
	}
	if err := ask(onMain); err == nil {
		t.Fatal("main accepted partner's token once partner's answer was cached")
	}
}
