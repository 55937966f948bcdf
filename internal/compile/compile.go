// Package compile turns a validated config into a runtime.Snapshot: the
// route table, the per-route filter chains, the API templates and handles
// to pools in the Registry.
//
// Compile is pure and deterministic apart from the Registry: it does no I/O
// and starts no goroutine, so `gatehouse validate` runs it to prove a config
// compiles without starting anything.
package compile

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"gatehouse/internal/auth/assert"
	"gatehouse/internal/auth/authn"
	"gatehouse/internal/auth/introspect"
	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/auth/jwt"
	"gatehouse/internal/auth/rbac"
	"gatehouse/internal/config"
	"gatehouse/internal/discovery"
	"gatehouse/internal/filter/headers"
	"gatehouse/internal/health"
	"gatehouse/internal/lb"
	"gatehouse/internal/phase"
	"gatehouse/internal/ratelimit"
	"gatehouse/internal/redisx"
	"gatehouse/internal/route"
	"gatehouse/internal/runtime"
	"gatehouse/internal/tlsx"
)

// NoRoute is the route label of requests answered before any route
// matched (400, 404). Route names cannot contain parentheses.
const NoRoute = "(none)"

// Compile builds a snapshot of doc. reg provides pools; pass
// runtime.NewRegistry(nil, nil) for a throwaway compile.
func Compile(doc *config.Document, reg *runtime.Registry, generation int64) (*runtime.Snapshot, error) {
	c := doc.Config
	snap := &runtime.Snapshot{Generation: generation, Source: doc.File, Pools: map[string]*lb.Pool{},
		Upstreams: map[string]*runtime.Upstream{}}
	for _, tp := range c.Server.TrustedProxies {
		p, err := config.ParsePrefix(tp)
		if err != nil {
			return nil, fmt.Errorf("compile: trusted proxy %q: %w", tp, err)
		}
		snap.Trusted = append(snap.Trusted, p)
	}
	names := make([]string, 0, len(c.Upstreams))
	for n := range c.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		u := c.Upstreams[n]
		s := lb.Settings{
			ConnectTimeout:          u.ConnectTimeout.D(),
			ResponseHeaderTimeout:   u.ResponseHeaderTimeout.D(),
			IdleConnTimeout:         u.IdleConnTimeout.D(),
			MaxIdlePerTarget:        u.MaxIdlePerTarget,
			MaxResponseHeaderBytes:  int64(u.MaxResponseHeaderBytes),
			MaxResponseHeaderFields: u.MaxResponseHeaderCount,
			Balancer:                u.Balancer,
			HashKey:                 u.HashKey,
			SlowStart:               u.SlowStart.D(),
			Failures:                *u.Health.Passive.ConsecutiveFailures,
			EjectionTime:            u.Health.Passive.EjectionTime.D(),
			MaxEjectedPct:           *u.Health.Passive.MaxEjectionPercent,
			OnEject: func(pool string, t *lb.Target, d time.Duration) {
				reg.Events().Warn("target ejected", "upstream", pool, "target", t.Addr, "for", d.String())
			},
		}
		targets := make([]*lb.Target, len(u.Targets))
		for i, t := range u.Targets {
			targets[i] = reg.Target(n, t.Address, t.Weight, t.Backup)
		}
		check := healthConfig(u.Health.Active)
		key := fmt.Sprintf("%s|%+v|%+v|%s/%s|%v|%d|%v|%d|%+v", n, u.Targets, s.ConnectTimeout, s.Balancer, s.HashKey, s.SlowStart,
			s.Failures, s.EjectionTime, s.MaxEjectedPct, check) + fmt.Sprint(s.ResponseHeaderTimeout, s.IdleConnTimeout, s.MaxIdlePerTarget, s.MaxResponseHeaderBytes, s.MaxResponseHeaderFields)
		if ut := u.TLS; ut != nil {
			// The files are part of the pool's identity; the TLS
			// configuration itself is not (a pointer, new at each compile).
			key += fmt.Sprintf("|tls=%+v", *ut)
			tc, err := tlsx.UpstreamConfig(ut.CA, ut.ServerName, ut.Cert, ut.Key)
			if err != nil {
				return nil, fmt.Errorf("compile: upstreams.%s.tls: %w", n, err)
			}
			s.TLS = tc
			if check != nil {
				check.TLS = tc
			}
		}
		var disc *discovery.Config
		if d := u.Discovery; d != nil {
			disc = &discovery.Config{Name: d.Name, Type: d.Type, Port: d.Port, Interval: d.Interval.D(), Resolver: d.Resolver}
			key += fmt.Sprintf("|%+v", *disc)
		}
		snap.Pools[n] = reg.Pool(runtime.PoolSpec{Key: key, Name: n, Check: check, Discover: disc, Static: targets,
			Make: func() *lb.Pool { return lb.NewPool(n, targets, s, reg.Metrics()) }})
		snap.Upstreams[n] = &runtime.Upstream{Retry: retryPolicy(u), MinHealthyShare: u.Health.MinHealthyShare,
			ActiveChecks: check != nil}
	}

	issuers := compileIssuers(c, reg, snap)
	cache := authn.NewCache(c.Auth.CacheSize, c.Auth.CacheTTL.D())
	login, err := compileLogin(c, reg, snap, issuers)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	if err := compileTLS(c, reg, snap); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	metadataURL := compileResourceMetadata(c, reg, snap)
	asserter, err := compileAssertion(c, reg, snap)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	snap.StripHeaders = stripHeaders(c)
	snap.MaxHeaderCount = c.Server.MaxHeaderCount
	snap.MaxHeaderLineBytes = int(c.Server.MaxHeaderLineBytes)

	specs := make([]route.Spec, len(c.Routes))
	for i, rc := range c.Routes {
		specs[i] = config.RouteSpec(rc)
		r, err := compileRoute(c, rc, snap)
		if err != nil {
			return nil, fmt.Errorf("compile: route %s: %w", rc.Name, err)
		}
		pre, post, err := rateLimitFilters(c, rc, reg, snap)
		if err != nil {
			return nil, fmt.Errorf("compile: route %s: %w", rc.Name, err)
		}
		if a := rc.Auth; a != nil && a.Mode != "none" {
			f := &authn.Filter{Route: rc.Name, Mode: a.Mode, ForwardToken: *a.ForwardToken, Preflight: a.Preflight,
				AcceptBearer: slices.Contains(a.Accept, "bearer"), ForwardSessionToken: a.ForwardSessionToken,
				ResourceMetadata: a.ResourceMetadata, Cache: cache, OnIntrospectionError: a.OnIntrospectionError,
				Policy: rbac.Policy{AnyRoles: a.Roles.AnyOf, AllRoles: a.Roles.AllOf, Scopes: a.Scopes, Claims: a.Claims},
				Headers: authn.Headers{Subject: c.Auth.IdentityHeaders.Subject, Roles: c.Auth.IdentityHeaders.Roles,
					Scopes: c.Auth.IdentityHeaders.Scopes, Client: c.Auth.IdentityHeaders.Client, Issuer: c.Auth.IdentityHeaders.Issuer}}
			for _, n := range a.Issuers {
				f.Issuers = append(f.Issuers, issuers[n])
				for i := range snap.Issuers {
					if snap.Issuers[i].Name == n {
						snap.Issuers[i].Routes = append(snap.Issuers[i].Routes, rc.Name)
					}
				}
			}
			if m := reg.Metrics(); m != nil {
				f.Obs = m.Auth()
			}
			if f.ResourceMetadata == "" {
				f.ResourceMetadata = metadataURL
			}
			f.Assertion = asserter
			if slices.Contains(a.Accept, "session") {
				f.Sessions = login
				r.Cancelable = true // logout closes the session's streams
			}
			r.Filters = append(r.Filters, f)
		}
		// Order (ARCHITECTURE.md §8): limits keyed by address run before
		// authentication, so floods are shed before any signature check;
		// limits keyed by identity run after it, so invalid tokens never
		// make per-user buckets.
		r.Filters = append(append(pre, r.Filters...), post...)
		if m := reg.Metrics(); m != nil {
			r.Obs = m.Route(r.Name)
		}
		r.Describe = describe(rc)
		snap.Routes = append(snap.Routes, r)
	}
	snap.Table = route.NewTable(specs)
	snap.Fallback = &runtime.Route{Name: ""}
	if m := reg.Metrics(); m != nil {
		snap.Fallback.Obs = m.Route(NoRoute)
	}
	if sec := headers.NewSecurity(c.Server.SecurityHeaders, nil); sec != nil {
		snap.Fallback.ResponseFilters = []phase.ResponseFilter{sec}
	}
	return snap, nil
}

