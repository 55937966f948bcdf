// Package runtime holds what the engine reads: an immutable Snapshot of the
// compiled config, the Holder that swaps snapshots atomically, and the
// Registry of stateful objects (pools) that survive reloads.
//
// Invariant: after compile returns, a Snapshot and everything it points to
// is read-only, except objects owned by the Registry, whose mutable state is
// behind atomics or their own locks.
package runtime

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/internal/discovery"
	"gatehouse/internal/health"
	"gatehouse/internal/lb"
	"gatehouse/internal/observe/metrics"
	"gatehouse/internal/phase"
	"gatehouse/internal/route"
	"gatehouse/internal/tlsx"
)

// Action is what a route does with a request.
type Action uint8

const (
	ActionProxy Action = iota
	ActionAPI
	ActionStatic
	ActionRedirect
	ActionRespond
	// ActionLocal: Gatehouse itself answers (Local), e.g. the login
	// callback.
	ActionLocal
)

// Snapshot is one compiled config.
type Snapshot struct {
	Generation int64
	Source     string // config file
	Table      *route.Table
	Routes     []*Route // Table.Match indexes this
	Pools      map[string]*lb.Pool
	Upstreams  map[string]*Upstream // per-upstream policy, by name
	Services   []string             // Registry service keys this snapshot uses
	Issuers    []IssuerKeys         // token issuers, for status and metrics
	// StripHeaders are request headers removed from every request before
	// routing: identity headers only Gatehouse may set. A set, looked up
	// once per field the request has rather than deleted name by name
	// (a request has fewer fields than the set has names).
	StripHeaders map[string]struct{}
	// AssertionJWKS is the public key set of identity assertions, served
	// on the admin listener at /jwks.json; nil when assertions are off.
	AssertionJWKS []byte
	// MaxHeaderCount: requests with more header fields are answered 431.
	MaxHeaderCount int
	// MaxHeaderLineBytes: a longer request target is answered 414, a
	// longer header field 431 (checked here for requests that no
	// h1guard read: HTTPS and HTTP/2).
	MaxHeaderLineBytes int
	// StripCookie is the login cookies' base name (auth.login.cookie_name):
	// cookies named by it are removed from every request sent upstream, on
	// every route, so no upstream ever sees a session id. "" when login is
	// off.
	StripCookie string
	// TLS is HTTPS: certificates, HSTS, the HTTP→HTTPS redirect; nil when
	// server.tls is off.
	TLS *tlsx.Front
	// Local are Gatehouse's own paths (login, callback, logout), answered
	// on every host before the route table is consulted.
	Local   map[string]*Route
	Trusted []netip.Prefix
	// Fallback holds the response filters (security headers) applied to
	// answers given before any route matched, such as 404 and 400.
	Fallback *Route
}

