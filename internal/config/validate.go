package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	nameRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	tokenRe    = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	hostnameRe = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
	segmentRe  = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
	dnsNameRe  = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9])?)*$`)
	placeRe    = regexp.MustCompile(`\{[^}]*\}`)
)

var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

// hopByHop headers are the connection's, not the message's (RFC 9110
// §7.6.1); routes may not edit them.
var hopByHop = []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host"}

// validate checks the defaulted config and returns every problem found.
// It reads nothing but the config, except that static roots must exist.
func validate(doc *Document) []FieldError {
	v := &validator{doc: doc}
	c := doc.Config
	ih := c.Auth.IdentityHeaders
	for _, h := range []string{ih.Subject, ih.Roles, ih.Scopes, ih.Client, ih.Issuer} {
		if h != "" && h != "off" {
			v.identity = append(v.identity, strings.ToLower(h))
		}
	}
	if ia := c.Auth.IdentityAssertion; ia != nil && ia.Header != "" {
		v.identity = append(v.identity, strings.ToLower(ia.Header))
	}
	v.server(&c.Server)
	if c.Admin.Listen != "off" {
		if err := checkHostPort(c.Admin.Listen, true); err != "" {
			v.add("admin.listen", `%s (or "off")`, err)
		} else if slices.Contains(c.Server.Listen, c.Admin.Listen) {
			v.add("admin.listen", "must differ from every server.listen address: admin paths are never served on public listeners")
		}
	}
	for i, h := range c.Admin.AllowedHosts {
		if _, err := netip.ParseAddr(h); err != nil && h != "*" && !dnsNameRe.MatchString(h) {
			v.add(fmt.Sprintf("admin.allowed_hosts[%d]", i), `expected a host name or IP address without a port (such as localhost, ::1 or gatehouse-admin), or "*", got %q`, h)
		}
	}
	if t := c.Tracing; t.Endpoint != "" {
		if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("tracing.endpoint", "expected an http(s) URL such as http://127.0.0.1:4318, got %q", RedactURL(t.Endpoint))
		}
	}
	if r := *c.Tracing.SampleRatio; r < 0 || r > 1 {
		v.add("tracing.sample_ratio", "must be between 0 and 1, got %v", r)
	}
	v.headerValues("tracing.headers", c.Tracing.Headers)
	v.auth(&c.Auth)
	v.rateLimits(c)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "must be one of debug, info, warn, error; got %q", c.Log.Level)
	}
	names := make([]string, 0, len(c.Upstreams))
	for name := range c.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	if len(names) == 0 && len(c.Routes) == 0 {
		v.add("", "no routes: add a routes list (see docs/config.md)")
	}
	for _, name := range names {
		v.upstream(name, c.Upstreams[name])
	}
	v.upstreams = names
	seenName := map[string]int{}
	seenMatch := map[string]int{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r == nil {
			v.add(p, "empty route")
			continue
		}
		if r.Name != "" {
			if j, dup := seenName[r.Name]; dup {
				v.add(p+".name", "duplicate route name %q (also routes[%d])", r.Name, j)
			}
			seenName[r.Name] = i
		}
		key := matchKey(&r.Match)
		if j, dup := seenMatch[key]; dup {
			v.add(p+".match", "same match as routes[%d] (%s); this route could never be chosen", j, c.Routes[j].Name)
		}
		seenMatch[key] = i
		v.route(p, r)
		if l := c.Auth.Login; l != nil && r.Match.Path != "" {
			if u, err := url.Parse(l.RedirectURL); (err == nil && r.Match.Path == u.Path) || r.Match.Path == l.LoginPath || r.Match.Path == l.LogoutPath {
				v.add(p+".match.path", "%s is served by Gatehouse's login (auth.login); this route could never be chosen", r.Match.Path)
			}
		}
	}
	if len(v.errs) == 0 {
		// On a config that is otherwise valid: the check routes paths
		// through the table the routes compile to.
		v.authOverlaps(c)
	}
	return v.errs
}

type validator struct {
	doc       *Document
	upstreams []string
	issuers   []string
	limits    []string
	identity  []string // identity header names, lowercase
	errs      []FieldError
}

// noCredentials refuses userinfo in an issuer's URLs: an issuer
// identifier has none (tokens' iss would have to carry it), keys and
// introspection are fetched without it (the introspection client
// authenticates with client_id and client_secret), and the URLs are
// logged and shown on the status pages when the issuer is unreachable.
const noCredentials = "must not hold credentials (user:password@); an issuer's keys are public, and introspection authenticates with client_id and client_secret"

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, v.doc.errAt(path, format, args...))
}

func (v *validator) server(s *Server) {
	for i, l := range s.Listen {
		if err := checkHostPort(l, true); err != "" {
			v.add(fmt.Sprintf("server.listen[%d]", i), "%s", err)
		}
	}
	if s.TLS != nil {
		v.tls(s)
	}
	for i, tp := range s.TrustedProxies {
		if _, err := ParsePrefix(tp); err != nil {
			v.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "expected an IP or CIDR such as 10.0.0.0/8, got %q", tp)
		}
	}
	if *s.MaxConnections < 0 || s.MaxConnectionsPerIP < 0 {
		v.add("server.max_connections", "connection limits must not be negative")
	}
	if s.MaxHeaderCount < 16 {
		v.add("server.max_header_count", "must be at least 16, got %d", s.MaxHeaderCount)
	}
	if n := s.HTTP2MaxConcurrentStreams; n < 1 || n > 10000 {
		v.add("server.http2_max_concurrent_streams", "must be between 1 and 10000, got %d", n)
	}
	if s.MaxHeaderBytes < 1024 {
		v.add("server.max_header_bytes", "must be at least 1KiB")
	}
	if s.MaxHeaderLineBytes < 256 || s.MaxHeaderLineBytes > s.MaxHeaderBytes {
		v.add("server.max_header_line_bytes", "must be at least 256 bytes and at most max_header_bytes (%d), got %d", int64(s.MaxHeaderBytes), int64(s.MaxHeaderLineBytes))
	}
	v.headerValues("server.security_headers", s.SecurityHeaders)
}

// ParseStatusRange parses "200" or "200-399".
func ParseStatusRange(s string) (lo, hi int, ok bool) {
	a, b, found := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := lo, error(nil)
	if found {
		hi, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	if err1 != nil || err2 != nil || lo < 100 || hi > 599 || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// ParsePrefix parses an IP ("10.0.0.1") or CIDR ("10.0.0.0/8") into a prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func checkHostPort(s string, allowEmptyHost bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("expected host:port such as 127.0.0.1:3002, got %q", RedactURL(s))
	}
	if host == "" && !allowEmptyHost {
		return fmt.Sprintf("missing host in %q", RedactURL(s))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !allowEmptyHost) {
		return fmt.Sprintf("bad port in %q", RedactURL(s))
	}
	return ""
}

func (v *validator) upstream(name string, u *Upstream) {
	p := join("upstreams", name)
	if !nameRe.MatchString(name) {
		v.add(p, "upstream names use letters, digits, '.', '_' and '-'")
	}
	if u != nil && u.TLS != nil {
		t := u.TLS
		for _, f := range []struct{ key, path string }{{"ca", t.CA}, {"cert", t.Cert}, {"key", t.Key}} {
			if f.path == "" {
				continue
			}
			v.readable(p+".tls."+f.key, f.path)
		}
		if (t.Cert == "") != (t.Key == "") {
			v.add(p+".tls", "cert and key go together")
		}
	}
	if u == nil || (len(u.Targets) == 0 && u.Discovery == nil) {
		v.add(p+".targets", "at least one target (host:port) is required, or a discovery")
		return
	}
	if d := u.Discovery; d != nil {
		dp := p + ".discovery"
		if !dnsNameRe.MatchString(strings.TrimSuffix(d.Name, ".")) {
			v.add(dp+".name", "expected a DNS name, got %q", d.Name)
		}
		switch strings.ToUpper(d.Type) {
		case "A":
			if d.Port < 1 || d.Port > 65535 {
				v.add(dp+".port", "a port is required for type A")
			}
		case "SRV":
			if d.Port != 0 {
				v.add(dp+".port", "SRV records carry their own ports")
			}
		default:
			v.add(dp+".type", `must be "A" or "SRV", got %q`, d.Type)
		}
		if d.Interval.D() < 100*time.Millisecond {
			v.add(dp+".interval", "must be at least 100ms")
		}
		if d.Resolver != "" {
			if err := checkHostPort(d.Resolver, false); err != "" {
				v.add(dp+".resolver", "%s", err)
			}
		}
	}
	seen := map[string]int{}
	primaries := 0
	for i, t := range u.Targets {
		tp := fmt.Sprintf("%s.targets[%d]", p, i)
		if err := checkHostPort(t.Address, false); err != "" {
			v.add(tp+".address", "%s", err)
		}
		if j, dup := seen[t.Address]; dup {
			v.add(tp+".address", "duplicate target (also targets[%d]); use weight instead", j)
		}
		seen[t.Address] = i
		if t.Weight < 1 || t.Weight > 1000 {
			v.add(tp+".weight", "must be between 1 and 1000, got %d", t.Weight)
		}
		if !t.Backup {
			primaries++
		}
	}
	if primaries == 0 && len(u.Targets) > 0 && u.Discovery == nil {
		v.add(p+".targets", "every target is a backup; at least one must be a primary")
	}
	switch u.Balancer {
	case "round_robin", "weighted_round_robin", "least_requests", "p2c_ewma", "consistent_hash":
	default:
		v.add(p+".balancer", "unknown balancer %q (known: round_robin, weighted_round_robin, least_requests, p2c_ewma, consistent_hash)", u.Balancer)
	}
	if u.HashKey != "" {
		kind, name, _ := strings.Cut(u.HashKey, ":")
		switch {
		case u.Balancer != "consistent_hash":
			v.add(p+".hash_key", "only used with balancer: consistent_hash")
		case (kind == "client_ip" || kind == "path") && name == "":
		case (kind == "header" || kind == "cookie") && tokenRe.MatchString(name):
		default:
			v.add(p+".hash_key", `expected client_ip, path, "header:<Name>" or "cookie:<name>", got %q`, u.HashKey)
		}
	}
	if a := u.Health.Active; a != nil {
		ap := p + ".health.active"
		switch a.Type {
		case "tcp", "http":
		default:
			v.add(ap+".type", `must be "tcp" or "http", got %q`, a.Type)
		}
		if a.Interval.D() < 100*time.Millisecond {
			v.add(ap+".interval", "must be at least 100ms")
		}
		if a.Timeout.D() > a.Interval.D() {
			v.add(ap+".timeout", "must not exceed the interval")
		}
		if a.Rise < 1 || a.Fall < 1 {
			v.add(ap, "rise and fall must be at least 1")
		}
		if a.Type == "http" {
			if !strings.HasPrefix(a.Path, "/") {
				v.add(ap+".path", "must start with /")
			}
			if !tokenRe.MatchString(a.Method) {
				v.add(ap+".method", "%q is not a method", a.Method)
			}
			for i, es := range a.ExpectStatus {
				if _, _, ok := ParseStatusRange(es); !ok {
					v.add(fmt.Sprintf("%s.expect_status[%d]", ap, i), `expected a status or range such as "200" or "200-399", got %q`, es)
				}
			}
		} else if a.Path != "" || a.BodyContains != "" || len(a.ExpectStatus) > 0 {
			v.add(ap, "path, expect_status and body_contains need type: http")
		}
	}
	ps := u.Health.Passive
	if *ps.ConsecutiveFailures < 0 {
		v.add(p+".health.passive.consecutive_failures", "must not be negative")
	}
	if m := *ps.MaxEjectionPercent; m < 0 || m > 100 {
		v.add(p+".health.passive.max_ejection_percent", "must be between 0 and 100")
	}
	if s := u.Health.MinHealthyShare; s < 0 || s > 1 {
		v.add(p+".health.min_healthy_share", "must be between 0 and 1")
	}
	if a := u.Retries.Attempts; a < 1 || a > 10 {
		v.add(p+".retries.attempts", "must be between 1 and 10, got %d", a)
	}
	for i, st := range u.Retries.OnStatus {
		if st < 500 || st > 599 {
			v.add(fmt.Sprintf("%s.retries.on_status[%d]", p, i), "only 5xx statuses can be retried, got %d", st)
		}
	}
	if u.MaxIdlePerTarget < 0 {
		v.add(p+".max_idle_per_target", "must not be negative")
	}
	if b := u.MaxResponseHeaderBytes; b < 1024 || b > 1<<20 {
		v.add(p+".max_response_header_bytes", "must be between 1KiB and 1MiB, got %d", int64(b))
	}
	if n := u.MaxResponseHeaderCount; n < 16 || n > 10000 {
		v.add(p+".max_response_header_count", "must be between 16 and 10000, got %d", n)
	}
	switch u.Host {
	case "preserve", "target":
	default:
		if !hostnameRe.MatchString(u.Host) && checkHostPort(u.Host, false) != "" {
			v.add(p+".host", `expected "preserve", "target" or a host name, got %q`, u.Host)
		}
	}
}

func (v *validator) route(p string, r *Route) {
	if r.Name == "" {
		v.add(p+".name", "required")
	} else if !nameRe.MatchString(r.Name) {
		v.add(p+".name", "route names use letters, digits, '.', '_' and '-'")
	}
	v.match(p+".match", &r.Match)

	var actions []string
	if r.Upstream != "" {
		actions = append(actions, "upstream")
	}
	if r.API != nil {
		actions = append(actions, "api")
	}
	if r.Static != nil {
		actions = append(actions, "static")
	}
	if r.Redirect != nil {
		actions = append(actions, "redirect")
	}
	if r.Respond != nil {
		actions = append(actions, "respond")
	}
	switch len(actions) {
	case 0:
		v.add(p, "needs an action: one of upstream, api, static, redirect, respond")
	case 1:
	default:
		v.add(p, "has %s; a route takes exactly one action", strings.Join(actions, " and "))
	}

	if r.Upstream != "" {
		v.upstreamRef(p+".upstream", r.Upstream)
	}
	if (r.StripPrefix || r.Rewrite != "") && r.Upstream == "" {
		v.add(p, "strip_prefix and rewrite apply to upstream routes only")
	}
	if r.StripPrefix && r.Rewrite != "" {
		v.add(p+".rewrite", "use strip_prefix or rewrite, not both")
	}
	if r.Rewrite != "" && !strings.HasPrefix(r.Rewrite, "/") {
		v.add(p+".rewrite", "must start with /")
	}
	if r.AllowPathParams && r.Upstream == "" {
		v.add(p+".allow_path_params", "applies to upstream routes only")
	}
	if r.AllowPathParams && (r.StripPrefix || r.Rewrite != "") {
		v.add(p+".allow_path_params", "not with strip_prefix or rewrite: the path sent upstream keeps its parameters as they came")
	}
	if (r.StripPrefix || r.Rewrite != "") && r.Match.PathPrefix == "" && r.Match.Path == "" {
		v.add(p, "strip_prefix and rewrite need match.path_prefix or match.path")
	}
	if a := r.API; a != nil {
		v.api(p, r)
	}
	if st := r.Static; st != nil {
		if st.Root == "" {
			v.add(p+".static.root", "required")
		} else if fi, err := os.Stat(st.Root); err != nil || !fi.IsDir() {
			v.add(p+".static.root", "%q is not a readable directory", st.Root)
		}
		if strings.ContainsAny(st.Index, `/\`) {
			v.add(p+".static.index", "must be a file name, not a path")
		}
	}
	if rd := r.Redirect; rd != nil {
		if rd.To == "" {
			v.add(p+".redirect.to", "required")
		} else if strings.ContainsAny(rd.To, "\r\n") {
			v.add(p+".redirect.to", "must not contain line breaks")
		}
		if !slices.Contains([]int{301, 302, 303, 307, 308}, rd.Status) {
			v.add(p+".redirect.status", "must be 301, 302, 303, 307 or 308; got %d", rd.Status)
		}
	}
	if rs := r.Respond; rs != nil && (rs.Status < 200 || rs.Status > 599) {
		v.add(p+".respond.status", "must be between 200 and 599; got %d", rs.Status)
	}
	if a := r.Auth; a != nil {
		v.routeAuth(p+".auth", a)
	}
	for i, n := range r.RateLimits {
		v.limitRef(fmt.Sprintf("%s.rate_limits[%d]", p, i), n)
	}
	// Identity headers are Gatehouse's own on routes that authenticate.
	v.edits(p+".request_headers", &r.RequestHeaders, r.Auth != nil && r.Auth.Mode != "none")
	v.edits(p+".response_headers", &r.ResponseHeaders, false)
	v.headerValues(p+".security_headers", r.SecurityHeaders)
}

func (v *validator) upstreamRef(path, name string) { v.ref(path, "upstream", name, v.upstreams) }

// ref reports name at path unless it is one of defined (a kind of thing
// the config names elsewhere), suggesting the likeliest typo fix.
func (v *validator) ref(path, kind, name string, defined []string) {
	if slices.Contains(defined, name) {
		return
	}
	msg := fmt.Sprintf("unknown %s %q", kind, name)
	if s := suggest(name, defined); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	} else if len(defined) > 0 {
		msg += fmt.Sprintf(" (defined: %s)", strings.Join(defined, ", "))
	}
	v.add(path, "%s", msg)
}

func (v *validator) api(p string, r *Route) {
	a := r.API
	if r.Match.PathPrefix == "" {
		v.add(p+".match.path_prefix", "an api route needs a path_prefix, such as /api")
	}
	if len(a.Services) == 0 {
		v.add(p+".api.services", "at least one service is required")
	}
	svcs := make([]string, 0, len(a.Services))
	for s := range a.Services {
		svcs = append(svcs, s)
	}
	sort.Strings(svcs)
	for _, s := range svcs {
		sp := join(p+".api.services", s)
		if !segmentRe.MatchString(s) || s == "." || s == ".." {
			v.add(sp, "a service name is one path segment of letters, digits and -._~")
		}
		v.upstreamRef(sp, a.Services[s])
	}
	if !strings.HasPrefix(a.Rewrite, "/") && !strings.HasPrefix(a.Rewrite, "{prefix}") {
		v.add(p+".api.rewrite", "must start with / or {prefix}")
	}
	for _, ph := range placeRe.FindAllString(a.Rewrite, -1) {
		if ph != "{prefix}" && ph != "{service}" && ph != "{rest}" {
			v.add(p+".api.rewrite", "unknown placeholder %s (known: {prefix}, {service}, {rest})", ph)
		}
	}
	if strings.ContainsAny(placeRe.ReplaceAllString(a.Rewrite, ""), "{}") {
		v.add(p+".api.rewrite", "a { or } outside a placeholder (known: {prefix}, {service}, {rest})")
	}
}

func (v *validator) match(p string, m *Match) {
	if m.PathPrefix != "" && m.Path != "" {
		v.add(p, "use path_prefix or path, not both")
	}
	if m.PathPrefix != "" {
		if msg := checkPath(m.PathPrefix); msg != "" {
			v.add(p+".path_prefix", "%s", msg)
		}
	}
	if m.Path != "" {
		if msg := checkPath(m.Path); msg != "" {
			v.add(p+".path", "%s", msg)
		}
	}
	for i, h := range m.Host {
		if h != strings.ToLower(h) {
			v.add(fmt.Sprintf("%s.host[%d]", p, i), "host names are matched case-insensitively; write %q", strings.ToLower(h))
		} else if !hostnameRe.MatchString(h) {
			v.add(fmt.Sprintf("%s.host[%d]", p, i), "expected a host name or *.domain wildcard without port, got %q", h)
		}
	}
	for i, meth := range m.Methods {
		mp := fmt.Sprintf("%s.methods[%d]", p, i)
		switch {
		case !tokenRe.MatchString(meth):
			v.add(mp, "%q is not a method name", meth)
		case meth != strings.ToUpper(meth) && slices.Contains(standardMethods, strings.ToUpper(meth)):
			v.add(mp, "method names are case-sensitive (did you mean %q?)", strings.ToUpper(meth))
		case meth != strings.ToUpper(meth):
			v.add(mp, "requests with a lower-case letter in the method are answered 400 before routing; write %q", strings.ToUpper(meth))
		}
	}
	for name, val := range m.Headers {
		if !tokenRe.MatchString(name) {
			v.add(join(p+".headers", name), "%q is not a header name", name)
		}
		if strings.ContainsAny(val, "\r\n\x00") {
			v.add(join(p+".headers", name), "value must not contain control characters")
		}
	}
}

// checkPath requires a path in the form the normalizer produces, so a
// route can only be written for a path a request can actually have.
func checkPath(s string) string {
	switch {
	case !strings.HasPrefix(s, "/"):
		return fmt.Sprintf("must start with /, got %q", s)
	case strings.Contains(s, "//"):
		return "must not contain //"
	case strings.ContainsAny(s, "?#%\\ \t"):
		return "must be a plain path without ?, #, %, \\ or spaces"
	case strings.Contains(s, ";"):
		return "must not contain ; (requests with path parameters are routed on the path without them)"
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "." || seg == ".." {
			return "must not contain . or .. segments"
		}
	}
	return ""
}

// edits checks header edits; identity says the route authenticates, so
// its identity headers may not be edited.
func (v *validator) edits(p string, e *HeaderEdits, identity bool) {
	check := func(path, name string) {
		switch {
		case !tokenRe.MatchString(name):
			v.add(path, "%q is not a header name", name)
		case slices.Contains(hopByHop, strings.ToLower(name)):
			v.add(path, "%s is managed by Gatehouse and cannot be edited here", name)
		case identity && slices.Contains(v.identity, strings.ToLower(name)):
			v.add(path, "%s is an identity header on this route: Gatehouse sets it from the verified token, after every edit (rename it or turn it off under auth.identity_headers)", name)
		}
	}
	for name := range e.Set {
		check(join(p+".set", name), name)
	}
	for name := range e.Add {
		check(join(p+".add", name), name)
	}
	for i, name := range e.Remove {
		check(fmt.Sprintf("%s.remove[%d]", p, i), name)
	}
	v.headerValues(p+".set", e.Set)
	v.headerValues(p+".add", e.Add)
}

func (v *validator) headerValues(p string, m map[string]string) {
	for name, val := range m {
		if !tokenRe.MatchString(name) {
			v.add(join(p, name), "%q is not a header name", name)
		}
		if strings.ContainsAny(val, "\r\n\x00") {
			v.add(join(p, name), "value must not contain control characters")
		}
	}
}

// matchKey is a canonical form of a match, for finding duplicates.
func matchKey(m *Match) string {
	hosts := slices.Clone(m.Host)
	sort.Strings(hosts)
	meths := slices.Clone(m.Methods)
	sort.Strings(meths)
	hdrs := make([]string, 0, len(m.Headers))
	for k, val := range m.Headers {
		hdrs = append(hdrs, strings.ToLower(k)+"="+val)
	}
	sort.Strings(hdrs)
	return fmt.Sprintf("%q|%q|%q|%q|%q", hosts, m.PathPrefix, m.Path, meths, hdrs)
}

var allowedAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func (v *validator) auth(a *Auth) {
	names := make([]string, 0, len(a.Issuers))
	for n := range a.Issuers {
		names = append(names, n)
	}
	sort.Strings(names)
	v.issuers = names
	for _, n := range names {
		is := a.Issuers[n]
		p := join("auth.issuers", n)
		if is == nil {
			v.add(p, "empty issuer")
			continue
		}
		if u, err := url.Parse(is.Issuer); err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			v.add(p+".issuer", "expected the issuer URL, such as https://auth.example.com, got %q", RedactURL(is.Issuer))
		} else if u.Scheme != "https" && !isLoopbackHost(u.Hostname()) {
			v.add(p+".issuer", "must be https (http is allowed for loopback addresses only)")
		} else if u.User != nil {
			v.add(p+".issuer", noCredentials)
		}
		if is.JWKSURI != "" {
			if u, err := url.Parse(is.JWKSURI); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
				v.add(p+".jwks_uri", "expected an https URL, got %q", RedactURL(is.JWKSURI))
			} else if u.User != nil {
				v.add(p+".jwks_uri", noCredentials)
			}
		}
		if in := is.Introspection; in != nil {
			if in.ClientID == "" || in.ClientSecret == "" {
				v.add(p+".introspection", "client_id and client_secret are required")
			}
			if in.Endpoint != "" {
				if u, err := url.Parse(in.Endpoint); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) {
					v.add(p+".introspection.endpoint", "expected an https URL, got %q", RedactURL(in.Endpoint))
				} else if u.User != nil {
					v.add(p+".introspection.endpoint", noCredentials)
				}
			}
		}
		if is.Audience == "" {
			v.add(p+".audience", "required: tokens for other resources must not be accepted here")
		}
		for i, alg := range is.Algorithms {
			if !slices.Contains(allowedAlgs, alg) {
				v.add(fmt.Sprintf("%s.algorithms[%d]", p, i), "%q is not allowed (asymmetric algorithms only: %s)", alg, strings.Join(allowedAlgs, ", "))
			}
		}
	}
	// Identity headers are written after every other header of the
	// upstream request, so none may be one Gatehouse sets or frames with,
	// and no two may be the same.
	taken := map[string]string{}
	if t := v.doc.Config.Server.TLS; t != nil {
		for i, ca := range t.ClientAuth {
			if ca != nil { // an empty entry is reported with server.tls
				taken[strings.ToLower(ca.SubjectHeader)] = fmt.Sprintf("server.tls.client_auth[%d].subject_header", i)
			}
		}
	}
	ih := a.IdentityHeaders
	for _, e := range []struct{ key, h string }{{"subject", ih.Subject}, {"roles", ih.Roles},
		{"scopes", ih.Scopes}, {"client", ih.Client}, {"issuer", ih.Issuer}} {
		if e.h != "off" {
			v.identityName("auth.identity_headers."+e.key, e.h, taken)
		}
	}
	if a.CacheSize < 0 {
		v.add("auth.cache_size", "must not be negative (0 turns the cache off)")
	}
	if a.CacheTTL <= 0 {
		v.add("auth.cache_ttl", "must be positive, got %s (to turn the cache off, set auth.cache_size: 0)", a.CacheTTL.D())
	}
	if a.Login != nil {
		v.login(a.Login)
	}
	if ia := a.IdentityAssertion; ia != nil {
		v.identityName("auth.identity_assertion.header", ia.Header, taken)
		if ia.TTL < Duration(time.Second) || ia.TTL > Duration(time.Hour) {
			v.add("auth.identity_assertion.ttl", "must be between 1s and 1h, got %s", ia.TTL.D())
		}
		if ia.KeyFile != "" {
			v.readable("auth.identity_assertion.key_file", ia.KeyFile)
		}
	}
	if pr := a.ProtectedResource; pr != nil {
		v.protectedResource(pr)
	}
}

func (v *validator) protectedResource(pr *ProtectedResource) {
	const p = "auth.protected_resource"
	if u, err := url.Parse(pr.Resource); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) ||
		u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		v.add(p+".resource", "expected an https URL without query or fragment (RFC 9728 §2), got %q", RedactURL(pr.Resource))
	}
	for i, n := range pr.AuthorizationServers {
		v.ref(fmt.Sprintf("%s.authorization_servers[%d]", p, i), "issuer", n, v.issuers)
	}
	for i, s := range pr.ScopesSupported {
		if s == "" || strings.ContainsAny(s, " \"\\") {
			v.add(fmt.Sprintf("%s.scopes_supported[%d]", p, i), "scopes are single words, got %q", s)
		}
	}
	if d := pr.ResourceDocumentation; d != "" {
		if u, err := url.Parse(d); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.add(p+".resource_documentation", "expected an http(s) URL, got %q", RedactURL(d))
		}
	}
}

// login checks auth.login. Secrets are never echoed in messages.
func (v *validator) login(l *Login) {
	const p = "auth.login"
	if l.Issuer == "" {
		v.add(p+".issuer", "required when more than one issuer is configured")
	} else {
		v.ref(p+".issuer", "issuer", l.Issuer, v.issuers)
	}
	if l.ClientID == "" {
		v.add(p+".client_id", "required: Gatehouse's client_id at the issuer")
	}
	u, err := url.Parse(l.RedirectURL)
	switch {
	case l.RedirectURL == "":
		v.add(p+".redirect_url", "required: the callback URL registered at the issuer, such as https://gw.example.com/_gatehouse/callback")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		v.add(p+".redirect_url", "expected an absolute http(s) URL without query or fragment, got %q", RedactURL(l.RedirectURL))
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		v.add(p+".redirect_url", "must be https (http is allowed for loopback addresses only): the session cookie must not travel in clear")
	case u.Path == "" || u.Path == "/":
		v.add(p+".redirect_url", "needs a path for Gatehouse to serve, such as /_gatehouse/callback")
	}
	paths := map[string]string{"redirect_url": "", "login_path": l.LoginPath, "logout_path": l.LogoutPath}
	if err == nil {
		paths["redirect_url"] = u.Path
	}
	seen := map[string]string{}
	for _, k := range []string{"redirect_url", "login_path", "logout_path"} {
		pth := paths[k]
		if pth == "" {
			continue
		}
		if k != "redirect_url" && (!strings.HasPrefix(pth, "/") || strings.ContainsAny(pth, "?# ")) {
			v.add(p+"."+k, "expected an absolute path such as /_gatehouse/login, got %q", pth)
		}
		if other, dup := seen[pth]; dup {
			v.add(p+"."+k, "same path as %s (%s)", other, pth)
		}
		seen[pth] = k
	}
	if len(l.CookieSecret) < 32 {
		v.add(p+".cookie_secret", "must be at least 32 characters of random text (openssl rand -base64 32); got %d", len(l.CookieSecret))
	}
	if !tokenRe.MatchString(l.CookieName) || strings.HasPrefix(strings.ToLower(l.CookieName), "__host-") || strings.HasPrefix(strings.ToLower(l.CookieName), "__secure-") {
		v.add(p+".cookie_name", "expected a cookie name without a __Host-/__Secure- prefix (added over https), got %q", l.CookieName)
	}
	if l.PostLogoutRedirectURL != "" {
		if pu, err := url.Parse(l.PostLogoutRedirectURL); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || pu.Fragment != "" {
			v.add(p+".post_logout_redirect_url", "expected an absolute http(s) URL, got %q", RedactURL(l.PostLogoutRedirectURL))
		}
	}
	if l.Resource != "" {
		if ru, err := url.Parse(l.Resource); err != nil || !ru.IsAbs() || ru.Fragment != "" {
			v.add(p+".resource", "expected an absolute URI without fragment (RFC 8707), got %q", RedactURL(l.Resource))
		}
	}
	for i, s := range l.Scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") {
			v.add(fmt.Sprintf("%s.scopes[%d]", p, i), "scopes are single words, got %q", s)
		}
	}
	if !slices.Contains(l.Scopes, "openid") {
		v.add(p+".scopes", "must include openid: Gatehouse verifies the ID token to know who logged in")
	}
	switch l.Store {
	case "memory":
	case "redis":
		if v.doc.Config.Redis == nil {
			v.add(p+".store", "redis needs the top-level redis section")
		}
	default:
		v.add(p+".store", `must be "memory" or "redis", got %q`, l.Store)
	}
	if l.MaxSessions < 0 {
		v.add(p+".max_sessions", "must not be negative")
	}
	for k, d := range map[string]Duration{"refresh_margin": l.RefreshMargin, "max_lifetime": l.MaxLifetime, "flow_timeout": l.FlowTimeout, "timeout": l.Timeout} {
		if d < 0 {
			v.add(p+"."+k, "must not be negative")
		}
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

func (v *validator) routeAuth(p string, a *RouteAuth) {
	switch a.Mode {
	case "none", "optional", "required":
	default:
		v.add(p+".mode", `must be "none", "optional" or "required", got %q`, a.Mode)
	}
	if a.Mode != "none" && len(v.issuers) == 0 {
		v.add(p, "no issuers configured: add auth.issuers")
	}
	for i, n := range a.Issuers {
		v.ref(fmt.Sprintf("%s.issuers[%d]", p, i), "issuer", n, v.issuers)
	}
	for i, c := range a.Accept {
		switch c {
		case "bearer":
		case "session":
			if v.doc.Config.Auth.Login == nil {
				v.add(fmt.Sprintf("%s.accept[%d]", p, i), "session needs auth.login (browser login) to be configured")
			} else if l := v.doc.Config.Auth.Login; l.Issuer != "" && !slices.Contains(a.Issuers, l.Issuer) {
				v.add(fmt.Sprintf("%s.accept[%d]", p, i), "session tokens come from issuer %q, which this route does not accept (issuers)", l.Issuer)
			}
		default:
			v.add(fmt.Sprintf("%s.accept[%d]", p, i), `must be "bearer" or "session", got %q`, c)
		}
	}
	if a.ForwardSessionToken && !slices.Contains(a.Accept, "session") {
		v.add(p+".forward_session_token", `only applies to routes that accept "session"`)
	}
	if a.OnIntrospectionError != "unavailable" && a.OnIntrospectionError != "deny" {
		v.add(p+".on_introspection_error", `must be "unavailable" or "deny", got %q`, a.OnIntrospectionError)
	}
	if a.ResourceMetadata != "" {
		if u, err := url.Parse(a.ResourceMetadata); err != nil || u.Scheme == "" || strings.ContainsAny(a.ResourceMetadata, "\"\r\n ") {
			v.add(p+".resource_metadata", "expected a URL, got %q", RedactURL(a.ResourceMetadata))
		}
	}
	for _, s := range a.Scopes {
		if s == "" || strings.ContainsAny(s, " \"") {
			v.add(p+".scopes", "scopes are single words")
		}
	}
}

// ParseRate parses "100/s", "600/m", "1000/h" into requests per second.
func ParseRate(s string) (float64, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if !ok || err != nil || f <= 0 {
		return 0, fmt.Errorf("bad rate %q", s)
	}
	switch strings.TrimSpace(unit) {
	case "s":
		return f, nil
	case "m":
		return f / 60, nil
	case "h":
		return f / 3600, nil
	}
	return 0, fmt.Errorf("bad rate %q", s)
}

func (v *validator) rateLimits(c *Config) {
	names := make([]string, 0, len(c.RateLimits))
	for n := range c.RateLimits {
		names = append(names, n)
	}
	sort.Strings(names)
	v.limits = names
	for _, n := range names {
		rl := c.RateLimits[n]
		p := join("rate_limits", n)
		if rl == nil {
			v.add(p, "empty policy")
			continue
		}
		switch _, err := ParseRate(rl.Rate); {
		case rl.Rate == "" && rl.Concurrency == 0:
			v.add(p, "needs a rate (such as 100/s), a concurrency, or both")
		case rl.Rate != "" && err != nil:
			v.add(p+".rate", `expected a rate such as "100/s", "600/m" or "1000/h", got %q`, rl.Rate)
		}
		if rl.Concurrency < 0 {
			v.add(p+".concurrency", "must not be negative")
		}
		if rl.Burst < 0 {
			v.add(p+".burst", "must not be negative")
		}
		for _, part := range strings.Split(rl.Key, "+") {
			kind, name, _ := strings.Cut(part, ":")
			switch {
			case (kind == "client_ip" || kind == "user" || kind == "client_id" || kind == "route") && name == "":
			case kind == "header" && tokenRe.MatchString(name):
			default:
				v.add(p+".key", `expected client_ip, user, client_id, route or header:<Name>, joined with "+", got %q`, rl.Key)
			}
		}
		if rl.Mode != "enforce" && rl.Mode != "soft" {
			v.add(p+".mode", `must be "enforce" or "soft", got %q`, rl.Mode)
		}
		if rl.IPv6Prefix < 1 || rl.IPv6Prefix > 128 {
			v.add(p+".ipv6_prefix", "must be between 1 and 128")
		}
		if rl.MaxKeys < 64 {
			v.add(p+".max_keys", "must be at least 64")
		}
		switch rl.Store {
		case "memory":
		case "redis":
			if c.Redis == nil {
				v.add(p+".store", "store: redis needs a top-level redis: { url: ... }")
			}
		default:
			v.add(p+".store", `must be "memory" or "redis", got %q`, rl.Store)
		}
		if rl.OnStoreError != "local" && rl.OnStoreError != "deny" {
			v.add(p+".on_store_error", `must be "local" or "deny", got %q`, rl.OnStoreError)
		}
	}
	if r := c.Redis; r != nil {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			v.add("redis.url", "expected redis://host:port/db or rediss://...")
		}
		for i, n := range r.ClusterNodes {
			if e := checkHostPort(n, false); e != "" {
				v.add(fmt.Sprintf("redis.cluster_nodes[%d]", i), "%s", e)
			}
		}
		if s := r.Sentinel; s != nil {
			if len(r.ClusterNodes) > 0 {
				v.add("redis.sentinel", "cluster_nodes and sentinel exclude each other")
			}
			if s.Master == "" {
				v.add("redis.sentinel.master", "required: the primary's name in the Sentinels' configuration")
			}
			if len(s.Nodes) == 0 {
				v.add("redis.sentinel.nodes", "required: the Sentinels' host:port addresses")
			}
			for i, n := range s.Nodes {
				if e := checkHostPort(n, false); e != "" {
					v.add(fmt.Sprintf("redis.sentinel.nodes[%d]", i), "%s", e)
				}
			}
		}
	}
	for i, n := range c.Server.RateLimits {
		v.limitRef(fmt.Sprintf("server.rate_limits[%d]", i), n)
	}
}

func (v *validator) limitRef(path, name string) { v.ref(path, "rate limit", name, v.limits) }

// tls checks server.tls. Certificate files must exist (their contents are
// checked when they are loaded, with the file named in the error).
func (v *validator) tls(s *Server) {
	const p = "server.tls"
	t := s.TLS
	for i, l := range t.Listen {
		if err := checkHostPort(l, true); err != "" {
			v.add(fmt.Sprintf("%s.listen[%d]", p, i), "%s", err)
		} else if slices.Contains(s.Listen, l) {
			v.add(fmt.Sprintf("%s.listen[%d]", p, i), "%s is also a plain HTTP listener (server.listen)", l)
		}
	}
	if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
		v.add(p+".min_version", `must be "1.2" or "1.3" (older versions are never allowed), got %q`, t.MinVersion)
	}
	if len(t.Certificates) == 0 && t.ACME == nil {
		v.add(p, "needs certificates, acme, or both")
	}
	for i, c := range t.Certificates {
		for _, f := range []struct{ key, path string }{{"cert", c.Cert}, {"key", c.Key}} {
			if f.path == "" {
				v.add(fmt.Sprintf("%s.certificates[%d].%s", p, i, f.key), "required: a PEM file")
			} else {
				v.readable(fmt.Sprintf("%s.certificates[%d].%s", p, i, f.key), f.path)
			}
		}
	}
	seenHost := map[string]int{}
	for i, ca := range t.ClientAuth {
		q := fmt.Sprintf("%s.client_auth[%d]", p, i)
		if ca == nil {
			v.add(q, "empty entry")
			continue
		}
		if len(ca.Hosts) == 0 {
			v.add(q+".hosts", "required: the hosts that need client certificates")
		}
		for j, h := range ca.Hosts {
			h = strings.ToLower(h)
			if !hostnameRe.MatchString(h) || strings.HasPrefix(h, "*.") {
				v.add(fmt.Sprintf("%s.hosts[%d]", q, j), "expected an exact host name, got %q", h)
			}
			if k, dup := seenHost[h]; dup {
				v.add(fmt.Sprintf("%s.hosts[%d]", q, j), "%s is also in client_auth[%d]", h, k)
			}
			seenHost[h] = i
		}
		if ca.Mode != "require" && ca.Mode != "optional" {
			v.add(q+".mode", `must be "require" or "optional", got %q`, ca.Mode)
		}
		if ca.CA == "" {
			v.add(q+".ca", "required: the PEM roots that sign client certificates")
		} else {
			v.readable(q+".ca", ca.CA)
		}
		if !tokenRe.MatchString(ca.SubjectHeader) {
			v.add(q+".subject_header", "%q is not a header name", ca.SubjectHeader)
		}
	}
	if t.HSTS.MaxAge < 0 {
		v.add(p+".hsts.max_age", "must not be negative")
	}
	if t.HSTS.Preload && (!t.HSTS.IncludeSubdomains || t.HSTS.MaxAge.D() < 365*24*time.Hour) {
		v.add(p+".hsts.preload", "preload lists require include_subdomains and a max_age of at least 365 days")
	}
	for i, h := range t.PlainHosts {
		if !hostnameRe.MatchString(strings.ToLower(h)) && net.ParseIP(h) == nil {
			v.add(fmt.Sprintf("%s.plain_hosts[%d]", p, i), "expected a host name, got %q", h)
		}
		if k, ok := seenHost[strings.ToLower(h)]; ok && t.ClientAuth[k] != nil && t.ClientAuth[k].Mode == "require" {
			v.add(fmt.Sprintf("%s.plain_hosts[%d]", p, i), "%s requires client certificates (client_auth[%d]), which plain HTTP cannot carry", h, k)
		}
	}
	if a := t.ACME; a != nil {
		if len(a.Names) == 0 {
			v.add(p+".acme.names", "required: the names to obtain certificates for")
		}
		for i, n := range a.Names {
			if !hostnameRe.MatchString(strings.ToLower(n)) || strings.HasPrefix(n, "*.") {
				v.add(fmt.Sprintf("%s.acme.names[%d]", p, i), "expected a DNS name (wildcards need DNS-01, which Gatehouse does not do), got %q", n)
			}
		}
		if u, err := url.Parse(a.Directory); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) || u.Host == "" {
			v.add(p+".acme.directory", "expected the CA's https directory URL, got %q", RedactURL(a.Directory))
		}
		if a.CARoot != "" {
			v.readable(p+".acme.ca_root", a.CARoot)
		}
		if len(a.Challenges) == 0 {
			v.add(p+".acme.challenges", "at least one of http-01, tls-alpn-01")
		}
		for i, c := range a.Challenges {
			if c != "http-01" && c != "tls-alpn-01" {
				v.add(fmt.Sprintf("%s.acme.challenges[%d]", p, i), `must be "http-01" or "tls-alpn-01", got %q`, c)
			}
		}
		if a.RenewCheckInterval < Duration(time.Second) {
			v.add(p+".acme.renew_check_interval", "must be at least 1s")
		}
		if a.RenewalWindowRatio <= 0 || a.RenewalWindowRatio >= 1 {
			v.add(p+".acme.renewal_window_ratio", "must be between 0 and 1, got %v", a.RenewalWindowRatio)
		}
	}
}

// readable reports a file named at path that cannot be opened; its
// contents are checked where they are loaded, with the file named.
func (v *validator) readable(path, file string) {
	f, err := os.Open(file)
	if err != nil {
		v.add(path, "cannot read %s: %v", file, err)
		return
	}
	f.Close()
}

// gatehouseSet are request headers Gatehouse writes itself (forwarding,
// tracing, credentials it may forward) besides the hop-by-hop ones.
var gatehouseSet = []string{"content-length", "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
	"x-forwarded-port", "x-forwarded-prefix", "x-real-ip", "x-request-id", "traceparent", "tracestate", "authorization", "cookie"}

// identityName checks one identity header name; taken maps the lowercase
// names already used to the key that uses them.
func (v *validator) identityName(path, name string, taken map[string]string) {
	low := strings.ToLower(name)
	switch {
	case !tokenRe.MatchString(name):
		v.add(path, "%q is not a header name", name)
	case slices.Contains(hopByHop, low) || slices.Contains(gatehouseSet, low):
		v.add(path, "%s is a header Gatehouse sets itself (framing, forwarding, tracing or credentials); choose another name", name)
	case taken[low] != "":
		v.add(path, "%s is already used by %s", name, taken[low])
	default:
		taken[low] = path
	}
}