func hostPolicy(u *config.Upstream) runtime.HostPolicy {
	switch u.Host {
	case "preserve":
		return runtime.HostPolicy{Mode: runtime.HostPreserve}
	case "target":
		return runtime.HostPolicy{Mode: runtime.HostTarget}
	}
	return runtime.HostPolicy{Mode: runtime.HostLiteral, Literal: u.Host}
}

func compileRoute(c *config.Config, rc *config.Route, snap *runtime.Snapshot) (*runtime.Route, error) {
	r := &runtime.Route{
		Name:        rc.Name,
		PathPrefix:  rc.Match.PathPrefix,
		ExactPath:   rc.Match.Path,
		StripPrefix: rc.StripPrefix,
		Rewrite:     rc.Rewrite,
		Timeout:     rc.Timeout.D(),

		AllowPathParams: rc.AllowPathParams,
	}
	if r.PathPrefix == "" && r.ExactPath == "" {
		r.PathPrefix = "/"
	}
	r.MaxBodyBytes = int64(c.Server.MaxBodyBytes)
	if rc.MaxBodyBytes != nil {
		r.MaxBodyBytes = int64(*rc.MaxBodyBytes)
	}
	switch {
	case rc.Upstream != "":
		r.Action = runtime.ActionProxy
		r.Pool = snap.Pools[rc.Upstream]
		r.Retry = snap.Upstreams[rc.Upstream].Retry
		r.HostPolicy = hostPolicy(c.Upstreams[rc.Upstream])
	case rc.API != nil:
		r.Action = runtime.ActionAPI
		api := &runtime.API{
			Prefix:   strings.TrimSuffix(rc.Match.PathPrefix, "/"),
			Services: map[string]*lb.Pool{},
			HostPol:  map[string]runtime.HostPolicy{},
			Retry:    map[string]runtime.RetryPolicy{},
			Template: parseTemplate(rc.API.Rewrite),
		}
		for svc, up := range rc.API.Services {
			api.Services[svc] = snap.Pools[up]
			api.HostPol[svc] = hostPolicy(c.Upstreams[up])
			api.Retry[svc] = snap.Upstreams[up].Retry
		}
		r.API = api
	case rc.Static != nil:
		r.Action = runtime.ActionStatic
		r.Static = &runtime.Static{Root: rc.Static.Root, Index: rc.Static.Index, SPA: rc.Static.SPA, StripPrefix: rc.Static.StripPrefix, Dotfiles: rc.Static.Dotfiles}
	case rc.Redirect != nil:
		r.Action = runtime.ActionRedirect
		r.Redirect = &runtime.Redirect{To: rc.Redirect.To, Status: rc.Redirect.Status}
	case rc.Respond != nil:
		r.Action = runtime.ActionRespond
		r.Respond = &runtime.Respond{Status: rc.Respond.Status, Body: []byte(rc.Respond.Body), ContentType: rc.Respond.ContentType}
	default:
		return nil, fmt.Errorf("no action") // validate rejects this first
	}

	// Filter chains. Later issues append authn, authz and rate limiting to
	// r.Filters here, in the order ARCHITECTURE.md §8 fixes.
	if e := headers.NewEdits(rc.RequestHeaders.Set, rc.RequestHeaders.Add, rc.RequestHeaders.Remove); e != nil {
		r.UpstreamFilters = append(r.UpstreamFilters, headers.RequestEdits{Edits: e})
	}
	if e := headers.NewEdits(rc.ResponseHeaders.Set, rc.ResponseHeaders.Add, rc.ResponseHeaders.Remove); e != nil {
		r.ResponseFilters = append(r.ResponseFilters, headers.ResponseEdits{Edits: e})
	}
	if sec := headers.NewSecurity(c.Server.SecurityHeaders, rc.SecurityHeaders); sec != nil {
		r.ResponseFilters = append(r.ResponseFilters, sec)
	}
	return r, nil
}