// IsTrusted reports whether a is a trusted proxy.
func (s *Snapshot) IsTrusted(a netip.Addr) bool {
	for _, p := range s.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// IssuerKeys is a configured issuer's key source.
type IssuerKeys struct {
	Name string
	Keys interface {
		Fetches() int64
		// Reachability: were the keys ever fetched, and the last
		// fetch's error while failing.
		Reachability() (reached bool, lastErr string)
	}
	// Routes are the routes whose auth needs this issuer, in config
	// order; none when it is configured but unused.
	Routes []string
}

// Upstream is an upstream's request policy (its pool is in Pools).
type Upstream struct {
	Retry           RetryPolicy
	MinHealthyShare float64
	// ActiveChecks: the pool's targets are probed (health.active), so
	// readiness waits for a check to pass rather than trusting an
	// unchecked target.
	ActiveChecks bool
}

// RetryPolicy says when a failed attempt is tried again elsewhere.
type RetryPolicy struct {
	Attempts   int           // most attempts, the first included
	PerTry     time.Duration // per attempt, until response headers; 0: none
	Deadline   time.Duration // no new attempt after this; 0: none
	OnStatus   []int         // upstream statuses retried (idempotent requests)
	BufferBody int64         // bodies up to this size are replayable
}

// Route is a compiled route.
type Route struct {
	Name   string
	Action Action
	// Describe is a one-line summary for the status page, such as
	// "path_prefix /admin → upstream admin-portal".
	Describe string
	// Match facts the actions need.
	PathPrefix string // "" when the route matches an exact path
	ExactPath  string

	Pool        *lb.Pool // ActionProxy
	Retry       RetryPolicy
	HostPolicy  HostPolicy
	StripPrefix bool
	Rewrite     string // replaces the matched prefix/path when set

	API      *API
	Static   *Static
	Redirect *Redirect
	Respond  *Respond
	Local    phase.Handler // ActionLocal

	// Cancelable gives the request a context its filters can cancel
	// (RequestCtx.Cancel), e.g. to end a session's streams at logout.
	Cancelable bool

	Timeout      time.Duration // 0: none
	MaxBodyBytes int64         // 0: none
	// AllowPathParams: requests with path parameters (";") may use this
	// route; it is found on the path without them.
	AllowPathParams bool

	// Obs records the route's requests; nil when metrics are off.
	Obs *metrics.RouteObs

	Filters         []phase.RequestFilter
	UpstreamFilters []phase.UpstreamRequestFilter
	ResponseFilters []phase.ResponseFilter
}

// HostPolicy decides the Host header sent upstream.
type HostPolicy struct {
	Mode    HostMode
	Literal string
}

// HostMode is a HostPolicy's kind.
type HostMode uint8

const (
	HostPreserve HostMode = iota // the client's Host
	HostTarget                   // the target's host:port
	HostLiteral                  // a configured name
)

// API maps /<prefix>/<service>/<rest> to pools.
type API struct {
	Prefix   string
	Services map[string]*lb.Pool
	HostPol  map[string]HostPolicy
	Retry    map[string]RetryPolicy
	// Template parts: literal text and placeholders, compiled from the
	// rewrite template.
	Template []TemplatePart
}

// TemplatePart is a literal or a placeholder of a path template.
type TemplatePart struct {
	Literal     string
	Placeholder string // "prefix", "service", "rest" or ""
}

// Static serves files.
type Static struct {
	Root        string
	Index       string
	SPA         bool
	StripPrefix bool
	Dotfiles    bool // serve names that begin with a dot
}

// Redirect answers with a Location.
type Redirect struct {
	To     string
	Status int
}

// Respond answers with a fixed response.
type Respond struct {
	Status      int
	Body        []byte
	ContentType string
}

// Holder holds the current snapshot; the engine loads it once per request.
type Holder struct{ p atomic.Pointer[Snapshot] }

// Load returns the current snapshot.
func (h *Holder) Load() *Snapshot { return h.p.Load() }

// Store makes s current.
func (h *Holder) Store(s *Snapshot) { h.p.Store(s) }

// Registry owns the stateful objects behind snapshots: pools (with their
// connection pools and health checkers) keyed by name and settings, and
// targets keyed by upstream and address, so a reload keeps warm
// connections and everything health checks and passive ejection learned.
type Registry struct {
	metrics *metrics.Metrics // nil: off
	events  *slog.Logger

	mu       sync.Mutex // guards the following fields
	pools    map[string]*poolEntry
	targets  map[targetKey]*lb.Target
	fresh    map[*lb.Target]bool // handed to a compile since the last Retain (Target)
	services map[string]*serviceEntry
	ctx      context.Context // set by Start; checkers run under it
	wg       sync.WaitGroup
}

// targetKey is a target's identity in the Registry.
type targetKey struct {
	upstream, addr string
	weight         int
	backup         bool
}

type poolEntry struct {
	PoolSpec
	pool   *lb.Pool
	cancel context.CancelFunc // stops checker and discovery; nil when none runs
}

// PoolSpec describes a pool to the Registry.
type PoolSpec struct {
	Key      string // identity: name and every setting
	Name     string
	Make     func() *lb.Pool
	Check    *health.Config    // active health check, if any
	Discover *discovery.Config // DNS discovery, if any
	Static   []*lb.Target      // configured targets (discovery adds to them)
}

// NewRegistry returns an empty registry; pools it creates report to m
// (which may be nil) and log to events (which may be nil).
func NewRegistry(m *metrics.Metrics, events *slog.Logger) *Registry {
	if events == nil {
		events = slog.New(slog.DiscardHandler)
	}
	return &Registry{pools: map[string]*poolEntry{}, targets: map[targetKey]*lb.Target{},
		services: map[string]*serviceEntry{}, metrics: m, events: events}
}

// Metrics returns the metrics new pools report to (nil when off).
func (r *Registry) Metrics() *metrics.Metrics { return r.metrics }

// Events is the registry's event logger.
func (r *Registry) Events() *slog.Logger { return r.events }

// Target returns the target of upstream at addr, creating it if needed,
// for a snapshot being compiled: until the next Retain, when that
// snapshot's pools exist, no sweep forgets it.
func (r *Registry) Target(upstream, addr string, weight int, backup bool) *lb.Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.targetLocked(upstream, addr, weight, backup)
	if r.fresh == nil {
		r.fresh = map[*lb.Target]bool{}
	}
	r.fresh[t] = true
	return t
}

