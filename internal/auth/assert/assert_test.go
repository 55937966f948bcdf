package assert

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/auth/rbac"
)

// verify checks tok against jwks as an app would and returns its claims.
func verify(t *testing.T, jwks []byte, tok string) map[string]any {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: %v %s", err, jwks)
	}
	if set.Keys[0].IsPublic() != true {
		t.Fatal("the JWKS holds a private key")
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	if kid := jws.Signatures[0].Header.KeyID; kid != set.Keys[0].KeyID {
		t.Fatalf("kid %q, JWKS has %q", kid, set.Keys[0].KeyID)
	}
	payload, err := jws.Verify(set.Keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	json.Unmarshal(payload, &c)
	return c
}

func TestAssertionSignedCachedRenewed(t *testing.T) {
	t.Parallel()
	k, err := NewEphemeralKey()
	if err != nil {
		t.Fatal(err)
	}
	a := &Asserter{Key: k, Header: "X-Auth-Assertion", Issuer: "gatehouse", Audience: "apps", TTL: time.Minute}
	p := &rbac.Principal{Issuer: "main", Subject: "alice", ClientID: "portal", Roles: []string{"admin"}, Scopes: []string{"a", "b"}}
	t0 := time.Unix(1_800_000_000, 0)
	tok, err := a.For(p, t0)
	if err != nil {
		t.Fatal(err)
	}
	c := verify(t, k.JWKS(), tok)
	for k, want := range map[string]any{"iss": "gatehouse", "aud": "apps", "sub": "alice", "client_id": "portal", "scope": "a b",
		"idp": "main", "iat": float64(t0.Unix()), "exp": float64(t0.Add(time.Minute).Unix())} {
		if c[k] != want {
			t.Errorf("claim %s = %v, want %v", k, c[k], want)
		}
	}
	if again, _ := a.For(p, t0.Add(29*time.Second)); again != tok {
		t.Error("re-signed within half the lifetime")
	}
	if later, _ := a.For(p, t0.Add(31*time.Second)); later == tok {
		t.Error("not re-signed after half the lifetime")
	}
}

func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
	return path
}

func TestLoadKey(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecSEC1, _ := x509.MarshalECPrivateKey(ec)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edPKCS8, _ := x509.MarshalPKCS8PrivateKey(ed)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rk)
	for _, tc := range []struct {
		name, typ string
		der       []byte
		ok        bool
	}{
		{"EC PKCS8", "PRIVATE KEY", ecPKCS8, true},
		{"EC SEC1", "EC PRIVATE KEY", ecSEC1, true},
		{"Ed25519", "PRIVATE KEY", edPKCS8, true},
		{"P-384 refused", "PRIVATE KEY", p384DER, false},
		{"RSA refused", "PRIVATE KEY", rsaDER, false},
		{"garbage", "PRIVATE KEY", []byte("nope"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadKey(writePEM(t, tc.typ, tc.der))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				return
			}
			a := &Asserter{Key: k, Issuer: "gatehouse", TTL: time.Minute}
			tok, err := a.For(&rbac.Principal{Subject: "s"}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if c := verify(t, k.JWKS(), tok); c["sub"] != "s" {
				t.Fatalf("claims %v", c)
			}
		})
	}
	if _, err := LoadKey(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("a missing file loaded")
	}
}
