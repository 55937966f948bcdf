// Package admin serves Gatehouse's admin listener: /metrics, /healthz,
// /readyz, /config (redacted), /upstreams, /status.json with the status
// page at /, and /debug/pprof when enabled.
//
// It runs on its own listener (loopback by default), never on the public
// ones: the engine has no route to any of these paths, so no Host or path
// trick on a public listener can reach them.
package admin

import (
	"context"
	_ "embed"
	"encoding/json"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gatehouse/internal/lb"
	"gatehouse/internal/observe/metrics"
	"gatehouse/internal/runtime"
)

// ReloadState describes the running config and the last load attempt.
type ReloadState struct {
	File       string    `json:"file"`
	Generation int64     `json:"generation"`
	LoadedAt   time.Time `json:"loaded_at"`
	LastTry    time.Time `json:"last_attempt"`
	LastOK     bool      `json:"last_ok"`
	Errors     []string  `json:"errors,omitempty"` // of the last refused attempt
}

// Source is what the admin listener reports on; internal/app implements it.
type Source interface {
	Snapshot() *runtime.Snapshot
	ConfigYAML() ([]byte, error)
	Reloads() ReloadState
	// Ready reports readiness, with the reasons when not ready.
	Ready() (bool, []string)
}

// Options configure the admin handler.
type Options struct {
	Source  Source
	Metrics *metrics.Metrics
	Pprof   bool
	// AllowedHosts are the hosts a request's Host may name, port aside
	// (admin.allowed_hosts); "*" or none allows any. Others get 403.
	AllowedHosts []string
	Version      string
	// PID is reported on the status page: after a zero-downtime upgrade
	// it tells which process answers.
	PID int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// SampleEvery is the status page's sampling interval. Default 5s.
	SampleEvery time.Duration
}

// Server is the admin handler plus the sampler behind the status page.
type Server struct {
	o       Options
	mux     *http.ServeMux
	started time.Time
	hist    *history
}

// New builds the admin server. Run starts its sampler.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SampleEvery == 0 {
		o.SampleEvery = 5 * time.Second
	}
	s := &Server{o: o, mux: http.NewServeMux(), started: o.Now(), hist: newHistory(61)}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /config", s.config)
	s.mux.HandleFunc("GET /upstreams", s.upstreams)
	s.mux.HandleFunc("GET /status.json", s.status)
	s.mux.HandleFunc("GET /tls", func(w http.ResponseWriter, r *http.Request) {
		f := s.o.Source.Snapshot().TLS
		if f == nil {
			http.Error(w, "TLS is off (server.tls)", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, f.Status())
	})
	s.mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		jwks := s.o.Source.Snapshot().AssertionJWKS
		if jwks == nil {
			http.Error(w, "identity assertions are off (auth.identity_assertion)", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src data:; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		_, _ = w.Write(statusPage)
	})
	if o.Metrics != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	if o.Pprof {
		s.mux.HandleFunc("/debug/pprof/", pprof.Index)
		s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	if !s.hostAllowed(r.Host) {
		http.Error(w, "admin: this listener does not answer to that host name (admin.allowed_hosts)", http.StatusForbidden)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether a request's Host is one the admin listener
// answers to. A browser always names the host it resolved: a page whose
// own name resolves to the listener (DNS rebinding) names that, and is
// refused. A request with no Host (HTTP/1.0) comes from no browser.
func (s *Server) hostAllowed(hostport string) bool {
	allowed := s.o.AllowedHosts
	if len(allowed) == 0 || hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1] // an IPv6 literal without a port
	}
	ip, ipErr := netip.ParseAddr(host)
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, host) {
			return true
		}
		if ipErr == nil {
			if aip, err := netip.ParseAddr(a); err == nil && aip == ip {
				return true // the same address written another way
			}
		}
	}
	return false
}

