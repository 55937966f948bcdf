package compile

import (
	"fmt"
	"testing"

	"gatehouse/internal/config"
	"gatehouse/internal/runtime"
	"gatehouse/internal/testutil"
)

func TestCompileTLSFront(t *testing.T) {
	ca := testutil.NewCA(t)
	dir := t.TempDir()
	c, k := ca.Issue(t, dir, "gw", 1, "gw.test")
	for _, tc := range []struct {
		name, tls, hsts, port string
		redirect              bool
	}{
		{"defaults", "", "max-age=31536000", "", true},
		{"all HSTS options", "hsts: { max_age: 17520h, include_subdomains: true, preload: true }", "max-age=63072000; includeSubDomains; preload", "", true},
		// RFC 6797 §6.1.1: max-age=0 withdraws HSTS; it is not the default.
		{"HSTS withdrawn", "hsts: { max_age: 0 }", "max-age=0", "", true},
		{"HSTS withdrawn, subdomains too", "hsts: { max_age: 0s, include_subdomains: true }", "max-age=0; includeSubDomains", "", true},
		{"HSTS off, no redirect, other port", `hsts: { enabled: false }, redirect_http: false, listen: ["127.0.0.1:8443"]`, "", "8443", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := fmt.Sprintf(`
server:
  listen: ["127.0.0.1:8080"]
  tls: { certificates: [{ cert: %q, key: %q }], %s }
routes: [{ name: r, match: { path_prefix: / }, respond: { status: 204 } }]
`, c, k, tc.tls)
			doc, err := config.Parse("t.yaml", []byte(yaml), dir)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := Compile(doc, runtime.NewRegistry(nil, nil), 1)
			if err != nil {
				t.Fatal(err)
			}
			f := snap.TLS
			hsts := ""
			if len(f.HSTS) > 0 {
				hsts = f.HSTS[0]
			}
			if hsts != tc.hsts || f.HTTPSPort != tc.port || f.Redirect != tc.redirect || !f.Covers("gw.test") {
				t.Fatalf("front: HSTS %q port %q redirect %v", hsts, f.HTTPSPort, f.Redirect)
			}
		})
	}
}
