// Package jwt verifies JWT access tokens (RFC 9068) by the rules of
// RFC 8725 (JWT best current practices):
//
//   - the token is at most MaxBytes long, has exactly three segments of
//     strict base64url (no padding, no stray characters), and its header
//     and payload are JSON objects without duplicate members;
//   - the algorithm is on the allow-list (RS256, PS256, ES256, EdDSA by
//     default; never "none" and never HMAC, so a public key can never be
//     used as an HMAC secret), and matches the key's own "alg" if it has
//     one, and the key's type;
//   - the key comes only from the issuer's JWK Set: header parameters that
//     name a key (jku, x5u, jwk, x5c) are ignored, never fetched or trusted;
//   - "typ" is checked when configured (at+jwt); iss must equal the
//     issuer exactly; aud must contain the audience; exp, nbf and iat are
//     checked with a small leeway.
package jwt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/auth/jwks"
)

// Errors, each a reason for the log and metrics. Clients only ever see
// "invalid_token".
var (
	ErrMalformed    = errors.New("malformed token")
	ErrTooLarge     = errors.New("token too large")
	ErrAlgorithm    = errors.New("algorithm not allowed")
	ErrType         = errors.New("wrong token type")
	ErrUnknownKey   = errors.New("unknown signing key")
	ErrSignature    = errors.New("bad signature")
	ErrIssuer       = errors.New("wrong issuer")
	ErrAudience     = errors.New("wrong audience")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token not yet valid")
	ErrKeysUnusable = errors.New("issuer keys unavailable")
)

// Keys finds verification keys by kid.
type Keys interface {
	Key(ctx context.Context, kid string) (jose.JSONWebKey, error)
}

// Verifier checks tokens of one issuer.
type Verifier struct {
	Issuer     string
	Audience   string   // required member of aud; empty: aud not checked
	Algorithms []string // allowed; default RS256, PS256, ES256, EdDSA
	Type       string   // required typ (case-insensitive, "application/" optional); empty: any
	Leeway     time.Duration
	MaxBytes   int // default 8 KiB
	Keys       Keys
	Now        func() time.Time
}

// DefaultAlgorithms are the asymmetric algorithms allowed by default.
var DefaultAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// Claims are a verified token's claims.
type Claims map[string]any

// Verify checks token and returns its claims, or an error wrapping one of
// the errors above.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	c, _, err := v.VerifyKey(ctx, token)
	return c, err
}

// Signer is the key that verified a token: the token's kid, and the public
// key that kid named in the issuer's set.
type Signer struct {
	KID string
	Key any
}

// VerifyKey is Verify that also says which key verified the token, so
// that a caller that remembers the token can forget it once the key
// leaves the issuer's set.
func (v *Verifier) VerifyKey(ctx context.Context, token string) (Claims, Signer, error) {
	var s Signer
	claims, err := v.verify(ctx, token, &s)
	if err != nil {
		return nil, Signer{}, err
	}
	return claims, s, nil
}

// verify is Verify; it sets *signer once the key is found.
func (v *Verifier) verify(ctx context.Context, token string, signer *Signer) (Claims, error) {
	max := v.MaxBytes
	if max == 0 {
		max = 8 << 10
	}
	if len(token) > max {
		return nil, ErrTooLarge
	}
	// base64's decoders skip CR and LF even in strict mode; a token has
	// none, so one that does is not a token.
	if strings.ContainsAny(token, "\r\n \t") {
		return nil, fmt.Errorf("%w: whitespace", ErrMalformed)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: %d segments", ErrMalformed, len(parts))
	}
	var header map[string]any
	for i, p := range parts {
		raw, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil || (i < 2 && len(raw) == 0) {
			return nil, fmt.Errorf("%w: segment %d is not base64url", ErrMalformed, i)
		}
		if i < 2 {
			if err := StrictObject(raw); err != nil {
				return nil, fmt.Errorf("%w: segment %d: %v", ErrMalformed, i, err)
			}
		}
		if i == 0 {
			_ = json.Unmarshal(raw, &header)
		}
	}
	algs := v.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	alg, _ := header["alg"].(string)
	if !contains(algs, alg) {
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, alg)
	}
	if v.Type != "" {
		typ, _ := header["typ"].(string)
		if !sameType(typ, v.Type) {
			return nil, fmt.Errorf("%w: %q", ErrType, typ)
		}
	}
	sigAlgs := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		sigAlgs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSignedCompact(token, sigAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	kid := jws.Signatures[0].Header.KeyID
	key, err := v.Keys.Key(ctx, kid)
	if err != nil {
		if errors.Is(err, jwks.ErrUnknownKey) {
			return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
		}
		return nil, fmt.Errorf("%w: %v", ErrKeysUnusable, err)
	}
	if key.Algorithm != "" && key.Algorithm != alg {
		return nil, fmt.Errorf("%w: key %q is for %s, token says %s", ErrAlgorithm, kid, key.Algorithm, alg)
	}
	// Verify with the key from the set only: any key named in the header
	// (jwk, jku, x5c, x5u) plays no part.
	*signer = Signer{KID: kid, Key: key.Key}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	var claims Claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if err := v.checkClaims(claims); err != nil {
		return nil, err
	}
	return claims, nil
}

