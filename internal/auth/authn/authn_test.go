package authn

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/auth/rbac"
)

func TestCacheTTLBoundAndKeying(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	c := NewCache(3, time.Minute)
	p := &rbac.Principal{Subject: "alice"}
	c.Put("tok-a", p, now.Add(10*time.Second), now)
	if got, _, ok := c.Get("tok-a", now.Add(9*time.Second)); !ok || got != p {
		t.Fatal("miss before expiry")
	}
	if _, _, ok := c.Get("tok-a", now.Add(10*time.Second)); ok {
		t.Fatal("hit at the token's expiry")
	}
	c.Put("tok-b", p, now.Add(time.Hour), now) // capped by MaxTTL
	if _, _, ok := c.Get("tok-b", now.Add(61*time.Second)); ok {
		t.Fatal("hit past MaxTTL")
	}
	for i := 0; i < 10; i++ {
		c.Put(fmt.Sprintf("tok-%d", i), p, now.Add(time.Minute), now)
	}
	if c.Len() > 3 {
		t.Fatalf("%d entries in a cache of 3", c.Len())
	}
	// The token itself is never a key: only its hash.
	for k := range c.m {
		if strings.Contains(fmt.Sprint(k), "tok-") {
			t.Fatal("token stored in the cache")
		}
	}
}

func TestPolicyDecide(t *testing.T) {
	t.Parallel()
	p := rbac.Extract("main", map[string]any{"sub": "alice", "azp": "portal",
		"realm_access": map[string]any{"roles": []any{"admin", "ops"}}, "scope": "read write", "tenant": "kline",
		"groups": []any{"a", "b"}}, "realm_access.roles", "scope")
	if p.ClientID != "portal" || !reflect.DeepEqual(p.Roles, []string{"admin", "ops"}) || !reflect.DeepEqual(p.Scopes, []string{"read", "write"}) {
		t.Fatalf("principal %+v", p)
	}
	tests := []struct {
		name   string
		pol    rbac.Policy
		ok     bool
		reason string
	}{
		{"nothing required", rbac.Policy{}, true, ""},
		{"any of, one held", rbac.Policy{AnyRoles: []string{"viewer", "ops"}}, true, ""},
		{"any of, none held", rbac.Policy{AnyRoles: []string{"viewer", "root"}}, false, "missing role viewer or root"},
		{"all of, one missing", rbac.Policy{AllRoles: []string{"admin", "root"}}, false, "missing role root"},
		{"scope held", rbac.Policy{Scopes: []string{"write"}}, true, ""},
		{"scope missing", rbac.Policy{Scopes: []string{"delete"}}, false, "missing scope delete"},
		{"claim equal", rbac.Policy{Claims: map[string]string{"tenant": "kline"}}, true, ""},
		{"claim differs", rbac.Policy{Claims: map[string]string{"tenant": "flow"}}, false, `claim tenant is not "flow"`},
		{"claim in array", rbac.Policy{Claims: map[string]string{"groups": "b"}}, true, ""},
		{"claim absent", rbac.Policy{Claims: map[string]string{"org.id": "1"}}, false, `claim org.id is not "1"`},
	}
	for _, tt := range tests {
		ok, reason := tt.pol.Decide(p)
		if ok != tt.ok || reason != tt.reason {
			t.Errorf("%s: %v %q, want %v %q", tt.name, ok, reason, tt.ok, tt.reason)
		}
	}
}
