package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/auth/jwks"
)

// issuer is an in-process token issuer with a JWKS endpoint.
type issuer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey // public
	signers map[string]crypto.Signer
	fetches atomic.Int64
	fail    atomic.Bool
}

const iss = "https://issuer.test"

func newIssuer(t testing.TB) *issuer {
	is := &issuer{signers: map[string]crypto.Signer{}}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		if is.fail.Load() {
			http.Error(w, "down", 500)
			return
		}
		is.mu.Lock()
		defer is.mu.Unlock()
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: is.keys})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) addRSA(t testing.TB, kid string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is.add(kid, k, k.Public(), "RS256")
}

func (is *issuer) addEC(t testing.TB, kid string) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	is.add(kid, k, k.Public(), "")
}

func (is *issuer) add(kid string, priv crypto.Signer, pub crypto.PublicKey, alg string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = append(is.keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
	is.signers[kid] = priv
}

// sign makes a compact JWS of payload with the key kid under alg, with
// extra header fields.
func (is *issuer) sign(t testing.TB, kid string, alg jose.SignatureAlgorithm, payload []byte, extra map[jose.HeaderKey]any) string {
	t.Helper()
	is.mu.Lock()
	priv := is.signers[kid]
	is.mu.Unlock()
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid)
	for k, v := range extra {
		opts = opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := obj.CompactSerialize()
	return tok
}

func claims(mod func(map[string]any)) []byte {
	now := time.Unix(1_800_000_000, 0)
	c := map[string]any{"iss": iss, "aud": []string{"api"}, "sub": "alice", "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "nbf": now.Unix(), "scope": "read write"}
	if mod != nil {
		mod(c)
	}
	b, _ := json.Marshal(c)
	return b
}

func verifier(is *issuer, now time.Time) *Verifier {
	set := jwks.New(is.srv.URL, jwks.Options{Client: is.srv.Client(), Cooldown: time.Minute, Now: func() time.Time { return now }})
	return &Verifier{Issuer: iss, Audience: "api", Type: "at+jwt", Leeway: 30 * time.Second, Keys: set, Now: func() time.Time { return now }}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestRFC8725Attacks: every class of forged or unacceptable token is
// rejected, for the right reason.
func TestRFC8725Attacks(t *testing.T) {
	is := newIssuer(t)
	is.addRSA(t, "rsa1")
	is.addEC(t, "ec1")
	now := time.Unix(1_800_000_000, 0)
	v := verifier(is, now)
	good := is.sign(t, "rsa1", jose.RS256, claims(nil), nil)
	parts := strings.Split(good, ".")

	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	attackerJWK := jose.JSONWebKey{Key: attacker.Public(), KeyID: "rsa1"}
	forgedWithJWK := func() string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: attacker},
			(&jose.SignerOptions{EmbedJWK: true}).WithType("at+jwt").WithHeader("kid", "rsa1"))
		obj, _ := s.Sign(claims(nil))
		tok, _ := obj.CompactSerialize()
		return tok
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(is.keys[0].Key)
	hmacConfusion := func() string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pubDER}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "rsa1"))
		obj, _ := s.Sign(claims(nil))
		tok, _ := obj.CompactSerialize()
		return tok
	}
	_ = attackerJWK

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", b64(`{"alg":"none","typ":"at+jwt","kid":"rsa1"}`) + "." + parts[1] + ".", ErrAlgorithm},
		{"alg none, no signature segment", b64(`{"alg":"none"}`) + "." + parts[1], ErrMalformed},
		{"HS256 with the public key as secret", hmacConfusion(), ErrAlgorithm},
		{"RSA key used for ES256 (key alg pinned)", b64(`{"alg":"ES256","typ":"at+jwt","kid":"rsa1"}`) + "." + parts[1] + "." + parts[2], ErrAlgorithm},
		{"EC key, RSA algorithm (wrong key type)", is.signAs(t, "ec1", "rsa1"), ErrSignature},
		{"tampered payload", parts[0] + "." + b64(string(claims(func(c map[string]any) { c["sub"] = "admin" }))) + "." + parts[2], ErrSignature},
		{"embedded jwk of the attacker's key", forgedWithJWK(), ErrSignature},
		{"jku pointing elsewhere is ignored", is.sign(t, "rsa1", jose.RS256, claims(nil), map[jose.HeaderKey]any{"jku": "https://evil.test/jwks"}), nil},
		{"wrong issuer", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["iss"] = "https://evil.test" }), nil), ErrIssuer},
		{"issuer with trailing slash", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["iss"] = iss + "/" }), nil), ErrIssuer},
		{"wrong audience", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["aud"] = "other" }), nil), ErrAudience},
		{"expired", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), nil), ErrExpired},
		{"no exp", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { delete(c, "exp") }), nil), ErrExpired},
		{"expired within leeway is fine", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() }), nil), nil},
		{"not yet valid", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }), nil), ErrNotYetValid},
		{"issued in the future", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() }), nil), ErrNotYetValid},
		// A NumericDate a check cannot read is never skipped: past 2262,
		// seconds times 1e9 overflowed int64 and wrapped to 1677.
		{"not valid before 2286", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["nbf"] = int64(1e10) }), nil), ErrNotYetValid},
		{"nbf out of range", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["nbf"] = 1e300 }), nil), ErrMalformed},
		{"nbf a string", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["nbf"] = "99999999999" }), nil), ErrMalformed},
		{"nbf null", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["nbf"] = nil }), nil), ErrMalformed},
		{"iat out of range", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["iat"] = 1e300 }), nil), ErrMalformed},
		{"iat a string", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["iat"] = "0" }), nil), ErrMalformed},
		{"exp out of range", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["exp"] = 1e300 }), nil), ErrExpired},
		{"valid until 2286", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["exp"] = int64(1e10) }), nil), nil},
		{"fractional dates", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) {
			c["iat"], c["nbf"], c["exp"] = float64(now.Unix())-0.5, float64(now.Unix())-0.25, float64(now.Add(time.Hour).Unix())+0.5
		}), nil), nil},
		{"wrong typ", is.signTyp(t, "rsa1", "JWT"), ErrType},
		{"oversized", is.sign(t, "rsa1", jose.RS256, claims(func(c map[string]any) { c["pad"] = strings.Repeat("x", 9000) }), nil), ErrTooLarge},
		{"duplicate claim", is.sign(t, "rsa1", jose.RS256, []byte(`{"iss":"`+iss+`","aud":"api","sub":"alice","sub":"admin","exp":1800000300}`), nil), ErrMalformed},
		{"payload not an object", is.sign(t, "rsa1", jose.RS256, []byte(`["iss"]`), nil), ErrMalformed},
		{"padding", good + "=", ErrMalformed},
		{"newline smuggled", parts[0] + ".\n" + parts[1] + "." + parts[2], ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], ErrMalformed},
		{"unknown kid", is.signUnknown(t), ErrUnknownKey},
		{"valid RS256", good, nil},
		{"valid ES256", is.sign(t, "ec1", jose.ES256, claims(nil), nil), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tt.token)
			if tt.want == nil {
				if err != nil || c["sub"] != "alice" {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// signAs signs with key priv but names kid in the header.
func (is *issuer) signAs(t *testing.T, priv, kid string) string {
	is.mu.Lock()
	k := is.signers[priv]
	is.mu.Unlock()
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	obj, _ := s.Sign(claims(nil))
	tok, _ := obj.CompactSerialize()
	// Relabel as RS256: the RSA key must not verify an EC signature.
	p := strings.Split(tok, ".")
	return b64(`{"alg":"RS256","kid":"`+kid+`","typ":"at+jwt"}`) + "." + p[1] + "." + p[2]
}

func (is *issuer) signTyp(t *testing.T, kid, typ string) string {
	is.mu.Lock()
	k := is.signers[kid]
	is.mu.Unlock()
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid))
	obj, _ := s.Sign(claims(nil))
	tok, _ := obj.CompactSerialize()
	return tok
}

