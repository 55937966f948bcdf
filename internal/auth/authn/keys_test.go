package authn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/auth/jwt"
	"gatehouse/internal/phase"
	"gatehouse/internal/testutil/fakeidp"
)

// Issue 14: a token verified once stayed accepted from the cache for up to
// its TTL (5 minutes) after its signing key left the issuer's JWKS. After
// a refresh of the set, a remembered token whose kid no longer names the
// key that verified it is verified again (and refused); one whose key is
// still there stays remembered.
func TestCachedTokenForgottenWhenItsKeyLeavesTheSet(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		change     func(t *testing.T, idp *fakeidp.IdP)
		wantStatus int // 0: allowed
		wantReason string
		wantHit    bool // answered from the cache
	}{
		{name: "key withdrawn", change: func(t *testing.T, idp *fakeidp.IdP) {
			idp.Rotate(t, "k2")
			idp.Retire("k1")
		}, wantStatus: 401, wantReason: "unknown_kid"},
		{name: "kid now names another key", change: func(t *testing.T, idp *fakeidp.IdP) {
			idp.Retire("k1")
			idp.Rotate(t, "k1")
		}, wantStatus: 401, wantReason: "bad_signature"},
		{name: "key kept, another added", change: func(t *testing.T, idp *fakeidp.IdP) {
			idp.Rotate(t, "k2")
		}, wantReason: "valid", wantHit: true},
		{name: "set unchanged", change: func(t *testing.T, idp *fakeidp.IdP) {}, wantReason: "valid", wantHit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := fakeidp.New(t)
			keys := &issuer.Keys{Issuer: idp.Issuer, Client: idp.Client(), Cooldown: time.Hour, Refresh: time.Hour}
			obs := &decisions{}
			f := &Filter{Route: "api", Mode: "required", AcceptBearer: true, Cache: NewCache(100, 5*time.Minute), Obs: obs,
				Issuers: []*Issuer{{Name: "main", URL: idp.Issuer, Keys: keys,
					Verifier: &jwt.Verifier{Issuer: idp.Issuer, Audience: "gw", Keys: keys}}}}
			tok := idp.Token(t, map[string]any{"sub": "alice", "aud": "gw"})
			call := func() (int, string, bool) {
				obs.reason, obs.hits = "", 0
				r := httptest.NewRequest(http.MethodGet, "http://gw.test/api", nil)
				r.Header.Set("Authorization", "Bearer "+tok)
				_, err := f.FilterRequest(&phase.RequestCtx{}, httptest.NewRecorder(), r)
				var pe *phase.Error
				if errors.As(err, &pe) {
					return pe.StatusCode(), obs.reason, obs.hits > 0
				}
				if err != nil {
					t.Fatal(err)
				}
				return 0, obs.reason, obs.hits > 0
			}
			if status, reason, _ := call(); status != 0 {
				t.Fatalf("first use: %d %s", status, reason)
			}
			if _, _, hit := call(); !hit {
				t.Fatal("second use not answered from the cache")
			}
			tt.change(t, idp)
			if err := keys.RefreshKeys(context.Background()); err != nil {
				t.Fatal(err)
			}
			status, reason, hit := call()
			if status != tt.wantStatus || reason != tt.wantReason || hit != tt.wantHit {
				t.Fatalf("after the refresh: status %d, reason %q, cache hit %v; want %d, %q, %v",
					status, reason, hit, tt.wantStatus, tt.wantReason, tt.wantHit)
			}
		})
	}
}
