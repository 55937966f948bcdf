package proxy

import (
	"fmt"
	"strings"
	"testing"
)

// TestRequestTargetPolicy sends request targets an attacker would write
// by hand (issue 14) to both HTTP/1.1 servers the engine runs behind:
// what cannot be routed safely is 400, and never reaches the upstream.
func TestRequestTargetPolicy(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	cfg := fmt.Sprintf(`
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
  - { name: admin, match: { path_prefix: /admin }, upstream: app }
  - { name: static, match: { path_prefix: /static }, upstream: app }
  - { name: java, match: { path_prefix: /java }, upstream: app, allow_path_params: true }
`, hostport(up.Server))
	tests := []struct {
		name, target string
		want         int
		wantURI      string // what the upstream saw; default target
	}{
		{name: "plain", target: "/admin/x", want: 200},
		{name: "fragment", target: "/admin#x", want: 400},
		{name: "fragment in query", target: "/admin?a=1#x", want: 400},
		{name: "encoded hash passes", target: "/a%23b", want: 200},
		{name: "utf8", target: "/caf%C3%A9", want: 200},
		{name: "truncated utf8", target: "/caf%C3", want: 400},
		{name: "latin1", target: "/caf%E9", want: 400},
		{name: "overlong slash", target: "/a%C0%AFb", want: 400},
		{name: "encoded nul", target: "/a%00b", want: 400},
		{name: "encoded delete", target: "/a%7Fb", want: 400},
		{name: "encoded newline", target: "/a%0Ab", want: 400},
		{name: "raw delete", target: "/a\x7fb", want: 400},
		{name: "dot-dot parameters", target: "/static/..;/admin/x", want: 400},
		{name: "parameters hide a prefix", target: "/admin;x/secret", want: 400},
		{name: "encoded parameters", target: "/admin%3Bx/secret", want: 400},
		{name: "parameters on a route without opt-in", target: "/static/a;v=1", want: 400},
		{name: "parameters on an opted-in route", target: "/java;jsessionid=1/page", want: 200},
		{name: "parameters after an opted-in prefix", target: "/java/;jsessionid=1", want: 200},
		{name: "dot-dot parameters on an opted-in route", target: "/java/..;/admin", want: 400},
		{name: "opted-in prefix only with parameters", target: "/javax;y/secret", want: 400},
	}
	for _, srv := range []struct {
		name string
		gate func(*testing.T, string) *gate
	}{{"net/http", newGate}, {"h1server", newH1Gate}} {
		t.Run(srv.name, func(t *testing.T) {
			g := srv.gate(t, cfg)
			addr := g.srv.Listener.Addr().String()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := up.count()
					v := rawExchange(t, addr, "GET "+tt.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
					if !strings.HasPrefix(v.Status, fmt.Sprint(tt.want)) {
						t.Fatalf("GET %q: %q %s, want %d", tt.target, v.Status, v.Err, tt.want)
					}
					if tt.want != 200 {
						if up.count() != before {
							t.Fatalf("GET %q: refused request reached the upstream", tt.target)
						}
						return
					}
					want := tt.wantURI
					if want == "" {
						want = tt.target
					}
					if got := up.last(t).URI; got != want {
						t.Errorf("GET %q: upstream saw %q, want %q", tt.target, got, want)
					}
				})
			}
		})
	}
}
