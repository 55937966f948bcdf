package config

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"gatehouse/internal/route"
)

// One upstream path, one auth policy.
//
// A route that changes the path it sends (strip_prefix, rewrite, an api
// route's template) sends its upstream paths that the router would give
// to another route, had a client asked for them by name: the api route's
// /api/admin/users is admin-portal's /admin/api/users, which the admin
// route serves. When the two routes' auth differs, a client picks the
// weaker: the upstream cannot tell the two requests apart. Found by
// attacking the shipped config from outside (login on /admin left the
// admin app's API open through /api/admin).
//
// Routes that send the path they matched share paths too, across hosts
// (a host's route takes every path of it first), header conditions, and
// HEAD beside GET.
//
// authOverlaps refuses such pairs. For two routes to one upstream with
// different auth, it takes the upstream paths each sends for the
// requests at the root of its match (its path or prefix, the prefix with
// a slash, a path below it; an api route's per service), finds the
// request each route would turn into each such path (UpstreamPath's
// inverse, checked forward), and asks the route table whether both
// requests really reach their routes, with one method both take (GET and
// HEAD as one: probeMethods), any of each route's hosts and its header
// conditions met: a more specific route may take a request first (a
// route for /api/admin with the admin route's auth closes the gap, for
// the methods it names). Paths one trailing slash apart count as one, as
// apps serve them. Routes are compared by upstream name: an app named
// twice is two apps here, the way to say it tells hosts apart.

// upstreamSide is what a route sends one upstream, for the check.
type upstreamSide struct {
	idx      int
	r        *Route
	upstream string
	key      string   // where to report: the config key that maps the path
	identity bool     // the route sends the path it matched
	root     string   // every path it sends the upstream lies at or below root
	samples  []string // upstream paths it sends for its match's root requests
}

func (v *validator) authOverlaps(c *Config) {
	specs := make([]route.Spec, len(c.Routes))
	for i, r := range c.Routes {
		if r == nil {
			return // reported; the table would not be the one compiled
		}
		specs[i] = RouteSpec(r)
	}
	table := route.NewTable(specs)
	methods := probeMethods(c.Routes)
	keys := make([]string, len(c.Routes))
	byUpstream := map[string][]upstreamSide{}
	var names []string
	for i, r := range c.Routes {
		keys[i] = authKey(r.Auth)
		for _, s := range sides(i, r) {
			if byUpstream[s.upstream] == nil {
				names = append(names, s.upstream)
			}
			byUpstream[s.upstream] = append(byUpstream[s.upstream], s)
		}
	}
	slices.Sort(names)
	reported := map[[2]int]bool{}
	for _, u := range names {
		ss := byUpstream[u]
		for y := range ss {
			for x := range y {
				a, b := ss[x], ss[y]
				if a.idx == b.idx || keys[a.idx] == keys[b.idx] || reported[[2]int{a.idx, b.idx}] ||
					!route.HasPathPrefix(a.root, b.root) && !route.HasPathPrefix(b.root, a.root) {
					continue
				}
				if v.overlap(table, methods, a, b) {
					reported[[2]int{a.idx, b.idx}] = true
				}
			}
		}
	}
}

// probeMethods are the methods the check tries, each a class of the
// methods one app handler takes: GET with HEAD (apps answer HEAD with
// their GET handler), POST, every method a route names, and one no route
// names (one stands for all of those: every route without methods takes
// them alike).
func probeMethods(routes []*Route) [][]string {
	classes := [][]string{{http.MethodGet, http.MethodHead}, {http.MethodPost}}
	named := map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true}
	for _, r := range routes {
		for _, m := range r.Match.Methods {
			if !named[m] {
				named[m] = true
				classes = append(classes, []string{m})
			}
		}
	}
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "UNNAMED-METHOD"} {
		if !named[m] {
			return append(classes, []string{m})
		}
	}
	return classes
}

// overlap reports a and b (two routes' sides to one upstream) if some
// upstream path reaches it through both.
func (v *validator) overlap(table *route.Table, methods [][]string, a, b upstreamSide) bool {
	for _, w := range slices.Concat(a.samples, b.samples) {
		qa, qb := requestsFor(a, w), requestsFor(b, w)
		if len(qa) == 0 || len(qb) == 0 {
			continue
		}
		for _, m := range methods {
			ra, rb := reached(table, a, qa, m), reached(table, b, qb, m)
			if ra == "" || rb == "" {
				continue
			}
			// Reported at the route that changes the path, if one does:
			// its mapping made the pair.
			at, other, req, otherReq := b, a, rb, ra
			if b.identity && !a.identity {
				at, other, req, otherReq = a, b, ra, rb
			}
			v.add(at.key, "sends %s the path %s for %s, and routes[%d] (%s) sends it the same path for %s, under another auth policy: a client would take the weaker. Give both routes the same auth, or add a route for whichever of the two requests has the weaker policy, with the other's auth (or, for an app that tells hosts apart, name it twice under upstreams)",
				at.upstream, shown(w), shown(req), other.idx, other.r.Name, shown(otherReq))
			return true
		}
	}
	return false
}

