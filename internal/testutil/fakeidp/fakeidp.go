// Package fakeidp is an in-process OAuth 2.1 issuer for tests: OpenID
// Connect discovery, a JWKS endpoint whose keys can rotate, and signed JWT
// access tokens. Unit and integration tests only; the end-to-end suite
// uses a real authorization server.
package fakeidp

import (
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"fmt"
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

	opaque         map[string]map[string]any // token → claims; revoked tokens are removed
	introspectDown bool
	refusal        refusal // answered to every introspection with good credentials, when set
	JWKSFetches    atomic.Int64
	Introspections atomic.Int64
}

type refusal struct {
	status int
	body   string
}

// Introspection client credentials the fake accepts.
const (
	IntrospectClient = "gatehouse"
	IntrospectSecret = "gatehouse-secret"
)

// New starts an issuer with one RSA key "k1".
func New(tb testing.TB) *IdP {
	tb.Helper()
	idp := &IdP{signers: map[string]crypto.Signer{}, opaque: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if idp.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"issuer": idp.Issuer, "jwks_uri": idp.Issuer + "/jwks",
			"introspection_endpoint": idp.Issuer + "/introspect"})
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		idp.Introspections.Add(1)
		idp.mu.Lock()
		down := idp.introspectDown
		idp.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != IntrospectClient || p != IntrospectSecret {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		r.ParseForm()
		idp.mu.Lock()
		c, ok := idp.opaque[r.PostForm.Get("token")]
		ref := idp.refusal
		idp.mu.Unlock()
		if ref.status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ref.status)
			_, _ = w.Write([]byte(ref.body))
			return
		}
		out := map[string]any{"active": false}
		if ok {
			out = map[string]any{"active": true}
			for k, v := range c {
				out[k] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
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

// Retire removes the keys named kid from the JWKS (a key withdrawn after
// a compromise or a rotation). Tokens signed with it can still be made.
func (idp *IdP) Retire(kid string) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	kept := idp.keys[:0:0]
	for _, k := range idp.keys {
		if k.KeyID != kid {
			kept = append(kept, k)
		}
	}
	idp.keys = kept
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

// Opaque issues an opaque token with claims (iss and a 5-minute exp are
// added unless set), answered by the introspection endpoint.
func (idp *IdP) Opaque(claims map[string]any) string {
	b := make([]byte, 24)
	rand.Read(b)
	tok := fmt.Sprintf("op_%x", b)
	c := map[string]any{"iss": idp.Issuer, "exp": time.Now().Add(5 * time.Minute).Unix(), "token_type": "Bearer"}
	for k, v := range claims {
		c[k] = v
	}
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.opaque[tok] = c
	return tok
}

// Revoke makes an opaque token inactive.
func (idp *IdP) Revoke(tok string) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	delete(idp.opaque, tok)
}

// SetIntrospectionRefusal makes the introspection endpoint answer status
// and body to every request with good client credentials, as servers that
// refuse tokens they cannot parse do (400 invalid_request); status 0 ends
// it.
func (idp *IdP) SetIntrospectionRefusal(status int, body string) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.refusal = refusal{status: status, body: body}
}

// SetIntrospectionDown makes the introspection endpoint answer 503.
func (idp *IdP) SetIntrospectionDown(down bool) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.introspectDown = down
}
