// Package lb holds upstream pools: their targets, their connection pool
// (a synchronous HTTP/1.1 client beside an http.Transport, both tuned for
// reuse), target selection (balancers),
// passive ejection and slow start.
//
// Pools are rebuilt when the config changes, but their Targets are not:
// runtime.Registry keeps each Target by upstream name and address, so what
// health checks and passive ejection learned survives a reload.
package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/internal/observe/metrics"
)

// ErrNoTarget means no target of the pool is available.
var ErrNoTarget = errors.New("lb: no target available")

// Settings are a pool's parameters.
type Settings struct {
	ConnectTimeout        time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration
	MaxIdlePerTarget      int
	// MaxResponseHeaderBytes bounds each response head (the status line
	// and the fields, 1xx heads each on their own); 0: 64 KiB. A larger
	// head fails the attempt (502).
	MaxResponseHeaderBytes int64
	// MaxResponseHeaderFields bounds the fields of each response head; 0:
	// 100. More fail the attempt (502).
	MaxResponseHeaderFields int

	Balancer  string        // round_robin, weighted_round_robin, least_requests, p2c_ewma, consistent_hash
	HashKey   string        // consistent_hash: client_ip, path, header:<Name>, cookie:<name>
	SlowStart time.Duration // 0: none

	// Passive ejection; Failures 0 turns it off.
	Failures      int
	EjectionTime  time.Duration
	MaxEjectedPct int

	// Seed makes the balancers' randomness repeatable (tests).
	Seed uint64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnEject, if set, is told about ejections (for the event log).
	OnEject func(pool string, t *Target, d time.Duration)
	// TLS, if set, connects to the targets over TLS (HTTPS upstreams).
	TLS *tls.Config
	// Dial, if set, opens connections instead of a net.Dialer with
	// ConnectTimeout (benchmarks without sockets).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Scheme is the URL scheme of requests to the pool's targets.
func (p *Pool) Scheme() string {
	if p.Settings.TLS != nil {
		return "https"
	}
	return "http"
}

// Pool is a named set of targets sharing one connection pool. Its targets
// can change while it runs (DNS discovery): readers load the current set
// atomically, once per pick.
type Pool struct {
	Name string
	// Transport carries what the synchronous client does not (upgrades,
	// Expect, bodies of unknown length on GET-like methods); Send chooses.
	Transport *http.Transport
	Settings  Settings

	h1 *h1Client

	set     atomic.Pointer[targetSet]
	metrics *metrics.Metrics
	rng     atomic.Uint64
	now     func() time.Time

	mu     sync.Mutex    // guards notify
	notify chan struct{} // closed when the target set changes
}

// targetSet is an immutable set of targets with its picker, whose state
// (round-robin position, weights, hash ring) belongs to this set.
type targetSet struct {
	all, primaries, backups []*Target
	byAddr                  map[string]*Target
	pick                    picker
}

// NewPool builds a pool over targets (from the Registry). It starts no
// goroutine and opens no connection. m may be nil (metrics off).
func NewPool(name string, targets []*Target, s Settings, m *metrics.Metrics) *Pool {
	p := &Pool{Name: name, Settings: s, now: s.Now, metrics: m, notify: make(chan struct{})}
	if p.now == nil {
		p.now = time.Now
	}
	p.rng.Store(s.Seed*0x9E3779B97F4A7C15 + 1)
	p.set.Store(p.newSet(targets))

	base := s.Dial
	if base == nil {
		dialer := &net.Dialer{Timeout: s.ConnectTimeout, KeepAlive: 30 * time.Second}
		base = dialer.DialContext
	}
	dial := base
	if m != nil {
		// Counting dials, not requests, makes connection reuse visible
		// at no cost per request: reused = requests - opened.
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := base(ctx, network, addr)
			if err == nil {
				if t := p.set.Load().byAddr[addr]; t != nil && t.Obs != nil {
					t.Obs.Dialed()
				}
			}
			return c, err
		}
	}
	p.h1 = newH1Client(dial, s)
	// Connections that record response heads (transport_head.go).
	plain, withTLS := recordingDialers(dial, p.h1, s.TLS != nil)
	p.Transport = &http.Transport{
		Proxy:          nil, // never an environment proxy
		DialContext:    plain,
		DialTLSContext: withTLS,
		// Pingora's lesson: net/http's default of 2 idle connections per
		// host makes most requests under load open a new connection.
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   s.MaxIdlePerTarget,
		IdleConnTimeout:       s.IdleConnTimeout,
		ResponseHeaderTimeout: s.ResponseHeaderTimeout,
		// The Transport's own default is 10 MiB: one app's giant head
		// would hold that much of the gateway's memory per response.
		MaxResponseHeaderBytes: p.h1.maxHead,
		ExpectContinueTimeout:  time.Second,
		// Pass Accept-Encoding through and never decompress: the client
		// and the app negotiate encoding, not the proxy.
		DisableCompression: true,
		WriteBufferSize:    16 << 10,
		ReadBufferSize:     16 << 10,
		TLSClientConfig:    s.TLS, // DialTLSContext's handshake uses it (h1Client.tlsConfig)
	}
	return p
}

