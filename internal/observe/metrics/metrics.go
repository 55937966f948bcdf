// Package metrics declares every Prometheus metric Gatehouse exports, in
// this one file, on a registry Gatehouse owns (never the global one).
//
// Cardinality is bounded by construction: labels take values from the
// config (route, upstream, target names), from fixed sets (method, status
// class, error kind), never from the request (no raw paths, no user ids).
// docs/observability.md lists every metric.
package metrics

import (
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// Buckets for request durations at a proxy: from sub-millisecond local
// answers to minute-long streams.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Methods are the method label values; anything else is "OTHER".
var Methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER"}

// Classes are the status class label values.
var Classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// MethodIndex maps a method to its index in Methods.
func MethodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodPatch:
		return 4
	case http.MethodDelete:
		return 5
	case http.MethodOptions:
		return 6
	case http.MethodConnect:
		return 7
	case http.MethodTrace:
		return 8
	}
	return 9
}

// ClassIndex maps a status to its index in Classes.
func ClassIndex(status int) int {
	c := status/100 - 1
	if c < 0 || c > 4 {
		return 4
	}
	return c
}

// Metrics holds the collectors.
type Metrics struct {
	Registry *prometheus.Registry

	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inFlight  prometheus.Gauge
	upReqs    *prometheus.CounterVec
	upLatency *prometheus.HistogramVec
	upErrors  *prometheus.CounterVec
	upDials   *prometheus.CounterVec

	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
	reloads    *prometheus.CounterVec

	routes sync.Map // route name → *RouteObs

	authOnce sync.Once
	auth     AuthObserver
	rlOnce   sync.Once
	rl       RateLimitObserver

	connOnce    sync.Once
	connRefused *prometheus.CounterVec
}