func (is *issuer) signUnknown(t *testing.T) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "nobody"))
	obj, _ := s.Sign(claims(nil))
	tok, _ := obj.CompactSerialize()
	return tok
}

// movingKeySet is is's key set with a 30s cooldown on a clock the test
// moves, and a verifier on it whose own clock stands still.
func movingKeySet(is *issuer) (*jwks.Set, *Verifier, *atomic.Int64) {
	now := time.Unix(1_800_000_000, 0)
	clock := new(atomic.Int64)
	clock.Store(now.UnixNano())
	set := jwks.New(is.srv.URL, jwks.Options{Client: is.srv.Client(), Cooldown: 30 * time.Second,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	return set, &Verifier{Issuer: iss, Audience: "api", Keys: set, Now: func() time.Time { return now }}, clock
}

// An unknown-kid flood fetches the JWKS once per cooldown, however many
// tokens and goroutines; a new key is picked up after the cooldown without
// restarting; an issuer outage keeps known keys working.
func TestJWKSFloodRotationOutage(t *testing.T) {
	is := newIssuer(t)
	is.addRSA(t, "k1")
	set, v, clock := movingKeySet(is)
	if _, err := v.Verify(context.Background(), is.sign(t, "k1", jose.RS256, claims(nil), nil)); err != nil {
		t.Fatal(err)
	}
	unknown := is.signUnknown(t)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Go(func() {
			for j := 0; j < 20; j++ {
				v.Verify(context.Background(), unknown)
			}
		})
	}
	wg.Wait()
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for 1000 unknown-kid tokens within the cooldown, want 1", n)
	}
	// Rotation: a new key, used after the cooldown.
	is.addRSA(t, "k2")
	rotated := is.sign(t, "k2", jose.RS256, claims(nil), nil)
	if _, err := v.Verify(context.Background(), rotated); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("within the cooldown: %v", err)
	}
	clock.Add(int64(31 * time.Second))
	if _, err := v.Verify(context.Background(), rotated); err != nil {
		t.Fatalf("rotated key not picked up: %v", err)
	}
	// Outage: fetches fail, known keys keep working.
	is.fail.Store(true)
	clock.Add(int64(time.Hour))
	set.Refresh(context.Background())
	if _, err := v.Verify(context.Background(), is.sign(t, "k1", jose.RS256, claims(nil), nil)); err != nil {
		t.Fatalf("known key lost in an outage: %v", err)
	}
}