// Run samples request totals for the status page until ctx ends.
func (s *Server) Run(ctx context.Context) {
	if s.o.Metrics == nil {
		return
	}
	s.hist.add(s.o.Now(), s.o.Metrics.RouteTotals())
	t := time.NewTicker(s.o.SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.hist.add(s.o.Now(), s.o.Metrics.RouteTotals())
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ok, reasons := s.o.Source.Ready()
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reasons": reasons})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) {
	b, err := s.o.Source.ConfigYAML()
	if err != nil {
		http.Error(w, "cannot render the config", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	_, _ = w.Write(b)
}

// PoolStatus is one upstream on /upstreams.
type PoolStatus struct {
	Name      string      `json:"name"`
	Balancer  string      `json:"balancer"`
	Available float64     `json:"available_share"`
	Targets   []lb.Status `json:"targets"`
}

func (s *Server) pools() []PoolStatus {
	snap := s.o.Source.Snapshot()
	names := make([]string, 0, len(snap.Pools))
	for n := range snap.Pools {
		names = append(names, n)
	}
	sort.Strings(names)
	now := s.o.Now()
	out := make([]PoolStatus, 0, len(names))
	for _, n := range names {
		p := snap.Pools[n]
		ps := PoolStatus{Name: n, Balancer: p.Settings.Balancer, Available: p.Share()}
		for _, t := range p.Targets() {
			ps.Targets = append(ps.Targets, t.Status(now, p.Settings.SlowStart))
		}
		out = append(out, ps)
	}
	return out
}

func (s *Server) upstreams(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"upstreams": s.pools()})
}

// RouteStatus is one route on /status.json. Rates are per second over the
// last minute; Series holds one point per sample interval, oldest first.
type RouteStatus struct {
	Name     string  `json:"name"`
	Describe string  `json:"describe"`
	Total    float64 `json:"requests_total"`
	RPS      float64 `json:"rps_1m"`
	ErrRPS   float64 `json:"errors_per_second_1m"`
	Series   []Point `json:"series"`
}

// Point is a rate sample.
type Point struct {
	At     time.Time `json:"t"`
	RPS    float64   `json:"rps"`
	ErrRPS float64   `json:"eps"`
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	now := s.o.Now()
	snap := s.o.Source.Snapshot()
	if s.o.Metrics != nil {
		s.hist.add(now, s.o.Metrics.RouteTotals()) // the page shows the present, not the last tick
	}
	ready, reasons := s.o.Source.Ready()
	routes := make([]RouteStatus, 0, len(snap.Routes)+1)
	for _, rt := range append(append([]*runtime.Route{}, snap.Routes...), snap.Fallback) {
		name, desc := rt.Name, rt.Describe
		if rt == snap.Fallback {
			name, desc = "(none)", "requests refused before any route matched (400, 404)"
		}
		rs := RouteStatus{Name: name, Describe: desc}
		rs.Total, rs.RPS, rs.ErrRPS, rs.Series = s.hist.rates(name, now, time.Minute)
		routes = append(routes, rs)
	}
	limited := map[string]float64{}
	if s.o.Metrics != nil {
		limited = s.o.Metrics.RateLimitTotals()
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"rate_limited":   limited,
		"version":        s.o.Version,
		"pid":            s.o.PID,
		"uptime_seconds": int64(now.Sub(s.started).Seconds()),
		"ready":          ready,
		"not_ready":      reasons,
		"config":         s.o.Source.Reloads(),
		"routes":         routes,
		"upstreams":      s.pools(),
	})
}

// history keeps the last samples of per-route totals, to derive rates.
type history struct {
	mu      sync.Mutex // guards the following fields
	samples []sample   // ring, oldest first once full
	max     int
}

type sample struct {
	at     time.Time
	totals map[string][2]float64
}

func newHistory(max int) *history { return &history{max: max} }

func (h *history) add(at time.Time, totals map[string][2]float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Keep one sample per tick: an on-demand sample replaces a newer
	// on-demand one rather than piling up.
	if n := len(h.samples); n >= 2 && at.Sub(h.samples[n-2].at) < time.Second {
		h.samples[n-1] = sample{at, totals}
		return
	}
	h.samples = append(h.samples, sample{at, totals})
	if len(h.samples) > h.max {
		h.samples = h.samples[len(h.samples)-h.max:]
	}
}

// rates returns a route's total, its request and 5xx rates over window,
// and the per-interval series.
func (h *history) rates(route string, now time.Time, window time.Duration) (total, rps, eps float64, series []Point) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.samples)
	if n == 0 {
		return 0, 0, 0, nil
	}
	last := h.samples[n-1]
	total = last.totals[route][0]
	for i := 1; i < n; i++ {
		a, b := h.samples[i-1], h.samples[i]
		dt := b.at.Sub(a.at).Seconds()
		if dt <= 0 {
			continue
		}
		series = append(series, Point{At: b.at,
			RPS: (b.totals[route][0] - a.totals[route][0]) / dt, ErrRPS: (b.totals[route][1] - a.totals[route][1]) / dt})
	}
	// The window's base is the oldest sample within it.
	base := last
	for i := n - 1; i >= 0; i-- {
		if now.Sub(h.samples[i].at) > window {
			break
		}
		base = h.samples[i]
	}
	if dt := last.at.Sub(base.at).Seconds(); dt > 0 {
		rps = (last.totals[route][0] - base.totals[route][0]) / dt
		eps = (last.totals[route][1] - base.totals[route][1]) / dt
	}
	return total, rps, eps, series
}

//go:embed status.html
var statusPage []byte
