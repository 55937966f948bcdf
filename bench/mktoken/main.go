// Command mktoken makes what the bench harness needs to measure Gatehouse
// with auth on: an RSA key, its JWK Set written to DIR/jwks.json, and a
// day-long RS256 access token for ISSUER and audience "bench", printed on
// stdout. Not part of Gatehouse.
//
//	mktoken -dir /tmp/x -issuer http://127.0.0.1:8080
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func main() {
	dir := flag.String("dir", ".", "where to write jwks.json")
	issuer := flag.String("issuer", "", "the token's iss")
	flag.Parse()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "bench", Algorithm: "RS256", Use: "sig"}}}
	b, _ := json.Marshal(set)
	if err := os.WriteFile(filepath.Join(*dir, "jwks.json"), b, 0o644); err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iss": *issuer, "aud": "bench", "sub": "bench-user", "roles": []string{"admin"},
		"scope": "bench", "iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix()})
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "bench"))
	if err != nil {
		log.Fatal(err)
	}
	obj, err := s.Sign(claims)
	if err != nil {
		log.Fatal(err)
	}
	tok, _ := obj.CompactSerialize()
	fmt.Println(tok)
}