func parseTemplate(t string) []runtime.TemplatePart {
	var parts []runtime.TemplatePart
	for t != "" {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			parts = append(parts, runtime.TemplatePart{Literal: t})
			break
		}
		if i > 0 {
			parts = append(parts, runtime.TemplatePart{Literal: t[:i]})
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 { // refused by validation; a literal, not a panic
			parts = append(parts, runtime.TemplatePart{Literal: t[i:]})
			break
		}
		parts = append(parts, runtime.TemplatePart{Placeholder: t[i+1 : i+j]})
		t = t[i+j+1:]
	}
	return parts
}

// describe summarizes a route in one line for the status page.
func describe(rc *config.Route) string {
	var parts []string
	m := rc.Match
	if len(m.Host) > 0 {
		parts = append(parts, "host "+strings.Join(m.Host, ","))
	}
	switch {
	case m.Path != "":
		parts = append(parts, "path "+m.Path)
	case m.PathPrefix != "":
		parts = append(parts, "path_prefix "+m.PathPrefix)
	}
	if len(m.Methods) > 0 {
		parts = append(parts, strings.Join(m.Methods, ","))
	}
	if len(m.Headers) > 0 {
		parts = append(parts, fmt.Sprintf("%d header conditions", len(m.Headers)))
	}
	if len(parts) == 0 {
		parts = append(parts, "everything")
	}
	var action string
	switch {
	case rc.Upstream != "":
		action = "upstream " + rc.Upstream
		if rc.StripPrefix {
			action += " (prefix stripped)"
		} else if rc.Rewrite != "" {
			action += " (rewrite " + rc.Rewrite + ")"
		}
	case rc.API != nil:
		svcs := make([]string, 0, len(rc.API.Services))
		for s := range rc.API.Services {
			svcs = append(svcs, s)
		}
		sort.Strings(svcs)
		action = "api " + strings.Join(svcs, ",")
	case rc.Static != nil:
		action = "static " + rc.Static.Root
	case rc.Redirect != nil:
		action = fmt.Sprintf("redirect %d %s", rc.Redirect.Status, rc.Redirect.To)
	case rc.Respond != nil:
		action = fmt.Sprintf("respond %d", rc.Respond.Status)
	}
	return strings.Join(parts, " ") + " → " + action
}

