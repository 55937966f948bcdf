package ratelimit

import (
	"hash/maphash"
	"net/http/httptest"
	"net/netip"
	"testing"

	"gatehouse/internal/phase"
)

// A sub or client_id is only unique within its issuer (OpenID Connect
// Core §2): "alice" at a partner issuer is not "alice" at the main one,
// and must not spend her bucket. The key, hashed for the memory store and
// as text for Redis, names the issuer with the user or client.
func TestUserKeysNameTheIssuer(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/", nil)
	ip := netip.MustParseAddr("192.0.2.1")
	for _, kind := range []string{"user", "client_id"} {
		f := &Filter{Policy: "p", Parts: ParseKey(kind), Seed: maphash.MakeSeed(), IPv6Prefix: 64}
		rc := func(issuer, id string) *phase.RequestCtx {
			c := &phase.RequestCtx{ClientIP: ip, Issuer: issuer}
			if kind == "user" {
				c.Subject = id
			} else {
				c.ClientID = id
			}
			return c
		}
		mainAlice, partnerAlice := rc("main", "alice"), rc("partner", "alice")
		if f.hash(mainAlice, r) == f.hash(partnerAlice, r) || f.text(mainAlice, r) == f.text(partnerAlice, r) {
			t.Errorf("%s: main's alice and partner's alice share a key (%q)", kind, f.text(mainAlice, r))
		}
		if f.hash(mainAlice, r) != f.hash(rc("main", "alice"), r) || f.text(mainAlice, r) != f.text(rc("main", "alice"), r) {
			t.Errorf("%s: one principal, two keys", kind)
		}
		// The separator keeps issuer and id apart: ("ma", "in…") is not ("main", "…").
		if f.hash(rc("ma", "inalice"), r) == f.hash(mainAlice, r) || f.text(rc("ma", "inalice"), r) == f.text(mainAlice, r) {
			t.Errorf("%s: issuer and id run together", kind)
		}
	}
}
