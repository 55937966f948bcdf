// Package assert signs identity assertions: short-lived JWTs in which
// Gatehouse states, to the apps behind it, who a verified request is from.
// An app that checks the signature against Gatehouse's JWKS (served on the
// admin listener) need not trust a plain header, nor the network between
// Gatehouse and itself.
//
// A principal's assertion is signed once and reused until half its
// lifetime has passed, so the cost is one signature per token per TTL/2,
// not one per request.
package assert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/auth/rbac"
)

// Key is Gatehouse's assertion signing key and its published JWKS.
type Key struct {
	signer jose.Signer
	jwks   []byte
	kid    string
}

// NewEphemeralKey makes a fresh ES256 key, valid for this process only.
func NewEphemeralKey() (*Key, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return newKey(k)
}

// LoadKey reads a PEM private key: PKCS #8 (EC P-256 or Ed25519) or SEC 1
// (EC P-256). Instances that share a key file publish the same JWKS.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("assert: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("assert: %s: no PEM block", path)
	}
	var k any
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("assert: %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("assert: %s: not a signing key", path)
	}
	return newKey(s)
}

func newKey(k crypto.Signer) (*Key, error) {
	var alg jose.SignatureAlgorithm
	switch pk := k.(type) {
	case *ecdsa.PrivateKey:
		if pk.Curve != elliptic.P256() {
			return nil, errors.New("assert: EC keys must be P-256 (ES256)")
		}
		alg = jose.ES256
	case ed25519.PrivateKey:
		alg = jose.EdDSA
	default:
		return nil, fmt.Errorf("assert: %T keys are not supported (EC P-256 or Ed25519)", k)
	}
	pub := jose.JSONWebKey{Key: k.Public(), Algorithm: string(alg), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: k, KeyID: pub.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	jwks, err := json.MarshalIndent(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}, "", "  ")
	if err != nil {
		return nil, err
	}
	return &Key{signer: signer, jwks: append(jwks, '\n'), kid: pub.KeyID}, nil
}

// JWKS is the public key set apps verify assertions with.
func (k *Key) JWKS() []byte { return k.jwks }

// Asserter makes the assertion of a principal.
type Asserter struct {
	Key      *Key
	Header   string // canonical header name
	Issuer   string // iss
	Audience string // aud; "" none
	TTL      time.Duration
}

// For returns p's assertion, reusing the one signed before while it has
// more than half its lifetime left.
func (a *Asserter) For(p *rbac.Principal, now time.Time) (string, error) {
	if c := p.Assertion.Load(); c != nil && now.Before(c.Renew) {
		return c.Token, nil
	}
	claims := map[string]any{
		"iss": a.Issuer, "sub": p.Subject, "iat": now.Unix(), "exp": now.Add(a.TTL).Unix(),
		"jti": jti(), "idp": p.Issuer,
	}
	if a.Audience != "" {
		claims["aud"] = a.Audience
	}
	if len(p.Roles) > 0 {
		claims["roles"] = p.Roles
	}
	if len(p.Scopes) > 0 {
		claims["scope"] = strings.Join(p.Scopes, " ")
	}
	if p.ClientID != "" {
		claims["client_id"] = p.ClientID
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := a.Key.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("assert: sign: %w", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", err
	}
	p.Assertion.Store(&rbac.SignedAssertion{Token: tok, Renew: now.Add(a.TTL / 2)})
	return tok, nil
}

func jti() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
