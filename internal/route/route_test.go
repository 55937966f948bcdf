package route

import (
	"net/http"
	"testing"
)

func TestMatchPrecedence(t *testing.T) {
	t.Parallel()
	specs := []Spec{
		0:  {PathPrefix: "/"},
		1:  {PathPrefix: "/admin"},
		2:  {PathPrefix: "/admin/api"},
		3:  {Path: "/admin/health"},
		4:  {PathPrefix: "/admin", Methods: []string{"POST"}},
		5:  {PathPrefix: "/admin", Hosts: []string{"*.example.com"}},
		6:  {PathPrefix: "/admin", Hosts: []string{"shop.example.com"}},
		7:  {PathPrefix: "/kline", Headers: map[string]string{"x-canary": "1"}},
		8:  {PathPrefix: "/kline"},
		9:  {PathPrefix: "/kline", Headers: map[string]string{"X-Env": "*"}},
		10: {PathPrefix: "/deep", Hosts: []string{"*.a.example.com"}},
		11: {PathPrefix: "/deep", Hosts: []string{"*.example.com"}},
		12: {PathPrefix: "/flow"},
		13: {PathPrefix: "/flow"}, // same as 12: the earlier one wins
		14: {PathPrefix: "/reports", Methods: []string{"GET"}},
		15: {Path: "/account/settings/"},
	}
	tbl := NewTable(specs)
	tests := []struct {
		name, host, path, method string
		hdr                      http.Header
		want                     int
	}{
		{name: "default", path: "/", want: 0},
		{name: "segment-aware prefix", path: "/admin", want: 1},
		{name: "below prefix", path: "/admin/x", want: 1},
		{name: "not a segment boundary", path: "/adminx", want: 0},
		{name: "longer prefix wins", path: "/admin/api/users", want: 2},
		{name: "exact beats prefix", path: "/admin/health", want: 3},
		{name: "exact is exact", path: "/admin/health/x", want: 1},
		{name: "method constrained wins", path: "/admin/x", method: "POST", want: 4},
		{name: "wildcard host", host: "api.example.com", path: "/admin", want: 5},
		{name: "exact host beats wildcard", host: "shop.example.com", path: "/admin", method: "POST", want: 6},
		{name: "wildcard needs a label", host: "example.com", path: "/admin", want: 1},
		{name: "header match", path: "/kline/x", hdr: http.Header{"X-Canary": {"1"}}, want: 7},
		{name: "header value mismatch", path: "/kline/x", hdr: http.Header{"X-Canary": {"2"}}, want: 8},
		{name: "header presence", path: "/kline", hdr: http.Header{"X-Env": {"prod"}}, want: 9},
		{name: "longer wildcard wins", host: "x.a.example.com", path: "/deep", want: 10},
		{name: "shorter wildcard", host: "x.b.example.com", path: "/deep", want: 11},
		{name: "declaration order breaks ties", path: "/flow", want: 12},
		// Apps answer HEAD with their GET handler, and serve /x/ as /x:
		// neither may fall past the route to another (and its auth).
		{name: "GET takes HEAD", path: "/reports/q3", method: "HEAD", want: 14},
		{name: "GET does not take POST", path: "/reports/q3", method: "POST", want: 0},
		{name: "exact takes a trailing slash", path: "/admin/health/", want: 3},
		{name: "exact takes its path without the slash", path: "/account/settings", want: 15},
		{name: "exact takes only one slash more", path: "/admin/health/x/", want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := tt.method
			if m == "" {
				m = "GET"
			}
			if got := tbl.Match(tt.host, tt.path, m, tt.hdr); got != tt.want {
				t.Fatalf("Match(%q, %q, %s) = %d, want %d", tt.host, tt.path, m, got, tt.want)
			}
		})
	}
}

func TestMatchNone(t *testing.T) {
	tbl := NewTable([]Spec{{PathPrefix: "/admin"}, {Path: "/x", Methods: []string{"GET"}}})
	for _, p := range []string{"/", "/adminx", "/x/y", "/xx", "/x/y/"} {
		if got := tbl.Match("", p, "GET", nil); got != -1 {
			t.Errorf("Match(%q) = %d, want -1", p, got)
		}
	}
	if got := tbl.Match("", "/x", "POST", nil); got != -1 {
		t.Errorf("POST /x = %d, want -1", got)
	}
	if got := tbl.Match("", "/", "GET", nil); got != -1 {
		t.Errorf("GET / = %d, want -1", got)
	}
	// The table's own copy gets HEAD; the caller's slice, with room to
	// spare, is not written.
	methods := make([]string, 1, 4)
	methods[0] = "GET"
	NewTable([]Spec{{Path: "/x", Methods: methods}})
	if got := tbl.Match("", "/x/", "HEAD", nil); got != 1 || methods[:2][1] != "" {
		t.Errorf("HEAD /x/ = %d (methods %q), want 1", got, methods[:2])
	}
}

// An exact path's twin (the path with a trailing slash added or taken
// away) goes to the exact route unless a route written for it comes
// first: an exact route for the twin itself, or a prefix of its length
// (which also owns what lies below); a redirect route takes no twin
// (it would redirect to itself).
func TestSlashTwinRanksBelowRoutesForIt(t *testing.T) {
	t.Parallel()
	tbl := NewTable([]Spec{
		0:  {Path: "/status"},
		1:  {Path: "/status/"},
		2:  {Path: "/x/", Methods: []string{"GET"}},
		3:  {Path: "/x"},
		4:  {Path: "/admin", NoSlashTwin: true},
		5:  {PathPrefix: "/admin"},
		6:  {Path: "/docs"},
		7:  {PathPrefix: "/docs"},
		8:  {PathPrefix: "/"},
		9:  {Path: "/a/b"},
		10: {PathPrefix: "/a"},
	})
	for path, want := range map[string]int{
		"/status": 0, "/status/": 1, "/x": 3, "/x/": 2,
		"/admin": 4, "/admin/": 5, // the redirect route takes no twin
		"/docs": 6, "/docs/": 7, "/docs/x": 7, // a prefix of the twin's length wins it
		"/a/b/": 9, "/a/b/c": 10, // a shorter prefix does not
	} {
		if got := tbl.Match("", path, "GET", nil); got != want {
			t.Errorf("%s = %d, want %d", path, got, want)
		}
	}
}

func seedTable() *Table {
	var specs []Spec
	for _, p := range []string{"/oauth", "/admin", "/kline", "/flow", "/test", "/api", "/"} {
		specs = append(specs, Spec{PathPrefix: p})
	}
	return NewTable(specs)
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tbl := seedTable()
	h := http.Header{"Accept": {"*/*"}}
	allocs := testing.AllocsPerRun(100, func() { tbl.Match("example.com", "/flow/board/7", "GET", h) })
	if allocs != 0 {
		t.Fatalf("allocs = %v, want 0", allocs)
	}
}

func BenchmarkMatch(b *testing.B) {
	tbl := seedTable()
	h := http.Header{"Accept": {"*/*"}}
	b.ReportAllocs()
	for b.Loop() {
		tbl.Match("example.com", "/flow/board/7", "GET", h)
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = NormalizePath("/flow/board/7")
	}
}