// requestsFor returns the requests side s's route turns into upstream
// path w, or into its slash twin.
func requestsFor(s upstreamSide, w string) []string {
	var out []string
	for _, q := range candidates(s.r, w) {
		if u, p, ok := UpstreamPath(s.r, q); ok && u == s.upstream && sameResource(p, w) && !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	return out
}

// reached returns the first of qs that, sent with a method of class ms
// and one of the route's hosts (and its header conditions met), the table
// routes to the route, as "METHOD host+path"; "" if none does.
func reached(table *route.Table, s upstreamSide, qs []string, ms []string) string {
	r := s.r
	hosts := []string{""}
	if len(r.Match.Host) > 0 {
		hosts = hosts[:0]
		for _, h := range r.Match.Host {
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				h = "zz-overlap-check." + rest // a name no exact host route takes
			}
			hosts = append(hosts, h)
		}
	}
	var hdr http.Header
	if len(r.Match.Headers) > 0 {
		hdr = http.Header{}
		for name, val := range r.Match.Headers {
			if val == "*" {
				val = "zz-overlap-check" // a value no route's condition names
			}
			hdr[http.CanonicalHeaderKey(name)] = []string{val}
		}
	}
	for _, m := range ms {
		for _, q := range qs {
			for _, h := range hosts {
				if table.Match(h, q, m, hdr) == s.idx {
					return m + " " + h + q + headerNote(hdr)
				}
			}
		}
	}
	return ""
}

// probeSegment is the path segment the check puts below a route's root
// to stand for every path there: one no route names (a route for "/x/_"
// alone would have hidden "/x/a" from a probe with "_").
const probeSegment = "zz-overlap-check"

// shown is a path or request as a message names it, the probe segment
// as "…".
func shown(s string) string { return strings.ReplaceAll(s, "/"+probeSegment, "/…") }