// Direct reports whether Send writes req itself (the synchronous client:
// plain HTTP or TLS, no upgrade, no Expect, and no body or one it frames
// as the Transport would) rather than through Transport.
func (p *Pool) Direct(req *http.Request) bool { return p.h1 != nil && p.h1.eligible(req) }

// DirectFor reports whether a request proxied from in will be Direct: in
// has no Upgrade and no Expect (which a proxy passes on), to a plain or a
// TLS pool alike, and either no body or one whose framing is settled. No
// body is a nil or http.NoBody Body, or, as httputil.ReverseProxy decides
// (it sends no body then), a ContentLength of 0: net/http's HTTP/2 server
// gives every request a Body, even one whose stream ended with its header
// (ContentLength 0). A body of unknown length (-1: chunked, or an HTTP/2
// stream without a Content-Length) on a method that usually has none
// (GET, HEAD, DELETE, OPTIONS, ...) stays on the Transport, which probes
// such a body for a first byte before choosing its framing.
func (p *Pool) DirectFor(in *http.Request) bool {
	if p.h1 == nil || in.Header["Upgrade"] != nil || in.Header["Expect"] != nil {
		return false
	}
	if in.Body == nil || in.Body == http.NoBody || in.ContentLength == 0 {
		return true
	}
	_, ok := framing(in.Method, in.ContentLength, nil) // what ReverseProxy sends: the length, or chunks
	return ok
}

// Send sends req to the target in req.URL.Host. extra is an HTTP/1.1
// header block (validated by the caller) written after req.Header; it
// must be nil unless Direct(req). As with http.Transport, req.Body is
// closed, and on the synchronous client it is read by a goroutine of
// its own while the response is read (h1_body.go): a body that can abort
// a waiting Read (AbortRead) has it aborted when the response ends before
// the body was all sent.
func (p *Pool) Send(req *http.Request, extra []byte) (*http.Response, error) {
	if p.Direct(req) {
		return p.h1.roundTrip(req, headBlock{b: extra}, nil)
	}
	if extra != nil {
		return nil, errors.New("lb: extra header block on a Transport request")
	}
	return p.transportRoundTrip(req)
}

// MaxResponseHeaderFields is the most fields a response head from the
// pool's targets may have (Settings, or its default).
func (p *Pool) MaxResponseHeaderFields() int { return p.h1.maxFields }

// SendDirect is Send for a request that is Direct, with its informational
// responses given to info rather than to an httptrace in its context.
func (p *Pool) SendDirect(req *http.Request, extra []byte, info Informer) (*http.Response, error) {
	if !p.Direct(req) {
		return nil, errors.New("lb: SendDirect of a request that is not direct")
	}
	return p.h1.roundTrip(req, headBlock{b: extra}, info)
}

// SendDirectBlock is SendDirect for a request whose header fields are
// all in block, validated and written as the request writer writes a
// header map's (values trimmed, one User-Agent, no Host, framing or
// Connection field): req.Header is read (Upgrade and Expect for Direct,
// Idempotency-Key for a resend) but not written. It spares a proxy a
// map of the outbound fields it would only fill to have them written.
func (p *Pool) SendDirectBlock(req *http.Request, block []byte, info Informer) (*http.Response, error) {
	if !p.Direct(req) {
		return nil, errors.New("lb: SendDirect of a request that is not direct")
	}
	return p.h1.roundTrip(req, headBlock{b: block, all: true}, info)
}

func (p *Pool) newSet(targets []*Target) *targetSet {
	ts := &targetSet{byAddr: map[string]*Target{}}
	for _, t := range targets {
		if p.metrics != nil && t.Obs == nil {
			t.Obs = p.metrics.Target(p.Name, t.Addr)
		}
		if t.Backup {
			ts.backups = append(ts.backups, t)
		} else {
			ts.primaries = append(ts.primaries, t)
		}
		ts.byAddr[t.Addr] = t
	}
	ts.all = append(append([]*Target{}, ts.primaries...), ts.backups...)
	ts.pick = newPicker(p.Settings.Balancer, ts.primaries, ts.backups)
	return ts
}

// Targets returns the current targets: primaries, then backups.
func (p *Pool) Targets() []*Target { return p.set.Load().all }