func healthConfig(a *config.ActiveHealth) *health.Config {
	if a == nil {
		return nil
	}
	hc := &health.Config{Type: a.Type, Interval: a.Interval.D(), Timeout: a.Timeout.D(), Rise: a.Rise, Fall: a.Fall,
		Method: a.Method, Path: a.Path, Host: a.Host, BodyContains: a.BodyContains}
	for _, es := range a.ExpectStatus {
		lo, hi, _ := config.ParseStatusRange(es)
		hc.Status = append(hc.Status, [2]int{lo, hi})
	}
	return hc
}

func retryPolicy(u *config.Upstream) runtime.RetryPolicy {
	r := u.Retries
	return runtime.RetryPolicy{Attempts: r.Attempts, PerTry: r.PerTryTimeout.D(), Deadline: r.Deadline.D(),
		OnStatus: r.OnStatus, BufferBody: int64(*r.BufferBody)}
}

// compileIssuers builds a verifier per configured issuer. Key sets are
// Registry services, so their keys and refresh loops survive reloads.
func compileIssuers(c *config.Config, reg *runtime.Registry, snap *runtime.Snapshot) map[string]*authn.Issuer {
	out := map[string]*authn.Issuer{}
	names := make([]string, 0, len(c.Auth.Issuers))
	for n := range c.Auth.Issuers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ic := c.Auth.Issuers[n]
		key := fmt.Sprintf("issuer|%s|%s|%v|%v", ic.Issuer, ic.JWKSURI, ic.KeyCooldown, ic.RefreshInterval)
		// A reload that changes the issuer's key settings makes a new
		// set, which keeps what the one it replaces had fetched.
		prev, _ := reg.ServiceWithPrefix("issuer|" + ic.Issuer + "|").(*issuer.Keys)
		keys := reg.Service(key, func() any {
			return &issuer.Keys{Issuer: ic.Issuer, JWKSURI: ic.JWKSURI, Client: authClient(),
				Cooldown: ic.KeyCooldown.D(), Refresh: ic.RefreshInterval.D(), Name: n, Events: reg.Events(), Inherit: prev}
		}).(*issuer.Keys)
		snap.Services = append(snap.Services, key)
		snap.Issuers = append(snap.Issuers, runtime.IssuerKeys{Name: n, Keys: keys})
		out[n] = &authn.Issuer{Name: n, URL: ic.Issuer, Keys: keys, RolesClaim: ic.RolesClaim, ScopeClaim: ic.ScopeClaim,
			Verifier: &jwt.Verifier{Issuer: ic.Issuer, Audience: ic.Audience, Algorithms: ic.Algorithms, Type: ic.Type,
				Leeway: ic.Leeway.D(), Keys: keys}}
		if in := ic.Introspection; in != nil {
			out[n].Introspector = &introspect.Client{Issuer: ic.Issuer, Audience: ic.Audience, Endpoint: in.Endpoint, Metadata: keys.Metadata,
				ClientID: in.ClientID, ClientSecret: in.ClientSecret, HTTP: authClient(), Timeout: in.Timeout.D(),
				Leeway: ic.Leeway.D(), Events: reg.Events()}
			out[n].PositiveTTL, out[n].NegativeTTL = in.CacheTTL.D(), in.NegativeTTL.D()
		}
	}
	return out
}