// headerNote names the header fields a probe sent, for the message.
func headerNote(h http.Header) string {
	if len(h) == 0 {
		return ""
	}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	slices.Sort(names)
	for i, k := range names {
		names[i] = k + ": " + h[k][0]
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// sameResource reports whether two upstream paths are one to an app:
// equal, or one trailing slash apart.
func sameResource(a, b string) bool {
	if a == b {
		return true
	}
	t, ok := route.Twin(a)
	return ok && t == b
}

// sides lists what route r (routes[i]) sends each upstream: nothing for
// a route that does not proxy.
func sides(i int, r *Route) []upstreamSide {
	p := fmt.Sprintf("routes[%d]", i)
	var out []upstreamSide
	add := func(upstream, key string, identity bool, roots []string) {
		s := upstreamSide{idx: i, r: r, upstream: upstream, key: key, identity: identity}
		for _, q := range roots {
			if u, w, ok := UpstreamPath(r, q); ok && u == upstream && !slices.Contains(s.samples, w) {
				s.samples = append(s.samples, w)
			}
		}
		if len(s.samples) == 0 {
			return
		}
		s.root = s.samples[0]
		for _, w := range s.samples[1:] {
			s.root = commonSegments(s.root, w)
		}
		out = append(out, s)
	}
	switch {
	case r.Upstream != "":
		key, identity := p+".upstream", true
		switch {
		case r.StripPrefix:
			key, identity = p+".strip_prefix", false
		case r.Rewrite != "":
			key, identity = p+".rewrite", false
		}
		add(r.Upstream, key, identity, matchRoots(r.Match.Path, r.Match.PathPrefix))
	case r.API != nil && r.Match.PathPrefix != "":
		svcs := make([]string, 0, len(r.API.Services))
		for s := range r.API.Services {
			svcs = append(svcs, s)
		}
		slices.Sort(svcs)
		prefix := strings.TrimSuffix(r.Match.PathPrefix, "/")
		for _, s := range svcs {
			identity := strings.NewReplacer("{prefix}", prefix, "{service}", s).Replace(r.API.Rewrite) == prefix+"/"+s+"{rest}"
			add(r.API.Services[s], join(p+".api.services", s), identity, matchRoots("", prefix+"/"+s))
		}
	}
	return out
}

// matchRoots are the requests at the root of a match: an exact path and
// its twin, or a prefix, the prefix with a slash, and a path below it.
func matchRoots(exact, prefix string) []string {
	if exact != "" {
		if t, ok := route.Twin(exact); ok {
			return []string{exact, t}
		}
		return []string{exact}
	}
	p := strings.TrimSuffix(prefix, "/")
	return []string{orRoot(p), p + "/", p + "/" + probeSegment}
}

// candidates are the requests route r might turn into upstream path w
// (or its twin): UpstreamPath's inverse, generous, for the caller to
// check forward.
func candidates(r *Route, w string) []string {
	forms := []string{w}
	if t, ok := route.Twin(w); ok {
		forms = append(forms, t)
	}
	var out []string
	switch {
	case r.Upstream != "" && r.Match.Path != "":
		t, _ := route.Twin(r.Match.Path)
		return []string{r.Match.Path, t}
	case r.Upstream != "" && r.StripPrefix:
		p := strings.TrimSuffix(r.Match.PathPrefix, "/")
		for _, f := range forms {
			out = append(out, orRoot(p+f), p+"/"+strings.TrimPrefix(f, "/"), orRoot(p))
		}
	case r.Upstream != "" && r.Rewrite != "":
		p, to := strings.TrimSuffix(r.Match.PathPrefix, "/"), strings.TrimSuffix(r.Rewrite, "/")
		for _, f := range forms {
			if rest, ok := strings.CutPrefix(f, to); ok {
				out = append(out, orRoot(p+rest), p+"/"+strings.TrimPrefix(rest, "/"), orRoot(p))
			}
		}
	case r.Upstream != "":
		return forms
	case r.API != nil:
		prefix := strings.TrimSuffix(r.Match.PathPrefix, "/")
		svcs := make([]string, 0, len(r.API.Services))
		for s := range r.API.Services {
			svcs = append(svcs, s)
		}
		slices.Sort(svcs)
		for _, s := range svcs {
			before, after, hasRest := strings.Cut(r.API.Rewrite, "{rest}")
			fill := strings.NewReplacer("{prefix}", prefix, "{service}", s)
			before, after = fill.Replace(before), fill.Replace(after)
			req := prefix + "/" + s
			out = append(out, req, req+"/")
			if !hasRest {
				continue
			}
			for _, f := range forms {
				for _, b := range []string{before, strings.TrimSuffix(before, "/")} {
					mid, ok := strings.CutPrefix(f, b)
					if ok {
						mid, ok = strings.CutSuffix(mid, after)
					}
					if ok {
						out = append(out, req+mid, req+"/"+strings.TrimPrefix(mid, "/"))
					}
				}
			}
		}
	}
	return out
}

// UpstreamPath returns the upstream route r sends a request for path to,
// and the path it sends, as the proxy computes them (proxy's
// upstreamPath and apiTarget, which TestUpstreamPathModel holds it to);
// false for a route that does not proxy, or an api route's unknown
// service. path is one r matches.
func UpstreamPath(r *Route, path string) (upstream, upath string, ok bool) {
	if r.Upstream != "" {
		if !r.StripPrefix && r.Rewrite == "" {
			return r.Upstream, path, true
		}
		matched := r.Match.Path
		if matched == "" {
			matched = strings.TrimSuffix(r.Match.PathPrefix, "/")
		}
		rest := ""
		if len(path) > len(matched) {
			rest = path[len(matched):]
		}
		if r.StripPrefix {
			return r.Upstream, orRoot(rest), true
		}
		if strings.HasSuffix(r.Rewrite, "/") && strings.HasPrefix(rest, "/") {
			rest = rest[1:]
		}
		return r.Upstream, r.Rewrite + rest, true
	}
	if r.API == nil {
		return "", "", false
	}
	prefix := strings.TrimSuffix(r.Match.PathPrefix, "/")
	rest := path[min(len(prefix), len(path)):]
	if len(rest) < 2 || rest[0] != '/' {
		return "", "", false
	}
	svc := rest[1:]
	rest = ""
	if i := strings.IndexByte(svc, '/'); i >= 0 {
		svc, rest = svc[:i], svc[i:]
	}
	up, ok := r.API.Services[svc]
	if !ok {
		return "", "", false
	}
	out := strings.NewReplacer("{prefix}", prefix, "{service}", svc, "{rest}", rest).Replace(r.API.Rewrite)
	return up, orRoot(out), true
}

// commonSegments is the longest path both a and b lie at or below, on
// segment boundaries.
func commonSegments(a, b string) string {
	if a != "/" {
		a = strings.TrimSuffix(a, "/")
	}
	for !route.HasPathPrefix(b, a) {
		i := strings.LastIndexByte(a, '/')
		if i <= 0 {
			return "/"
		}
		a = a[:i]
	}
	return a
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// authKey is what decides a route's auth, as one comparable string:
// "none" for a route without it.
func authKey(a *RouteAuth) string {
	if a == nil || a.Mode == "" || a.Mode == "none" {
		return "none"
	}
	sorted := func(s []string) []string {
		s = slices.Clone(s)
		slices.Sort(s)
		return s
	}
	b, _ := json.Marshal(struct {
		Mode, OnIntrospectionError            string
		Issuers, Accept, AnyOf, AllOf, Scopes []string
		Claims                                map[string]string // encoding/json sorts the keys
		Preflight                             bool
	}{a.Mode, a.OnIntrospectionError, sorted(a.Issuers), sorted(a.Accept), sorted(a.Roles.AnyOf), sorted(a.Roles.AllOf),
		sorted(a.Scopes), a.Claims, a.Preflight})
	return string(b)
}

// RouteSpec is what r matches, for the route table: its match, and no
// slash twin for a redirect (one that adds or removes the slash would
// redirect to itself).
func RouteSpec(r *Route) route.Spec {
	return route.Spec{Hosts: r.Match.Host, PathPrefix: r.Match.PathPrefix, Path: r.Match.Path,
		Methods: r.Match.Methods, Headers: r.Match.Headers, NoSlashTwin: r.Redirect != nil}
}
