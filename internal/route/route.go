// Package route is Gatehouse's compiled route table: host, path, method and
// header matching with a fixed, documented precedence, allocation-free on
// the request path.
//
// Precedence, most specific first (docs/config.md, "How a route is chosen"):
//  1. host: an exact host, then wildcards (longer suffix first), then none;
//  2. path: an exact path, then path prefixes (longer first), where an
//     exact path's twin (itself with a trailing slash added or taken
//     away) ranks as a prefix of its length, after a real one;
//  3. routes that name methods before routes that take any method;
//  4. more header conditions before fewer;
//  5. earlier in the file before later.
//
// A route with several hosts becomes one entry per host, so each entry has
// one precedence. The first entry that matches wins.
package route

import (
	"net/http"
	"sort"
	"strings"
)

// Spec is what a route matches, as configured (already validated).
type Spec struct {
	Hosts      []string // lowercase; "*.example.com" wildcards
	PathPrefix string   // segment-aware; "/" matches everything
	Path       string   // exact
	Methods    []string
	Headers    map[string]string // value "*" means present
	// NoSlashTwin keeps Path from taking its twin (a redirect that adds
	// or removes the slash would redirect to itself).
	NoSlashTwin bool
}

type headerCond struct {
	name  string // canonical
	value string
	any   bool
}

type entry struct {
	host     string // exact host, or suffix ".example.com" when wildcard
	wildcard bool
	prefix   string
	exact    string
	twin     bool // exact is a Path's twin, ranked as a prefix of rank's length
	rank     int  // a prefix's length, or a twin's Path's without its slash
	methods  []string
	headers  []headerCond
	order    int // declaration index
	target   int // what Match returns
}

// Table is an immutable, compiled route table.
type Table struct{ entries []entry }

// NewTable compiles specs; Match returns the index in specs of the winner.
func NewTable(specs []Spec) *Table {
	t := &Table{}
	for i, s := range specs {
		base := entry{prefix: s.PathPrefix, exact: s.Path, methods: withHead(s.Methods), order: i, target: i}
		if base.prefix == "/" {
			base.prefix = "" // matches every path
		}
		base.rank = len(base.prefix)
		for name, v := range s.Headers {
			base.headers = append(base.headers, headerCond{name: http.CanonicalHeaderKey(name), value: v, any: v == "*"})
		}
		sort.Slice(base.headers, func(a, b int) bool { return base.headers[a].name < base.headers[b].name })
		bases := []entry{base}
		if tw, ok := Twin(s.Path); ok && !s.NoSlashTwin {
			e := base
			e.exact, e.twin, e.rank = tw, true, len(strings.TrimSuffix(s.Path, "/"))
			bases = append(bases, e)
		}
		for _, b := range bases {
			if len(s.Hosts) == 0 {
				t.entries = append(t.entries, b)
				continue
			}
			for _, h := range s.Hosts {
				e := b
				if strings.HasPrefix(h, "*.") {
					e.host, e.wildcard = h[1:], true
				} else {
					e.host = h
				}
				t.entries = append(t.entries, e)
			}
		}
	}
	sort.SliceStable(t.entries, func(a, b int) bool { return less(&t.entries[a], &t.entries[b]) })
	return t
}

func hostRank(e *entry) int {
	switch {
	case e.host == "":
		return 0
	case e.wildcard:
		return 1
	}
	return 2
}

func less(a, b *entry) bool {
	if ra, rb := hostRank(a), hostRank(b); ra != rb {
		return ra > rb
	}
	if a.wildcard && len(a.host) != len(b.host) {
		return len(a.host) > len(b.host)
	}
	// Exact paths first, then prefixes and twins by length, a prefix
	// before a twin of its length: a route written for the path (or for
	// the subtree the twin opens) wins over a twin.
	if ea, eb := a.exact != "" && !a.twin, b.exact != "" && !b.twin; ea != eb {
		return ea
	}
	if a.rank != b.rank {
		return a.rank > b.rank
	}
	if a.twin != b.twin {
		return !a.twin
	}
	if (len(a.methods) > 0) != (len(b.methods) > 0) {
		return len(a.methods) > 0
	}
	if len(a.headers) != len(b.headers) {
		return len(a.headers) > len(b.headers)
	}
	return a.order < b.order
}

// HasPathPrefix reports whether path is prefix or lies below it, on segment
// boundaries: /admin matches /admin and /admin/x, never /adminx.
func HasPathPrefix(path, prefix string) bool {
	if prefix == "" || prefix == "/" {
		return true
	}
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}

// Match returns the index of the most specific matching spec, or -1. host
// must be lowercase without port, path normalized (NormalizePath).
func (t *Table) Match(host, path, method string, h http.Header) int {
	for i := range t.entries {
		e := &t.entries[i]
		if e.host != "" {
			if e.wildcard {
				if len(host) <= len(e.host) || !strings.HasSuffix(host, e.host) {
					continue
				}
			} else if host != e.host {
				continue
			}
		}
		if e.exact != "" {
			if path != e.exact {
				continue
			}
		} else if !HasPathPrefix(path, e.prefix) {
			continue
		}
		if len(e.methods) > 0 && !contains(e.methods, method) {
			continue
		}
		if !headersMatch(e.headers, h) {
			continue
		}
		return e.target
	}
	return -1
}

// withHead returns methods with HEAD added when they name GET and not
// HEAD: nearly every framework (Next.js, Express, Go's ServeMux, Rails,
// Django, Spring) answers HEAD with its GET handler, so a route for GET
// that let HEAD fall to another route would let HEAD past its auth to
// the same handler. nginx's limit_except GET allows HEAD for the same
// reason.
func withHead(methods []string) []string {
	if !contains(methods, "GET") || contains(methods, "HEAD") {
		return methods
	}
	return append(methods[:len(methods):len(methods)], "HEAD")
}

// Twin returns an exact path's twin: itself with a trailing slash added
// or taken away, which apps serve as one (Express by default, Spring
// before 6, Next.js with trailingSlash), so an exact route takes it too
// unless a route for it (or a prefix of its length) comes first: a twin
// that fell to another route would fall past the exact route's auth.
// "/" has none.
func Twin(path string) (string, bool) {
	switch {
	case path == "" || path == "/":
		return "", false
	case path[len(path)-1] == '/':
		return path[:len(path)-1], true
	}
	return path + "/", true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func headersMatch(conds []headerCond, h http.Header) bool {
	for _, c := range conds {
		vals := h[c.name]
		if len(vals) == 0 {
			return false
		}
		if !c.any && !contains(vals, c.value) {
			return false
		}
	}
	return true
}