// New registers every collector on a fresh registry.
func New(version string) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.Registry.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_http_requests_total",
		Help: "Requests answered, by route, method and status class.",
	}, []string{"route", "method", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_http_request_duration_seconds",
		Help:    "Time from request headers read to the last response byte, by route, method and status class.",
		Buckets: durationBuckets,
	}, []string{"route", "method", "code"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatehouse_http_requests_in_flight",
		Help: "Requests being served now.",
	})
	m.upReqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_upstream_requests_total",
		Help: "Upstream attempts that got a response, by upstream, target and status class.",
	}, []string{"upstream", "target", "code"})
	m.upLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_upstream_response_header_seconds",
		Help:    "Time from sending a request upstream to its response headers.",
		Buckets: durationBuckets,
	}, []string{"upstream", "target"})
	m.upErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_upstream_errors_total",
		Help: "Upstream attempts that failed without a response, by kind: connect, timeout, protocol.",
	}, []string{"upstream", "target", "kind"})
	m.upDials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_upstream_connections_opened_total",
		Help: "New upstream connections dialed. Requests minus these were served on reused connections.",
	}, []string{"upstream", "target"})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatehouse_config_last_reload_success",
		Help: "1 if the last config load or reload succeeded, 0 if it was refused.",
	})
	m.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatehouse_config_last_reload_success_timestamp_seconds",
		Help: "When the running config was loaded (Unix time).",
	})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_config_reloads_total",
		Help: "Config reloads, by result: success or failure.",
	}, []string{"result"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "gatehouse_build_info",
		Help:        "Always 1; labels carry the version and the Go version.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.upReqs, m.upLatency,
		m.upErrors, m.upDials, m.reloadOK, m.reloadTime, m.reloads, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// RouteObs caches a route's label children, so the request path does no
// label hashing: one array index and one atomic load per request.
//
// A child is created the first time its method and status class are seen,
// not up front: a route served only GET 2xx exposes one counter and one
// histogram, not 50 of each (issue 15: 8 routes exposed 8,300 lines). The
// label values still come from fixed sets (Methods, Classes), so the
// series per route stay bounded by 50.
type RouteObs struct {
	m     *Metrics
	name  string
	cells [len(Methods)][len(Classes)]atomic.Pointer[routeCell]
}

type routeCell struct {
	count prometheus.Counter
	dur   prometheus.Observer
}

// Route returns the observers of a route (created on first use).
func (m *Metrics) Route(name string) *RouteObs {
	if ro, ok := m.routes.Load(name); ok {
		return ro.(*RouteObs)
	}
	actual, _ := m.routes.LoadOrStore(name, &RouteObs{m: m, name: name})
	return actual.(*RouteObs)
}

func (ro *RouteObs) cell(i, j int) *routeCell {
	if c := ro.cells[i][j].Load(); c != nil {
		return c
	}
	c := &routeCell{count: ro.m.requests.WithLabelValues(ro.name, Methods[i], Classes[j]),
		dur: ro.m.duration.WithLabelValues(ro.name, Methods[i], Classes[j])}
	if ro.cells[i][j].CompareAndSwap(nil, c) {
		return c
	}
	return ro.cells[i][j].Load() // another request made it: the same children
}

// Observe records one answered request.
func (ro *RouteObs) Observe(method string, status int, seconds float64) {
	c := ro.cell(MethodIndex(method), ClassIndex(status))
	c.count.Inc()
	c.dur.Observe(seconds)
}

// Name is the route's name.
func (ro *RouteObs) Name() string { return ro.name }

// RetainRoutes forgets the routes not in keep, and deletes their series:
// a route renamed or removed by a reload would otherwise be exported for
// the life of the process. A request of the old config still in flight
// counts into its detached children, which no scrape sees.
func (m *Metrics) RetainRoutes(keep map[string]bool) {
	m.routes.Range(func(k, _ any) bool {
		name := k.(string)
		if !keep[name] {
			m.routes.Delete(name)
			l := prometheus.Labels{"route": name}
			m.requests.DeletePartialMatch(l)
			m.duration.DeletePartialMatch(l)
			m.Auth().decisions.DeletePartialMatch(l)
		}
		return true
	})
}

// ForgetTarget deletes the series of an upstream's target that no pool
// uses any more (runtime.Registry decides): with DNS discovery, every
// address a deploy ever had would stay exported.
func (m *Metrics) ForgetTarget(upstream, target string) {
	l := prometheus.Labels{"upstream": upstream, "target": target}
	m.upReqs.DeletePartialMatch(l)
	m.upLatency.DeletePartialMatch(l)
	m.upErrors.DeletePartialMatch(l)
	m.upDials.DeletePartialMatch(l)
}

// InFlight is the in-flight gauge.
func (m *Metrics) InFlight() prometheus.Gauge { return m.inFlight }

// TargetObs holds one upstream target's children, each created on first
// use (like RouteObs): a target never used exposes no series but
// gatehouse_upstream_target_up and _state.
type TargetObs struct {
	m                *Metrics
	upstream, target string
	reqs             [len(Classes)]atomic.Pointer[prometheus.Counter]
	latency          atomic.Pointer[prometheus.Observer]
	errs             [len(ErrorKinds)]atomic.Pointer[prometheus.Counter]
	dials            atomic.Pointer[prometheus.Counter]
}

// ErrorKinds are the kind label values of gatehouse_upstream_errors_total.
var ErrorKinds = [...]string{"connect", "timeout", "protocol"}

// Target returns the observers of one upstream target.
func (m *Metrics) Target(upstream, target string) *TargetObs {
	return &TargetObs{m: m, upstream: upstream, target: target}
}

// lazy returns what p holds, or stores and returns mk's result. The fast
// path is one atomic load; mk runs only for a label set's first use.
func lazy[T any](p *atomic.Pointer[T], mk func() T) T {
	if v := p.Load(); v != nil {
		return *v
	}
	v := mk()
	if p.CompareAndSwap(nil, &v) {
		return v
	}
	return *p.Load() // another request made it: the same child
}

// Response records an attempt that got response headers.
func (t *TargetObs) Response(status int, seconds float64) {
	j := ClassIndex(status)
	if c := t.reqs[j].Load(); c != nil {
		(*c).Inc()
	} else {
		lazy(&t.reqs[j], func() prometheus.Counter { return t.m.upReqs.WithLabelValues(t.upstream, t.target, Classes[j]) }).Inc()
	}
	if o := t.latency.Load(); o != nil {
		(*o).Observe(seconds)
	} else {
		lazy(&t.latency, func() prometheus.Observer { return t.m.upLatency.WithLabelValues(t.upstream, t.target) }).Observe(seconds)
	}
}

// Error records a failed attempt; kind is one of ErrorKinds.
func (t *TargetObs) Error(kind string) {
	for i, k := range ErrorKinds {
		if k == kind {
			lazy(&t.errs[i], func() prometheus.Counter { return t.m.upErrors.WithLabelValues(t.upstream, t.target, k) }).Inc()
			return
		}
	}
}

// Dialed records a new connection.
func (t *TargetObs) Dialed() {
	lazy(&t.dials, func() prometheus.Counter { return t.m.upDials.WithLabelValues(t.upstream, t.target) }).Inc()
}

// Reload records a config load or reload.
func (m *Metrics) Reload(ok bool, unix float64) {
	if ok {
		m.reloadOK.Set(1)
		m.reloadTime.Set(unix)
		m.reloads.WithLabelValues("success").Inc()
		return
	}
	m.reloadOK.Set(0)
	m.reloads.WithLabelValues("failure").Inc()
}

// RouteTotals returns, per route name, requests answered and those
// answered 5xx so far. The status page samples it to draw rates.
func (m *Metrics) RouteTotals() map[string][2]float64 {
	out := map[string][2]float64{}
	m.routes.Range(func(k, v any) bool {
		ro := v.(*RouteObs)
		var total, errs float64
		for i := range ro.cells {
			for j := range ro.cells[i] {
				c := ro.cells[i][j].Load()
				if c == nil {
					continue
				}
				n := counterValue(c.count)
				total += n
				if j == len(Classes)-1 {
					errs += n
				}
			}
		}
		out[k.(string)] = [2]float64{total, errs}
		return true
	})
	return out
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil || d.Counter == nil {
		return 0
	}
	return d.Counter.GetValue()
}

// TargetState is one target's health for gatehouse_upstream_target_up
// and gatehouse_upstream_target_state.
type TargetState struct {
	Upstream, Target string
	State            string // one of TargetStates (lb.Target.Verdict)
}

// TargetStates are the state label values of
// gatehouse_upstream_target_state, as lb.Target.Verdict names them.
var TargetStates = [...]string{"up", "down", "ejected", "failing", "unknown"}

// scrapeGauges is a gauge family computed at scrape time: collect emits
// one value per label set.
type scrapeGauges struct {
	desc    *prometheus.Desc
	collect func(emit func(v float64, labels ...string))
}

func (c scrapeGauges) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c scrapeGauges) Collect(ch chan<- prometheus.Metric) {
	c.collect(func(v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, labels...)
	})
}

