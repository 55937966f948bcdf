package proxy

import (
	"fmt"
	"strings"
	"testing"

	"gatehouse/internal/compile"
	"gatehouse/internal/config"
	"gatehouse/internal/runtime"
)

// TestUpstreamPathModel holds config.UpstreamPath, the model of what a
// route sends its upstream that config's auth-overlap check reasons with,
// to what the engine sends (upstreamPath, apiTarget): for kept, stripped
// and rewritten prefixes and exact paths (their slash twins included),
// and api templates, over the requests each route matches.
func TestUpstreamPathModel(t *testing.T) {
	t.Parallel()
	var lines []string
	for _, m := range []string{"path_prefix: /p%d", "path_prefix: /p%d/", "path: /e%d", "path: /e%d/"} {
		for _, act := range []string{"upstream: a", "upstream: a, strip_prefix: true", "upstream: b, rewrite: /new", "upstream: b, rewrite: /new/", "upstream: a, rewrite: /"} {
			lines = append(lines, fmt.Sprintf("  - { name: r%d, match: { %s }, %s }", len(lines), fmt.Sprintf(m, len(lines)), act))
		}
	}
	for _, tmpl := range []string{"{prefix}/{service}{rest}", "/{service}/api{rest}", "/{service}", "{prefix}{rest}", "/{service}{rest}/", "/v1/{service}{rest}/x"} {
		lines = append(lines, fmt.Sprintf("  - { name: r%d, match: { path_prefix: /api%d }, api: { rewrite: %q, services: { s: a, admin: b } } }", len(lines), len(lines), tmpl))
	}
	lines = append(lines, fmt.Sprintf("  - { name: r%d, match: { path_prefix: / }, upstream: a, rewrite: /root }", len(lines)))
	doc, err := config.Parse("m.yaml", []byte(`
upstreams: { a: { targets: ["127.0.0.1:1"] }, b: { targets: ["127.0.0.1:2"] } }
routes:
`+strings.Join(lines, "\n")+"\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := compile.Compile(doc, runtime.NewRegistry(nil, nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for i, rc := range doc.Config.Routes {
		rt := snap.Routes[i]
		base := strings.TrimSuffix(rc.Match.PathPrefix, "/")
		if rc.Match.Path != "" {
			base = strings.TrimSuffix(rc.Match.Path, "/")
		}
		var reqs []string
		for _, suffix := range []string{"", "/", "/x", "/x/y", "/s", "/s/", "/s/x", "/admin/u", "/other"} {
			reqs = append(reqs, base+suffix)
		}
		for _, p := range reqs {
			if p == "" {
				p = "/"
			}
			if snap.Table.Match("", p, "GET", nil) != i {
				continue
			}
			up, model, ok := config.UpstreamPath(rc, p)
			var got, gotUp string
			gotOK := true
			switch rt.Action {
			case runtime.ActionProxy:
				got, _ = upstreamPath(rt, p)
				gotUp = rt.Pool.Name
			case runtime.ActionAPI:
				pool, _, path, ok := apiTarget(rt.API, p)
				gotOK = ok
				if ok {
					got, gotUp = path, pool.Name
				}
			}
			if ok != gotOK || ok && (model != got || up != gotUp) {
				t.Errorf("route %s (%+v), %s: model %s %q %v, engine %s %q %v", rc.Name, rc.Match, p, up, model, ok, gotUp, got, gotOK)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("only %d requests checked", checked)
	}
}