// An issuer down at the first fetch (started after Gatehouse) is picked
// up about a second after it is back, not a whole cooldown later; while
// it is down, a flood of tokens costs one fetch per second.
func TestJWKSRecoversSoonAfterAFailedFirstFetch(t *testing.T) {
	is := newIssuer(t)
	is.addRSA(t, "k1")
	_, v, clock := movingKeySet(is)
	tok := is.sign(t, "k1", jose.RS256, claims(nil), nil)
	is.fail.Store(true)
	for range 100 {
		// Keys unavailable (503), not an unknown key (401): the token
		// may be fine.
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrKeysUnusable) {
			t.Fatalf("with the issuer down: %v, want ErrKeysUnusable", err)
		}
	}
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches within a second of a failure, want 1", n)
	}
	is.fail.Store(false)
	clock.Add(int64(jwks.RetryAfterFailure + time.Millisecond))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("a second after the issuer came back: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	is := newIssuer(b)
	is.addRSA(b, "rsa1")
	is.addEC(b, "ec1")
	now := time.Unix(1_800_000_000, 0)
	v := verifier(is, now)
	for _, alg := range []struct {
		name string
		kid  string
		a    jose.SignatureAlgorithm
	}{{"RS256", "rsa1", jose.RS256}, {"ES256", "ec1", jose.ES256}} {
		tok := is.sign(b, alg.kid, alg.a, claims(nil), nil)
		b.Run(alg.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
