// Package runtime holds what the engine reads: an immutable Snapshot of the
// compiled config, the Holder that swaps snapshots atomically, and the
// Registry of stateful objects (pools) that survive reloads.
//
// Invariant: after compile returns, a Snapshot and everything it points to
// is read-only, except objects owned by the Registry, whose mutable state is
// behind atomics or their own locks.
package runtime

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/internal/lb"
	"gatehouse/internal/observe/metrics"
	"gatehouse/internal/phase"
	"gatehouse/internal/route"
)

// Action is what a route does with a request.
type Action uint8

const (
	ActionProxy Action = iota
	ActionAPI
	ActionStatic
	ActionRedirect
	ActionRespond
)

// Snapshot is one compiled config.
type Snapshot struct {
	Generation int64
	Source     string // config file
	Table      *route.Table
	Routes     []*Route // Table.Match indexes this
	Pools      map[string]*lb.Pool
	Trusted    []netip.Prefix
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
	HostPolicy  HostPolicy
	StripPrefix bool
	Rewrite     string // replaces the matched prefix/path when set

	API      *API
	Static   *Static
	Redirect *Redirect
	Respond  *Respond

	Timeout      time.Duration // 0: none
	MaxBodyBytes int64         // 0: none

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

// Registry owns pools across snapshots, keyed by identity (name and
// settings), so reloads keep connections and state of unchanged upstreams.
type Registry struct {
	metrics *metrics.Metrics // nil: off

	mu    sync.Mutex // guards the following fields
	pools map[string]*lb.Pool
}

// NewRegistry returns an empty registry; pools it creates report to m
// (which may be nil).
func NewRegistry(m *metrics.Metrics) *Registry {
	return &Registry{pools: map[string]*lb.Pool{}, metrics: m}
}

// Metrics returns the metrics new pools report to (nil when off).
func (r *Registry) Metrics() *metrics.Metrics { return r.metrics }

// Pool returns the pool for key, creating it with mk if absent.
func (r *Registry) Pool(key string, mk func() *lb.Pool) *lb.Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pools[key]; ok {
		return p
	}
	p := mk()
	r.pools[key] = p
	return p
}

// Retain drops every pool not used by live and closes its idle
// connections; requests in flight on a dropped pool finish normally.
func (r *Registry) Retain(live *Snapshot) {
	keep := map[*lb.Pool]bool{}
	for _, p := range live.Pools {
		keep[p] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.pools {
		if !keep[p] {
			delete(r.pools, k)
			p.Close()
		}
	}
}

// Close closes every pool.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.pools {
		p.Close()
		delete(r.pools, k)
	}
}
