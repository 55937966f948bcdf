package config

import (
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
// authOverlaps refuses such pairs. For two routes to one upstream, at
// least one of which changes the path, with different auth, it takes a
// path both may send the upstream (the more specific of their two path
// spaces, and a path below it) and asks the route table whether the
// request each route would turn into that path really reaches that route
// (a more specific route may take it first: a route for /api/admin with
// the admin route's auth closes the gap). Two routes that send the path
// they matched share paths only across hosts: a route naming a host takes
// every path of it before path routes for any host. Routes are compared
// by upstream name: an app named twice is two apps here, the way to say
// it tells hosts apart.

// reach is a set of upstream paths a route sends one upstream: a path
// and those below it on segment boundaries, or exactly one path.
type reach struct {
	upstream string
	path     string // "/" with a prefix: every path
	exact    bool
	identity bool   // the route sends the path it matched
	key      string // where to report: the config key that maps the path
	// inverse gives the request path the route turns into w (a path in
	// this reach), false if there is none.
	inverse func(w string) (string, bool)
}

func (v *validator) authOverlaps(c *Config) {
	specs := make([]route.Spec, len(c.Routes))
	reaches := make([][]reach, len(c.Routes))
	for i, r := range c.Routes {
		if r == nil {
			return // reported; the table would not be the one compiled
		}
		specs[i] = RouteSpec(r)
		reaches[i] = routeReach(fmt.Sprintf("routes[%d]", i), r)
	}
	table := route.NewTable(specs)
	for j := range c.Routes {
		for i := range j {
			ri, rj := c.Routes[i], c.Routes[j]
			if authKey(ri.Auth) == authKey(rj.Auth) {
				continue
			}
			v.overlap(table, i, j, ri, rj, reaches[i], reaches[j])
		}
	}
}

// overlap reports routes i and j (i < j) once if some upstream path
// reaches the same upstream through both.
func (v *validator) overlap(table *route.Table, i, j int, ri, rj *Route, as, bs []reach) {
	type side struct {
		idx int
		r   *Route
		rc  reach
		q   string // the request the route turns into the shared path
	}
	for _, a := range as {
		for _, b := range bs {
			if a.upstream != b.upstream {
				continue
			}
			for _, w := range witnesses(a, b) {
				qa, oka := a.inverse(w)
				qb, okb := b.inverse(w)
				if !oka || !okb || !reaches(table, i, ri, qa) || !reaches(table, j, rj, qb) {
					continue
				}
				// Reported at the route that changes the path, if one
				// does: its mapping made the pair.
				at, other := side{j, rj, b, qb}, side{i, ri, a, qa}
				if b.identity && !a.identity {
					at, other = other, at
				}
				req, otherReq := requestOf(at.r, at.q), requestOf(other.r, other.q)
				v.add(at.rc.key, "sends %s the path %s for a request to %s, and routes[%d] (%s) sends it the same path for a request to %s, under another auth policy: a client would take the weaker. Give both routes the same auth, or add a route for whichever of %s and %s has the weaker policy, with the other's auth (or, for an app that tells hosts apart, name it twice under upstreams)",
					at.rc.upstream, shown(w), req, other.idx, other.r.Name, otherReq, req, otherReq)
				return
			}
		}
	}
}

// requestOf names the request route r turns into a shared path: the
// path, after the route's first host if it names hosts.
func requestOf(r *Route, q string) string {
	if len(r.Match.Host) > 0 {
		return r.Match.Host[0] + shown(q)
	}
	return shown(q)
}

// shown is a witness path as a message names it: "/x/…" for "/x/_", a
// path below /x.
func shown(p string) string {
	if base, ok := strings.CutSuffix(p, "/_"); ok {
		return base + "/…"
	}
	return p
}

// witnesses are upstream paths in both a and b, if they meet: the more
// specific of the two spaces, and a path below it.
func witnesses(a, b reach) []string {
	switch {
	case a.exact && b.exact:
		if a.path == b.path {
			return []string{a.path}
		}
	case a.exact:
		if route.HasPathPrefix(a.path, b.path) {
			return []string{a.path}
		}
	case b.exact:
		if route.HasPathPrefix(b.path, a.path) {
			return []string{b.path}
		}
	default:
		deeper := ""
		switch {
		case route.HasPathPrefix(a.path, b.path):
			deeper = a.path
		case route.HasPathPrefix(b.path, a.path):
			deeper = b.path
		default:
			return nil
		}
		return []string{deeper, strings.TrimSuffix(deeper, "/") + "/_"}
	}
	return nil
}

// reaches reports whether a request to path q, made to suit route r's
// other conditions (its first host and method, its headers), is routed
// to r: a more specific route may take it first.
func reaches(table *route.Table, idx int, r *Route, q string) bool {
	host := ""
	if len(r.Match.Host) > 0 {
		host = r.Match.Host[0]
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			host = "a." + rest
		}
	}
	method := http.MethodGet
	if len(r.Match.Methods) > 0 {
		method = r.Match.Methods[0]
	}
	var h http.Header
	if len(r.Match.Headers) > 0 {
		h = http.Header{}
		for name, val := range r.Match.Headers {
			if val == "*" {
				val = "x"
			}
			h[http.CanonicalHeaderKey(name)] = []string{val}
		}
	}
	return table.Match(host, q, method, h) == idx
}