// authClient is the HTTP client for issuer metadata and keys,
// introspection and the login's token calls: its own transport, no
// environment proxy, bounded timeouts, and redirects within the origin
// asked only. A redirect elsewhere would have keys taken from, or a
// token (an introspection POST is re-sent on 307) handed to, a server
// the config never named, over plain HTTP even.
func authClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: sameOriginRedirects, Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}}
}

// sameOriginRedirects is authClient's redirect policy.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if first := via[0].URL; req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return fmt.Errorf("redirect from %s://%s to another origin, %s://%s, refused", first.Scheme, first.Host, req.URL.Scheme, req.URL.Host)
	}
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	return nil
}

// spoofable are identity headers some apps trust from a proxy; clients may
// never send them. Header names with underscores are removed too (some
// servers fold X_Auth_User into X-Auth-User), as are whole families of
// other gateways' identity headers (proxy.identityFamily).
var spoofable = []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Preferred-Username",
	"X-Forwarded-Access-Token", "X-Userinfo", "X-Credential-Identifier", "X-Goog-Iap-Jwt-Assertion"}

func stripHeaders(c *config.Config) map[string]struct{} {
	out := make(map[string]struct{}, len(spoofable)+8)
	for _, h := range spoofable {
		out[h] = struct{}{}
	}
	ih := c.Auth.IdentityHeaders
	names := []string{ih.Subject, ih.Roles, ih.Scopes, ih.Client, ih.Issuer}
	if ia := c.Auth.IdentityAssertion; ia != nil {
		names = append(names, ia.Header)
	}
	if t := c.Server.TLS; t != nil {
		for _, ca := range t.ClientAuth {
			names = append(names, ca.SubjectHeader)
		}
		if len(t.ClientAuth) > 0 {
			names = append(names, "X-Client-Cert-Subject")
		}
	}
	for _, h := range names {
		if h != "" && h != "off" {
			out[http.CanonicalHeaderKey(h)] = struct{}{}
		}
	}
	return out
}

// limitStore is a policy's memory store and hash seed; both live in the
// Registry, so limits survive reloads.
type limitStore struct {
	mem  *ratelimit.Memory
	gate *ratelimit.MemoryGate
	seed maphash.Seed
}

// rateLimitFilters builds the route's policies (server-wide first), split
// into those that run before authentication and those after.
func rateLimitFilters(c *config.Config, rc *config.Route, reg *runtime.Registry, snap *runtime.Snapshot) (pre, post []phase.RequestFilter, err error) {
	names := append(append([]string{}, c.Server.RateLimits...), rc.RateLimits...)
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		pc := c.RateLimits[n]
		rate, _ := config.ParseRate(pc.Rate)
		key := fmt.Sprintf("ratelimit|%s|%d", n, pc.MaxKeys)
		st := reg.Service(key, func() any {
			return &limitStore{mem: ratelimit.NewMemory(pc.MaxKeys), gate: ratelimit.NewMemoryGate(), seed: maphash.MakeSeed()}
		}).(*limitStore)
		if !slices.Contains(snap.Services, key) {
			snap.Services = append(snap.Services, key)
		}
		f := &ratelimit.Filter{Policy: n, Parts: ratelimit.ParseKey(pc.Key), Limit: ratelimit.Limit{Rate: rate, Burst: pc.Burst},
			IPv6Prefix: pc.IPv6Prefix, Soft: pc.Mode == "soft", Store: st.mem, Seed: st.seed,
			OnError: pc.OnStoreError, Events: reg.Events(), MaxInFlight: pc.Concurrency, Gate: st.gate}
		if pc.Store == "redis" {
			rkey := fmt.Sprintf("redis|%+v", redisConfig(c.Redis))
			rs := reg.Service(rkey, func() any {
				r, err := ratelimit.NewRedis(redisConfig(c.Redis))
				if err != nil {
					return err
				}
				return r
			})
			r, ok := rs.(*ratelimit.Redis)
			if !ok {
				return nil, nil, fmt.Errorf("redis: %v", rs)
			}
			if !slices.Contains(snap.Services, rkey) {
				snap.Services = append(snap.Services, rkey)
			}
			f.Store, f.Local = r, st.mem
			f.Gate, f.LocalGate = r, st.gate
		}
		if m := reg.Metrics(); m != nil {
			f.Obs = m.RateLimits()
		}
		f.Prepare()
		if ratelimit.PostAuth(f.Parts) {
			post = append(post, f)
		} else {
			pre = append(pre, f)
		}
	}
	return pre, post, nil
}

