package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/testutil"
)

// Issue 14: the key fetch ran under the context of the request that
// started it, so that client disconnecting failed the fetch for every
// request waiting on it (all answered 503 keys_unavailable). The request
// that leaves must end only its own wait.
func TestFetchOutlivesTheRequestThatStartedIt(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv.Public(), KeyID: "k1", Use: "sig"}}}
	var fetches atomic.Int64
	srv := testutil.StartHeldServer(t, func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_ = json.NewEncoder(w).Encode(set)
	})
	now := time.Unix(1_800_000_000, 0)
	s := New(srv.URL, Options{Client: srv.Client(), Now: func() time.Time { return now }})
	srv.CheckWaiterLeaves(t, func(ctx context.Context) error {
		_, err := s.Key(ctx, "k1")
		return err
	})
	if _, err := s.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("after the fetch: %v", err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

func TestHoldsAndGeneration(t *testing.T) {
	t.Parallel()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b := newKey(), newKey()
	tests := []struct {
		name string
		set  []jose.JSONWebKey
		kid  string
		want bool
	}{
		{name: "kid names the key", set: []jose.JSONWebKey{{Key: a.Public(), KeyID: "k1"}, {Key: b.Public(), KeyID: "k2"}}, kid: "k1", want: true},
		{name: "kid gone", set: []jose.JSONWebKey{{Key: b.Public(), KeyID: "k2"}}, kid: "k1"},
		{name: "kid names another key", set: []jose.JSONWebKey{{Key: b.Public(), KeyID: "k1"}}, kid: "k1"},
		{name: "no kid, the only key", set: []jose.JSONWebKey{{Key: a.Public(), KeyID: "x"}}, kid: "", want: true},
		{name: "no kid, another only key", set: []jose.JSONWebKey{{Key: b.Public(), KeyID: "x"}}, kid: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: tt.set})
			}))
			defer srv.Close()
			s := New(srv.URL, Options{Client: srv.Client()})
			if g := s.Generation(); g != 0 {
				t.Fatalf("generation %d before any fetch", g)
			}
			if err := s.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			if g := s.Generation(); g != 1 {
				t.Fatalf("generation %d after a fetch, want 1", g)
			}
			if got := s.Holds(tt.kid, a.Public()); got != tt.want {
				t.Fatalf("Holds(%q, a) = %v, want %v", tt.kid, got, tt.want)
			}
		})
	}
}

// A key the library cannot read is skipped, not the set (RFC 7517 §5):
// an issuer that publishes a new kind of key beside its signing keys
// (here a post-quantum AKP key, an unknown curve, an RSA key without its
// modulus) keeps its tokens verifiable. A set of nothing but such keys
// has no signing key.
func TestUnreadableKeysSkipped(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(jose.JSONWebKey{Key: priv.Public(), KeyID: "k1", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	bad := []string{
		`{"kty":"AKP","alg":"ML-DSA-44","kid":"pq1","pub":"AAAA"}`,
		`{"kty":"EC","crv":"P-999","kid":"ec9","x":"AAAA","y":"AAAA"}`,
		`{"kty":"RSA","kid":"rsa-no-n","e":"AQAB"}`,
	}
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"bad keys beside a good one", `{"keys":[` + strings.Join(bad, ",") + `,` + string(good) + `]}`, true},
		{"nothing but bad keys", `{"keys":[` + strings.Join(bad, ",") + `]}`, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(tc.doc))
		}))
		s := New(srv.URL, Options{Client: srv.Client(), Now: time.Now})
		k, err := s.Key(context.Background(), "k1")
		srv.Close()
		if (err == nil) != tc.ok || (tc.ok && k.KeyID != "k1") {
			t.Errorf("%s: key %q, err %v; want found %v", tc.name, k.KeyID, err, tc.ok)
		}
	}
}