// routeReach lists what route r (at p) sends which upstream: nothing for
// a route that does not proxy.
func routeReach(p string, r *Route) []reach {
	prefix := strings.TrimSuffix(r.Match.PathPrefix, "/")
	if r.Upstream != "" {
		matched, exact := prefix, false
		if r.Match.Path != "" {
			matched, exact = r.Match.Path, true
		} else if r.Match.PathPrefix == "" {
			matched = ""
		}
		switch {
		case r.StripPrefix && matched != "":
			return []reach{{upstream: r.Upstream, path: "/", exact: exact, key: p + ".strip_prefix",
				inverse: func(w string) (string, bool) {
					if exact {
						return matched, w == "/"
					}
					if w == "/" {
						return matched, true
					}
					return matched + w, true
				}}}
		case r.Rewrite != "":
			to := r.Rewrite
			if !exact {
				to = strings.TrimSuffix(to, "/")
			}
			space := to
			if space == "" {
				space = "/"
			}
			return []reach{{upstream: r.Upstream, path: space, exact: exact, key: p + ".rewrite",
				inverse: func(w string) (string, bool) {
					if exact {
						return matched, w == r.Rewrite
					}
					rest := strings.TrimPrefix(w, to)
					if rest == "" || to == "" && rest == "/" {
						return orRoot(matched), true
					}
					return matched + rest, true
				}}}
		}
		space := matched
		if space == "" {
			space = "/"
		}
		return []reach{{upstream: r.Upstream, path: space, exact: exact, identity: true, key: p + ".upstream",
			inverse: func(w string) (string, bool) { return w, true }}}
	}
	a := r.API
	if a == nil || r.Match.PathPrefix == "" {
		return nil
	}
	var out []reach
	svcs := make([]string, 0, len(a.Services))
	for s := range a.Services {
		svcs = append(svcs, s)
	}
	slices.Sort(svcs)
	for _, s := range svcs {
		before, after, hasRest := strings.Cut(a.Rewrite, "{rest}")
		fill := func(t string) string {
			return strings.NewReplacer("{prefix}", prefix, "{service}", s).Replace(t)
		}
		before, after = fill(before), fill(after)
		req := prefix + "/" + s
		rc := reach{upstream: a.Services[s], key: join(p+".api.services", s)}
		if !hasRest {
			rc.path, rc.exact = orRoot(before), true
			rc.inverse = func(w string) (string, bool) { return req, w == rc.path }
		} else {
			rc.path = orRoot(strings.TrimSuffix(before, "/"))
			rc.identity = before == req && after == ""
			rc.inverse = func(w string) (string, bool) {
				rest, ok := strings.CutPrefix(w, before)
				if !ok && w+"/" == before {
					rest, ok = "", true
				}
				if !ok {
					rest, ok = strings.CutPrefix(w, strings.TrimSuffix(before, "/"))
				}
				if !ok || rest != "" && rest[0] != '/' {
					return "", false
				}
				if after != "" {
					return "", false // a template with text after {rest}: not inverted
				}
				return req + rest, true
			}
		}
		out = append(out, rc)
	}
	return out
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
	claims := make([]string, 0, len(a.Claims))
	for k, val := range a.Claims {
		claims = append(claims, k+"="+val)
	}
	slices.Sort(claims)
	return fmt.Sprintf("%s|%q|%q|%q|%q|%q|%q|%v|%s", a.Mode, sorted(a.Issuers), sorted(a.Accept),
		sorted(a.Roles.AnyOf), sorted(a.Roles.AllOf), sorted(a.Scopes), claims, a.Preflight, a.OnIntrospectionError)
}

// RouteSpec is what r matches, for the route table: its match, and no
// slash twin for a redirect (one that adds or removes the slash would
// redirect to itself).
func RouteSpec(r *Route) route.Spec {
	return route.Spec{Hosts: r.Match.Host, PathPrefix: r.Match.PathPrefix, Path: r.Match.Path,
		Methods: r.Match.Methods, Headers: r.Match.Headers, NoSlashTwin: r.Redirect != nil}
}
