// Package fakeidp is an in-process OAuth 2.1 issuer for tests: OpenID
// Connect discovery, a JWKS endpoint whose keys can rotate, and signed JWT
// access tokens. Unit and integration tests only; the end-to-end suite
// uses a real authorization server.
package fakeidp

import (
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crypto/rand"

	"github.com/go-jose/go-jose/v4"
)

// IdP is a fake issuer.
type IdP struct {
	*httptest.Server
	Issuer string

	mu      sync.Mutex // guards the following fields
	keys    []jose.JSONWebKey
	signers map[string]crypto.Signer
	current string
	down    bool

	JWKSFetches atomic.Int64
}

// New starts an issuer with one RSA key "k1".
func New(tb testing.TB) *IdP {
	tb.Helper()
	idp := &IdP{signers: map[string]crypto.Signer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if idp.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"issuer": idp.Issuer, "jwks_uri": idp.Issuer + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		idp.JWKSFetches.Add(1)
		if idp.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		idp.mu.Lock()
		defer idp.mu.Unlock()
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: idp.keys})
	})
	idp.Server = httptest.NewServer(mux)
	idp.Issuer = idp.URL
	tb.Cleanup(idp.Close)
	idp.Rotate(tb, "k1")
	return idp
}

func (idp *IdP) isDown() bool {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	return idp.down
}

// SetDown makes discovery and JWKS answer 503.
func (idp *IdP) SetDown(down bool) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.down = down
}

// Rotate adds an RSA key kid and signs new tokens with it.
func (idp *IdP) Rotate(tb testing.TB, kid string) {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.keys = append(idp.keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "RS256", Use: "sig"})
	idp.signers[kid] = k
	idp.current = kid
}

// Token signs claims (iss, iat, nbf and a 5-minute exp are added unless
// set) as an at+jwt with the current key.
func (idp *IdP) Token(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	now := time.Now()
	c := map[string]any{"iss": idp.Issuer, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	payload, _ := json.Marshal(c)
	idp.mu.Lock()
	kid, key := idp.current, idp.signers[idp.current]
	idp.mu.Unlock()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	if err != nil {
		tb.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	tok, _ := obj.CompactSerialize()
	return tok
}