// WatchTargets exports gatehouse_upstream_target_up and
// gatehouse_upstream_target_state from list, called at every scrape.
//
// target_up is 1 only for a target known to work: active checks pass or,
// without an active verdict, its last request got an answer. A target
// never checked nor used is 0 there and "unknown" in target_state, so an
// idle target is not reported up on no evidence (issue 15).
func (m *Metrics) WatchTargets(list func() []TargetState) {
	m.Registry.MustRegister(scrapeGauges{
		desc: prometheus.NewDesc("gatehouse_upstream_target_up",
			"1 if the target is known to work (active checks pass, or without them its last request got an answer) and is not ejected; 0 if down, ejected, failing or never checked nor used (see gatehouse_upstream_target_state).",
			[]string{"upstream", "target"}, nil),
		collect: func(emit func(float64, ...string)) {
			for _, s := range list() {
				v := 0.0
				if s.State == TargetStates[0] {
					v = 1
				}
				emit(v, s.Upstream, s.Target)
			}
		},
	})
	m.Registry.MustRegister(scrapeGauges{
		desc: prometheus.NewDesc("gatehouse_upstream_target_state",
			"1 for the target's current state, 0 for the others: up, down (active checks fail), ejected, failing (its last request failed, no active verdict), unknown (never checked nor used).",
			[]string{"upstream", "target", "state"}, nil),
		collect: func(emit func(float64, ...string)) {
			for _, s := range list() {
				for _, st := range TargetStates {
					v := 0.0
					if s.State == st {
						v = 1
					}
					emit(v, s.Upstream, s.Target, st)
				}
			}
		},
	})
}

// AuthObserver counts auth decisions for one route set; it implements
// authn.Observer.
type AuthObserver struct {
	decisions *prometheus.CounterVec
	hits      prometheus.Counter
}

// Decision counts one decision; reason is from a fixed set.
func (a AuthObserver) Decision(route, result, reason string) {
	a.decisions.WithLabelValues(route, result, reason).Inc()
}

// DecisionCounter returns one decision's counter (authn.DecisionCounter):
// its labels resolved once, not on every request.
func (a AuthObserver) DecisionCounter(route, result, reason string) func() {
	return a.decisions.WithLabelValues(route, result, reason).Inc
}

// CacheHit counts a token found in the verification cache.
func (a AuthObserver) CacheHit() { a.hits.Inc() }

// Auth returns the auth observer (collectors made on first use).
func (m *Metrics) Auth() AuthObserver {
	m.authOnce.Do(func() {
		m.auth = AuthObserver{
			decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "gatehouse_auth_decisions_total",
				Help: "Authentication and authorization decisions, by route, result (allow, deny) and reason (valid, no_token, expired, bad_signature, unknown_kid, wrong_issuer, wrong_audience, insufficient, keys_unavailable, ...).",
			}, []string{"route", "result", "reason"}),
			hits: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "gatehouse_auth_cache_hits_total",
				Help: "Tokens found already verified in the cache (no signature check).",
			}),
		}
		m.Registry.MustRegister(m.auth.decisions, m.auth.hits)
	})
	return m.auth
}

// WatchKeyFetches exports gatehouse_auth_jwks_fetches_total from list
// (issuer name → fetches), read at every scrape.
func (m *Metrics) WatchKeyFetches(list func() map[string]int64) {
	m.Registry.MustRegister(keyFetches{
		desc: prometheus.NewDesc("gatehouse_auth_jwks_fetches_total", "Fetches of each issuer's JWK Set.", []string{"issuer"}, nil),
		list: list,
	})
}