// targetLocked is Target without the mark. r.mu is held.
func (r *Registry) targetLocked(upstream, addr string, weight int, backup bool) *lb.Target {
	key := targetKey{upstream, addr, weight, backup}
	if t, ok := r.targets[key]; ok {
		return t
	}
	t := lb.NewTarget(addr, weight, backup)
	r.targets[key] = t
	return t
}

// Pool returns the pool spec describes, creating it if absent. Its health
// checker and DNS discovery, if any, run from Start on.
func (r *Registry) Pool(spec PoolSpec) *lb.Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.pools[spec.Key]; ok {
		return e.pool
	}
	e := &poolEntry{PoolSpec: spec, pool: spec.Make()}
	r.pools[spec.Key] = e
	if r.ctx != nil {
		r.startLocked(e)
	}
	return e.pool
}

func (r *Registry) startLocked(e *poolEntry) {
	if (e.Check == nil && e.Discover == nil) || e.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	e.cancel = cancel
	if e.Check != nil {
		r.wg.Go(func() { health.Run(ctx, e.pool, *e.Check, r.events) })
	}
	if e.Discover != nil {
		// The targets found are made, set and the ones that left
		// forgotten under one hold of r.mu: another pool's sweep cannot
		// drop a target between its making and its setting.
		apply := func(found []discovery.Found) {
			r.mu.Lock()
			defer r.mu.Unlock()
			targets := slices.Clone(e.Static)
			for _, f := range found {
				targets = append(targets, r.targetLocked(e.Name, f.Addr, f.Weight, f.Backup))
			}
			e.pool.SetTargets(targets)
			r.sweepTargetsLocked()
		}
		r.wg.Go(func() { discovery.Run(ctx, e.pool, *e.Discover, apply, r.events) })
	}
}

// Runner is a background service the Registry owns, such as an issuer's
// key refresher.
type Runner interface{ Run(ctx context.Context) }

type serviceEntry struct {
	svc    any
	cancel context.CancelFunc
}

// Service returns the object for key, creating it with mk if absent. It
// lives until it leaves the live snapshot's Services; if it is a Runner,
// it runs from Start until then.
func (r *Registry) Service(key string, mk func() any) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.services[key]; ok {
		return e.svc
	}
	e := &serviceEntry{svc: mk()}
	r.services[key] = e
	if r.ctx != nil {
		r.startServiceLocked(e)
	}
	return e.svc
}

