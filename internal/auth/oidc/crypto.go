package oidc

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// keys are derived from the configured cookie secret, one per purpose
// (HKDF-SHA256 with a distinct info string), so no key is used for two
// things.
type keys struct {
	mac   []byte      // session cookie MAC
	flow  cipher.AEAD // login-flow cookies
	store cipher.AEAD // session records at rest (memory or Redis)
	name  []byte      // flow cookie names
}

func deriveKeys(secret string) (*keys, error) {
	derive := func(info string) ([]byte, error) {
		return hkdf.Key(sha256.New, []byte(secret), []byte("gatehouse-login-v1"), info, 32)
	}
	aead := func(info string) (cipher.AEAD, error) {
		k, err := derive(info)
		if err != nil {
			return nil, err
		}
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	var k keys
	var err error
	if k.mac, err = derive("session-cookie-mac"); err != nil {
		return nil, err
	}
	if k.name, err = derive("flow-cookie-name"); err != nil {
		return nil, err
	}
	if k.flow, err = aead("flow-cookie"); err != nil {
		return nil, err
	}
	if k.store, err = aead("session-record"); err != nil {
		return nil, err
	}
	return &k, nil
}

var b64 = base64.RawURLEncoding

// errCookie is any cookie that does not decode and authenticate; callers
// treat it as no cookie at all.
var errCookie = errors.New("login: cookie does not authenticate")

// randomID returns n random bytes from the CSPRNG, base64url.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(b)
}

// sessionCookie is the cookie value for a session id: id.MAC(id). The id
// is 32 random bytes; the MAC lets Gatehouse drop forged cookies without a
// store lookup.
func (k *keys) sessionCookie(id string) string {
	return id + "." + b64.EncodeToString(k.macOf(id))
}

func (k *keys) macOf(id string) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write([]byte(id))
	return m.Sum(nil)
}

// sessionID checks a session cookie value and returns its id.
func (k *keys) sessionID(v string) (string, error) {
	id, tag, ok := strings.Cut(v, ".")
	if !ok || len(id) != 43 || len(tag) != 43 {
		return "", errCookie
	}
	got, err := b64.Strict().DecodeString(tag) // one encoding per MAC
	if err != nil || !hmac.Equal(got, k.macOf(id)) {
		return "", errCookie
	}
	return id, nil
}

// storeKey is where a session lives in the store: a hash of its id, so
// the store (and anyone reading a Redis dump) never holds a usable cookie.
func storeKey(id string) string {
	h := sha256.Sum256([]byte("session:" + id))
	return "s:" + b64.EncodeToString(h[:])
}

// seal encrypts plain with a, binding it to ad (a cookie name or store
// key), so a value moved elsewhere does not open.
func seal(a cipher.AEAD, plain []byte, ad string) string {
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	_, _ = rand.Read(nonce)
	return b64.EncodeToString(a.Seal(nonce, nonce, plain, []byte(ad)))
}

func open(a cipher.AEAD, sealed, ad string) ([]byte, error) {
	raw, err := b64.DecodeString(sealed)
	if err != nil || len(raw) < a.NonceSize()+a.Overhead() {
		return nil, errCookie
	}
	plain, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], []byte(ad))
	if err != nil {
		return nil, errCookie
	}
	return plain, nil
}

// flowSuffix names a login flow's cookie after its state, so each tab's
// login has its own cookie and the callback finds it by state alone.
func (k *keys) flowSuffix(state string) string {
	m := hmac.New(sha256.New, k.name)
	m.Write([]byte(state))
	return b64.EncodeToString(m.Sum(nil)[:9])
}