func (v *Verifier) checkClaims(c Claims) error {
	if iss, _ := c["iss"].(string); iss != v.Issuer {
		return fmt.Errorf("%w: %q", ErrIssuer, iss)
	}
	if v.Audience != "" && !c.HasAudience(v.Audience) {
		return ErrAudience
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if _, ok := c.time("exp"); !ok {
		return fmt.Errorf("%w: no exp", ErrExpired)
	}
	return c.CheckTimes(now, v.Leeway)
}

// CheckTimes checks the token's exp, nbf and iat, those it has, against
// now with leeway: expired (ErrExpired), not yet valid or issued in the
// future (ErrNotYetValid). A present one that is not a NumericDate (RFC
// 7519 §2: a JSON number of seconds), or lies beyond ±10^15 s, makes
// the token malformed: a claim a check cannot read is never skipped.
func (c Claims) CheckTimes(now time.Time, leeway time.Duration) error {
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		t, present, valid := c.numericDate(name)
		switch {
		case !present:
		case !valid:
			return fmt.Errorf("%w: %s is not a NumericDate", ErrMalformed, name)
		case name == "exp" && !now.Before(t.Add(leeway)):
			return ErrExpired
		case name == "nbf" && now.Add(leeway).Before(t):
			return ErrNotYetValid
		case name == "iat" && now.Add(leeway).Before(t):
			return fmt.Errorf("%w: issued in the future", ErrNotYetValid)
		}
	}
	return nil
}

// HasAudience reports whether aud is want or an array containing it.
func (c Claims) HasAudience(want string) bool {
	switch aud := c["aud"].(type) {
	case string:
		return aud == want
	case []any:
		for _, a := range aud {
			if s, _ := a.(string); s == want {
				return true
			}
		}
	}
	return false
}

func (c Claims) time(name string) (time.Time, bool) {
	t, _, valid := c.numericDate(name)
	return t, valid
}

// maxNumericDate bounds a NumericDate, in seconds either side of 1970
// (about 31 million years): far past any real one, and far inside what
// time.Time and the nanosecond arithmetic below can hold.
const maxNumericDate = 1e15

// numericDate reads claim name as a NumericDate: whether it is present,
// and whether it is a number within ±maxNumericDate seconds.
func (c Claims) numericDate(name string) (t time.Time, present, valid bool) {
	v, present := c[name]
	if !present {
		return time.Time{}, false, false
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, true, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.Abs(f) > maxNumericDate {
		return time.Time{}, true, false
	}
	sec := math.Floor(f)
	return time.Unix(int64(sec), int64((f-sec)*1e9)), true, true
}

// Expiry returns the token's exp, and whether it has one.
func (c Claims) Expiry() (time.Time, bool) { return c.time("exp") }

func sameType(got, want string) bool {
	norm := func(s string) string { return strings.TrimPrefix(strings.ToLower(s), "application/") }
	return norm(got) == norm(want)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// StrictObject checks that raw is one JSON object whose objects, at every
// depth, have no duplicate member names (RFC 8725 §3.2: a verifier and an
// upstream that resolve duplicates differently see different claims).
func StrictObject(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	if err := walkObject(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the object")
	}
	return nil
}

func walkObject(dec *json.Decoder, depth int) error {
	if depth > 32 {
		return errors.New("nested too deep")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		if seen[name] {
			return fmt.Errorf("duplicate member %q", name)
		}
		seen[name] = true
		if err := walkValue(dec, depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

func walkValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return walkObject(dec, depth+1)
	case '[':
		for dec.More() {
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil
}
