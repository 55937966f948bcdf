package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/auth/jwks"
	"gatehouse/internal/testutil"
)

// An issuer whose discovery failed (down when Gatehouse started) is
// asked again about a second later, not a whole cooldown later; in
// between, callers get the failure without a fetch each.
func TestDiscoveryRetriedSoonAfterAFailure(t *testing.T) {
	var down atomic.Bool
	var fetches atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(Metadata{Issuer: srv.URL, JWKSURI: srv.URL + "/jwks"})
	}))
	defer srv.Close()
	var clock atomic.Int64
	clock.Store(time.Unix(1_800_000_000, 0).UnixNano())
	k := &Keys{Issuer: srv.URL, Client: srv.Client(), Cooldown: 30 * time.Second, Refresh: time.Hour,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }}
	down.Store(true)
	for range 10 {
		if _, err := k.Metadata(context.Background()); err == nil {
			t.Fatal("metadata from an issuer that is down")
		}
	}
	first := fetches.Load()
	if first == 0 || first > 2 { // both well-known locations, once
		t.Fatalf("%d fetches for 10 calls within a second of a failure", first)
	}
	down.Store(false)
	clock.Add(int64(jwks.RetryAfterFailure + time.Millisecond))
	md, err := k.Metadata(context.Background())
	if err != nil || md.JWKSURI != srv.URL+"/jwks" {
		t.Fatalf("a second after the issuer came back: %+v, %v", md, err)
	}
}

// Issue 14: discovery ran under the context of the request that started
// it, so that client disconnecting failed discovery for every request
// waiting on it. The request that leaves must end only its own wait.
func TestDiscoveryOutlivesTheRequestThatStartedIt(t *testing.T) {
	var srv *testutil.HeldServer
	srv = testutil.StartHeldServer(t, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(Metadata{Issuer: srv.URL, JWKSURI: srv.URL + "/jwks"})
	})
	now := time.Unix(1_800_000_000, 0)
	k := &Keys{Issuer: srv.URL, Client: srv.Client(), Cooldown: 30 * time.Second, Refresh: time.Hour,
		Now: func() time.Time { return now }}
	srv.CheckWaiterLeaves(t, func(ctx context.Context) error {
		md, err := k.Metadata(ctx)
		if err == nil && md.JWKSURI != srv.URL+"/jwks" {
			err = fmt.Errorf("metadata %+v", md)
		}
		return err
	})
}

// A reload that changes an issuer's key settings (key_cooldown,
// refresh_interval) makes a new key set; it keeps the keys and metadata
// the set it replaces had fetched, so an issuer that is down at that
// moment does not take every protected route down with it. Once it is
// back, the new set fetches its own.
func TestNewKeySetInheritsWhatTheOldOneFetched(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: "k1", Use: "sig"}}}
	var down atomic.Bool
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case down.Load():
			http.Error(w, "down", http.StatusServiceUnavailable)
		case r.URL.Path == "/jwks":
			_ = json.NewEncoder(w).Encode(set)
		default:
			_ = json.NewEncoder(w).Encode(Metadata{Issuer: srv.URL, JWKSURI: srv.URL + "/jwks"})
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, configured := range []string{"", srv.URL + "/jwks"} { // discovered, then configured
		old := &Keys{Issuer: srv.URL, JWKSURI: configured, Client: srv.Client(), Cooldown: 30 * time.Second, Refresh: time.Hour}
		down.Store(false)
		if _, err := old.Key(ctx, "k1"); err != nil {
			t.Fatalf("jwks_uri %q: the old set's key: %v", configured, err)
		}
		down.Store(true)
		next := &Keys{Issuer: srv.URL, JWKSURI: configured, Client: srv.Client(), Cooldown: 20 * time.Second, Refresh: time.Hour, Inherit: old}
		if _, err := next.Key(ctx, "k1"); err != nil {
			t.Fatalf("jwks_uri %q: the new set, issuer down: %v", configured, err)
		}
		if reached, _ := next.Reachability(); !reached {
			t.Fatalf("jwks_uri %q: the new set reads as never fetched", configured)
		}
		if _, err := next.Key(ctx, "k2"); err == nil {
			t.Fatalf("jwks_uri %q: an unknown kid verified", configured)
		}
		alone := &Keys{Issuer: srv.URL, JWKSURI: configured, Client: srv.Client(), Cooldown: 20 * time.Second, Refresh: time.Hour}
		if _, err := alone.Key(ctx, "k1"); err == nil {
			t.Fatalf("jwks_uri %q: a set with nothing to inherit verified with the issuer down", configured)
		}
	}
}
