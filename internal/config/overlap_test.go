package config

import (
	"os"
	"strings"
	"testing"
)

// TestAuthOverlapsAccepted: configs where every upstream path goes under
// one auth policy pass the check (testdata/errors/auth-overlap.yaml has
// those where one does not): routes that send the path they matched
// (the router gives each path to one of them), routes with the same
// policy written in another order, routes to other upstreams, and a gap
// closed by a more specific route with the stronger policy.
func TestAuthOverlapsAccepted(t *testing.T) {
	t.Parallel()
	shipped, err := os.ReadFile("../../gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const issuers = "\nauth:\n  issuers:\n    main: { issuer: https://auth.example.com, audience: gw }\n"
	protectAdmin := func(s string) string {
		return strings.Replace(s, "    match: { path_prefix: /admin }\n    upstream: admin-portal\n",
			"    match: { path_prefix: /admin }\n    upstream: admin-portal\n    auth: { roles: { any_of: [admin, ops] } }\n", 1)
	}
	cases := map[string]string{
		"the shipped config": string(shipped),
		// /api/admin, admin-portal's /admin/api, gets the admin route's
		// policy (its roles in another order) from a route of its own.
		"login on /admin, its API closed by a route": strings.Replace(protectAdmin(string(shipped)), "  - name: api\n",
			"  - name: admin-api\n    match: { path_prefix: /api/admin }\n    upstream: admin-portal\n    rewrite: /admin/api\n"+
				"    auth: { roles: { any_of: [ops, admin] } }\n  - name: api\n", 1) + issuers,
		"one auth on every route": strings.ReplaceAll(string(shipped), "  - name: ", "  - auth: { mode: required }\n    name: ") + issuers,
		"routes that send what they matched": issuers + `
upstreams: { app: { targets: ["127.0.0.1:3002"] } }
routes:
  - { name: public, match: { path_prefix: / }, upstream: app }
  - { name: admin, match: { path_prefix: /admin }, upstream: app, auth: { mode: required } }
  - { name: reports, match: { path_prefix: /reports, methods: [GET] }, upstream: app, auth: { mode: required } }
  - { name: api, match: { path_prefix: /api }, api: { services: { app: app } }, auth: { mode: required } }
`,
		"other upstreams, apart paths": issuers + `
upstreams:
  a: { targets: ["127.0.0.1:3002"] }
  b: { targets: ["127.0.0.1:3003"] }
routes:
  - { name: a, match: { path_prefix: /a }, upstream: a }
  - { name: b, match: { path_prefix: /b }, upstream: b, strip_prefix: true, auth: { mode: required } }
  - { name: a-admin, match: { path_prefix: /a-admin }, upstream: a, rewrite: /admin, auth: { mode: required } }
  - { name: a-docs, match: { path_prefix: /docs }, upstream: a, rewrite: /docs-v2 }
`,
	}
	for name, src := range cases {
		if _, err := Parse("ok.yaml", []byte(src), "../.."); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