// SetTargets replaces the target set (DNS discovery). Requests in flight
// keep the targets they picked; health checkers follow via Changed.
func (p *Pool) SetTargets(targets []*Target) {
	p.set.Store(p.newSet(targets))
	p.mu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

// Changed returns a channel closed at the next SetTargets.
func (p *Pool) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.notify
}

// Tried records the targets a request has already tried, so a retry never
// goes back to one (Pingora's UniqueIterator). The zero value is empty.
type Tried struct {
	list [4]*Target
	n    int
	more []*Target
}

// Add marks t as tried.
func (tr *Tried) Add(t *Target) {
	if tr.n < len(tr.list) {
		tr.list[tr.n] = t
		tr.n++
		return
	}
	tr.more = append(tr.more, t)
}

// Has reports whether t was tried.
func (tr *Tried) Has(t *Target) bool {
	if tr == nil {
		return false
	}
	for i := 0; i < tr.n; i++ {
		if tr.list[i] == t {
			return true
		}
	}
	for _, x := range tr.more {
		if x == t {
			return true
		}
	}
	return false
}

// Pick chooses a target that is available and not in tried: among the
// primaries, or, when none of them is available, among the backups. key
// is the request's hash key (consistent_hash only; see HashKey).
func (p *Pool) Pick(tried *Tried, key uint64) (*Target, error) {
	now := p.now().UnixNano()
	set := p.set.Load()
	if t := set.pick.pick(p, set.primaries, 0, now, tried, key); t != nil {
		return t, nil
	}
	if t := set.pick.pick(p, set.backups, 1, now, tried, key); t != nil {
		return t, nil
	}
	return nil, ErrNoTarget
}

// random returns the next value of the pool's seeded generator
// (splitmix64: lock-free, and repeatable for a given seed and call order).
func (p *Pool) random() uint64 {
	z := p.rng.Add(0x9E3779B97F4A7C15)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Outcome classifies an attempt for passive health.
type Outcome uint8

const (
	Success Outcome = iota
	Failure         // connect error, timeout, or a 502/503/504 answer
	Neutral         // the client's fault (gone, bad body): says nothing about t
)

// Report feeds an attempt's outcome to passive health: Failures
// consecutive failures eject t for EjectionTime, doubling with each repeat
// ejection (up to 2^10), unless MaxEjectedPct of the pool is ejected
// already.
func (p *Pool) Report(t *Target, o Outcome) {
	switch o {
	case Success:
		if t.consecFails.Load() != 0 {
			t.consecFails.Store(0)
		}
		if t.passive.Load() != passiveOK { // no shared write per request once known
			t.passive.Store(passiveOK)
		}
		return
	case Neutral:
		return
	}
	t.passive.Store(passiveFailed)
	s := p.Settings
	if s.Failures <= 0 || int(t.consecFails.Add(1)) < s.Failures {
		return
	}
	now := p.now()
	nowN := now.UnixNano()
	if t.ejectedUntil.Load() > nowN {
		return // already ejected
	}
	ejected := 0
	all := p.Targets()
	for _, x := range all {
		if x.ejectedUntil.Load() > nowN {
			ejected++
		}
	}
	if (ejected+1)*100 > s.MaxEjectedPct*len(all) {
		return // the cap: keep it in rotation
	}
	t.mu.Lock()
	level := t.ejections.Load()
	if !t.lastEject.IsZero() && now.Sub(t.lastEject) > 10*s.EjectionTime<<uint(min(level, 10)) {
		level = 0 // healthy for long: start over
	}
	level++
	t.ejections.Store(level)
	t.lastEject = now
	t.lastReason = "ejected after consecutive failed requests"
	t.mu.Unlock()
	d := s.EjectionTime << uint(min(level-1, 10))
	t.ejectedUntil.Store(nowN + int64(d))
	t.recoveredAt.Store(nowN + int64(d)) // slow start once it returns
	t.consecFails.Store(0)
	t.totalEjects.Add(1)
	if s.OnEject != nil {
		s.OnEject(p.Name, t, d)
	}
}

// Share is the fraction of primary targets available now.
func (p *Pool) Share() float64 {
	prim := p.set.Load().primaries
	if len(prim) == 0 {
		return 0
	}
	now := p.now().UnixNano()
	n := 0
	for _, t := range prim {
		if t.Available(now) {
			n++
		}
	}
	return float64(n) / float64(len(prim))
}

// Now is the pool's clock.
func (p *Pool) Now() time.Time { return p.now() }

// Close releases idle connections. Requests in flight finish normally.
func (p *Pool) Close() {
	p.Transport.CloseIdleConnections()
	if p.h1 != nil {
		p.h1.CloseIdleConnections()
	}
}