type keyFetches struct {
	desc *prometheus.Desc
	list func() map[string]int64
}

func (c keyFetches) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c keyFetches) Collect(ch chan<- prometheus.Metric) {
	for name, n := range c.list() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), name)
	}
}

// RateLimitObserver counts rate-limit decisions; it implements
// ratelimit.Observer.
type RateLimitObserver struct {
	decisions, storeErrors *prometheus.CounterVec
	degraded               *prometheus.GaugeVec
}

// Degraded records whether a policy is using its fallback because its
// shared store fails (1) or is back on the store (0).
func (o RateLimitObserver) Degraded(policy string, on bool) {
	v := 0.0
	if on {
		v = 1
	}
	o.degraded.WithLabelValues(policy).Set(v)
}

// StoreError counts a failed call to a shared rate-limit store.
func (o RateLimitObserver) StoreError(policy string) { o.storeErrors.WithLabelValues(policy).Inc() }

// RateLimit counts one decision: allowed, limited or soft_limited.
func (o RateLimitObserver) RateLimit(policy, result string) {
	o.decisions.WithLabelValues(policy, result).Inc()
}

// DecisionCounters returns a policy's decision counters, for its filter
// to keep (ratelimit.DecisionCounters): the series RateLimit counts,
// without a label lookup per decision. The three series exist, at 0,
// from then on.
func (o RateLimitObserver) DecisionCounters(policy string) (allowed, limited, softLimited func()) {
	return o.decisions.WithLabelValues(policy, "allowed").Inc,
		o.decisions.WithLabelValues(policy, "limited").Inc,
		o.decisions.WithLabelValues(policy, "soft_limited").Inc
}

// RateLimits returns the rate-limit observer (made on first use).
func (m *Metrics) RateLimits() RateLimitObserver {
	m.rlOnce.Do(func() {
		m.rl = RateLimitObserver{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_ratelimit_decisions_total",
			Help: "Rate-limit decisions, by policy and result: allowed, limited, soft_limited.",
		}, []string{"policy", "result"}),
			storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "gatehouse_ratelimit_store_errors_total",
				Help: "Calls to a shared rate-limit store (Redis) that failed or timed out; each used the policy's fallback.",
			}, []string{"policy"}),
			degraded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "gatehouse_ratelimit_store_degraded",
				Help: "1 while a policy limits with its fallback (local store or 503) because its shared store fails; 0 once it is back.",
			}, []string{"policy"})}
		m.Registry.MustRegister(m.rl.decisions, m.rl.storeErrors, m.rl.degraded)
	})
	return m.rl
}

// RateLimitTotals returns, per policy, the requests limited so far (hard
// and soft), for the status page.
func (m *Metrics) RateLimitTotals() map[string]float64 {
	out := map[string]float64{}
	if m.rl.decisions == nil {
		return out
	}
	ch := make(chan prometheus.Metric, 64)
	go func() { m.rl.decisions.Collect(ch); close(ch) }()
	for metric := range ch {
		var d dto.Metric
		if metric.Write(&d) != nil {
			continue
		}
		var policy, result string
		for _, l := range d.Label {
			switch l.GetName() {
			case "policy":
				policy = l.GetValue()
			case "result":
				result = l.GetValue()
			}
		}
		if result != "allowed" {
			out[policy] += d.GetCounter().GetValue()
		}
	}
	return out
}

// ConnectionRefused counts a client connection closed at accept by a
// connection limit; reason is "total" or "per_ip".
func (m *Metrics) ConnectionRefused(reason string) {
	m.connOnce.Do(func() {
		m.connRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_connections_refused_total",
			Help: "Client connections closed at accept by server.max_connections (total) or max_connections_per_ip (per_ip).",
		}, []string{"reason"})
		m.Registry.MustRegister(m.connRefused)
	})
	m.connRefused.WithLabelValues(reason).Inc()
}

// CertState is one served certificate for
// gatehouse_tls_certificate_expiry_timestamp_seconds.
type CertState struct {
	Name     string // a DNS name it covers
	Source   string // "file" or "acme"
	NotAfter time.Time
}

// WatchCerts exports gatehouse_tls_certificate_expiry_timestamp_seconds
// from list, called at every scrape (alert on it minus time()).
func (m *Metrics) WatchCerts(list func() []CertState) {
	m.Registry.MustRegister(scrapeGauges{
		desc: prometheus.NewDesc("gatehouse_tls_certificate_expiry_timestamp_seconds",
			"When each served certificate expires (Unix time), by name and source (file, acme).",
			[]string{"name", "source"}, nil),
		collect: func(emit func(float64, ...string)) {
			for _, s := range list() {
				emit(float64(s.NotAfter.Unix()), s.Name, s.Source)
			}
		},
	})
}