// compileResourceMetadata publishes auth.protected_resource (RFC 9728) as
// one of Gatehouse's own paths and returns its URL ("" when off), which
// 401s name unless a route names another.
func compileResourceMetadata(c *config.Config, reg *runtime.Registry, snap *runtime.Snapshot) string {
	pr := c.Auth.ProtectedResource
	if pr == nil {
		return ""
	}
	doc := authn.ResourceDoc{Resource: pr.Resource, ScopesSupported: pr.ScopesSupported,
		ResourceName: pr.ResourceName, ResourceDocumentation: pr.ResourceDocumentation}
	servers := pr.AuthorizationServers
	if len(servers) == 0 {
		for n := range c.Auth.Issuers {
			servers = append(servers, n)
		}
		sort.Strings(servers)
	}
	for _, n := range servers {
		doc.AuthorizationServers = append(doc.AuthorizationServers, c.Auth.Issuers[n].Issuer)
	}
	if len(doc.ScopesSupported) == 0 {
		seen := map[string]bool{}
		for _, r := range c.Routes {
			if r.Auth == nil {
				continue
			}
			for _, s := range r.Auth.Scopes {
				if !seen[s] {
					seen[s] = true
					doc.ScopesSupported = append(doc.ScopesSupported, s)
				}
			}
		}
		sort.Strings(doc.ScopesSupported)
	}
	u, path := authn.MetadataURL(pr.Resource)
	if snap.Local == nil {
		snap.Local = map[string]*runtime.Route{}
	}
	r := &runtime.Route{Name: "gatehouse-resource-metadata", Action: runtime.ActionLocal, ExactPath: path,
		Local: authn.NewResourceMetadata(doc), Describe: "path " + path + " → RFC 9728 metadata"}
	if sec := headers.NewSecurity(c.Server.SecurityHeaders, nil); sec != nil {
		r.ResponseFilters = []phase.ResponseFilter{sec}
	}
	if m := reg.Metrics(); m != nil {
		r.Obs = m.Route(r.Name)
	}
	snap.Local[path] = r
	return u
}

// compileAssertion builds the identity asserter. Its key is a Registry
// service, so an ephemeral key (and the JWKS apps cached) survives reloads.
func compileAssertion(c *config.Config, reg *runtime.Registry, snap *runtime.Snapshot) (*assert.Asserter, error) {
	ia := c.Auth.IdentityAssertion
	if ia == nil {
		return nil, nil
	}
	key := "assertion|ephemeral"
	mk := func() any {
		k, err := assert.NewEphemeralKey()
		if err != nil {
			return err
		}
		return k
	}
	if ia.KeyFile != "" {
		key = "assertion|" + ia.KeyFile
		mk = func() any {
			k, err := assert.LoadKey(ia.KeyFile)
			if err != nil {
				return err
			}
			return k
		}
	}
	k, ok := reg.Service(key, mk).(*assert.Key)
	if !ok {
		return nil, fmt.Errorf("auth.identity_assertion: %v", reg.Service(key, mk))
	}
	if !slices.Contains(snap.Services, key) {
		snap.Services = append(snap.Services, key)
	}
	snap.AssertionJWKS = k.JWKS()
	return &assert.Asserter{Key: k, Header: http.CanonicalHeaderKey(ia.Header), Issuer: ia.Issuer,
		Audience: ia.Audience, TTL: ia.TTL.D()}, nil
}

// redisConfig is the top-level redis section as redisx takes it.
func redisConfig(r *config.Redis) redisx.Config {
	c := redisx.Config{URL: r.URL, Password: r.Password, Timeout: r.Timeout.D(), ClusterNodes: r.ClusterNodes}
	if s := r.Sentinel; s != nil {
		c.SentinelMaster, c.SentinelNodes = s.Master, s.Nodes
	}
	return c
}