// ServiceWithPrefix returns a service whose key begins with prefix, or
// nil: a predecessor, such as an issuer's key set made under settings a
// reload changed, that a new one may take its state from.
func (r *Registry) ServiceWithPrefix(prefix string) any {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.services {
		if strings.HasPrefix(k, prefix) {
			return e.svc
		}
	}
	return nil
}

func (r *Registry) startServiceLocked(e *serviceEntry) {
	run, ok := e.svc.(Runner)
	if !ok || e.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	e.cancel = cancel
	r.wg.Go(func() { run.Run(ctx) })
}

// Start runs the health checkers of current and future pools, and the
// services, under ctx.
func (r *Registry) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctx = ctx
	for _, e := range r.pools {
		r.startLocked(e)
	}
	for _, e := range r.services {
		r.startServiceLocked(e)
	}
}

// Started reports whether Start has been called.
func (r *Registry) Started() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctx != nil
}

// Retain drops every pool not used by live: its checker stops and its idle
// connections close (requests in flight on it finish normally). Targets no
// live pool uses are forgotten, with their metric series, and so are the
// metric series of routes live does not have.
func (r *Registry) Retain(live *Snapshot) {
	keep := map[*lb.Pool]bool{}
	for _, p := range live.Pools {
		keep[p] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.pools {
		if !keep[e.pool] {
			delete(r.pools, k)
			if e.cancel != nil {
				e.cancel()
			}
			e.pool.Close()
		}
	}
	r.fresh = nil // the snapshot they were made for is live, or was dropped
	r.sweepTargetsLocked()
	if r.metrics != nil {
		// Every route that counts: the config's, Gatehouse's own local
		// ones (login, callback, logout, resource metadata), and the
		// fallback ("(none)").
		routes := map[string]bool{}
		keepRoute := func(rt *Route) {
			if rt != nil && rt.Obs != nil {
				routes[rt.Obs.Name()] = true
			}
		}
		for _, rt := range live.Routes {
			keepRoute(rt)
		}
		for _, rt := range live.Local {
			keepRoute(rt)
		}
		keepRoute(live.Fallback)
		r.metrics.RetainRoutes(routes)
	}
	keepS := map[string]bool{}
	for _, k := range live.Services {
		keepS[k] = true
	}
	for k, e := range r.services {
		if !keepS[k] {
			delete(r.services, k)
			if e.cancel != nil {
				e.cancel()
			}
		}
	}
}

// sweepTargetsLocked forgets the targets no pool of the Registry uses now
// (after a reload, or a DNS discovery change: pod addresses come and go
// with every deploy), and their metric series, unless a kept target has
// the same upstream and address (a new weight makes a new target).
// Targets handed to a compile still running are kept (fresh). r.mu is
// held.
func (r *Registry) sweepTargetsLocked() {
	keepT := map[*lb.Target]bool{}
	keepSeries := map[[2]string]bool{}
	for _, e := range r.pools {
		for _, t := range e.pool.Targets() {
			keepT[t] = true
			keepSeries[[2]string{e.pool.Name, t.Addr}] = true
		}
	}
	for k, t := range r.targets {
		if keepT[t] || r.fresh[t] {
			continue
		}
		delete(r.targets, k)
		if r.metrics != nil && !keepSeries[[2]string{k.upstream, k.addr}] {
			r.metrics.ForgetTarget(k.upstream, k.addr)
		}
	}
}

// Close stops every checker, waits for them, and closes every pool.
func (r *Registry) Close() {
	r.mu.Lock()
	for k, e := range r.pools {
		if e.cancel != nil {
			e.cancel()
		}
		e.pool.Close()
		delete(r.pools, k)
	}
	for k, e := range r.services {
		if e.cancel != nil {
			e.cancel()
		}
		delete(r.services, k)
	}
	r.mu.Unlock()
	r.wg.Wait()
}
