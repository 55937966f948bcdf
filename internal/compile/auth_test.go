package compile

import (
	"fmt"
	"testing"
	"time"

	"gatehouse/internal/auth/authn"
	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/auth/rbac"
	"gatehouse/internal/config"
	"gatehouse/internal/runtime"
)

// Issue 14: the auth cache's TTL was fixed at 5 minutes whatever the
// config, and cache_size 0 could not turn it off.
func TestCompileAuthCache(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		auth     string
		wantTTL  time.Duration
		wantKept bool // a Put token is found again
	}{
		{name: "defaults", wantTTL: config.DefaultAuthCacheTTL, wantKept: true},
		{name: "ttl", auth: "cache_ttl: 20s", wantTTL: 20 * time.Second, wantKept: true},
		{name: "off", auth: "cache_size: 0", wantTTL: config.DefaultAuthCacheTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`
auth:
  issuers: { main: { issuer: "http://127.0.0.1:9", audience: gw } }
  %s
routes: [{ name: r, respond: { status: 204 }, auth: { mode: required } }]
`, tt.auth)), ".")
			if err != nil {
				t.Fatal(err)
			}
			snap, err := Compile(doc, runtime.NewRegistry(nil, nil), 1)
			if err != nil {
				t.Fatal(err)
			}
			var f *authn.Filter
			for _, x := range snap.Routes[0].Filters {
				if a, ok := x.(*authn.Filter); ok {
					f = a
				}
			}
			if f == nil {
				t.Fatal("no auth filter on the route")
			}
			if f.Cache.MaxTTL != tt.wantTTL {
				t.Errorf("cache TTL %s, want %s", f.Cache.MaxTTL, tt.wantTTL)
			}
			now := time.Unix(1_800_000_000, 0)
			f.Cache.Put("tok", &rbac.Principal{Subject: "alice"}, now.Add(time.Hour), now)
			if _, _, kept := f.Cache.Get("tok", now); kept != tt.wantKept {
				t.Errorf("token cached: %v, want %v", kept, tt.wantKept)
			}
		})
	}
}

// A reload that changes an issuer's key_cooldown makes a new key set in
// the registry; the new one is given the old one to inherit from (see
// issuer.TestNewKeySetInheritsWhatTheOldOneFetched for what it takes).
func TestReloadedKeySetInheritsFromTheOld(t *testing.T) {
	t.Parallel()
	reg := runtime.NewRegistry(nil, nil)
	compileWith := func(extra string) *runtime.Snapshot {
		t.Helper()
		doc, err := config.Parse("t.yaml", []byte(fmt.Sprintf(`
auth:
  issuers: { main: { issuer: "http://127.0.0.1:9", audience: gw %s } }
routes: [{ name: r, respond: { status: 204 }, auth: { mode: required } }]
`, extra)), ".")
		if err != nil {
			t.Fatal(err)
		}
		snap, err := Compile(doc, reg, 1)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	keysOf := func(s *runtime.Snapshot) *issuer.Keys { return s.Issuers[0].Keys.(*issuer.Keys) }
	first := keysOf(compileWith(""))
	same := keysOf(compileWith(""))
	changed := keysOf(compileWith(", key_cooldown: 20s"))
	if same != first {
		t.Fatal("an unchanged issuer got a new key set")
	}
	if changed == first || changed.Inherit != first {
		t.Fatalf("a changed key_cooldown: new set %v, inherits from the old %v", changed != first, changed.Inherit == first)
	}
}
