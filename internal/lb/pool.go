// Package lb holds upstream pools: their targets, their connection pool
// (an http.Transport tuned for reuse) and target selection.
//
// A Pool is stateful and outlives config snapshots: runtime.Registry keys it
// by name and settings, so a reload that leaves an upstream unchanged keeps
// its warm connections and counters.
package lb

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"gatehouse/internal/observe/metrics"
)

// ErrNoTarget means the pool has no target to offer.
var ErrNoTarget = errors.New("lb: no target available")

// Settings are a pool's transport parameters.
type Settings struct {
	ConnectTimeout        time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration
	MaxIdlePerTarget      int
}

// Target is one upstream address.
type Target struct {
	Addr     string             // host:port
	Obs      *metrics.TargetObs // nil when metrics are off
	inflight atomic.Int64
}

// Inflight is the number of requests currently sent to the target.
func (t *Target) Inflight() int64 { return t.inflight.Load() }

// Pool is a named set of targets sharing one connection pool.
type Pool struct {
	Name      string
	Targets   []*Target
	Transport *http.Transport
	rr        atomic.Uint64
}

// NewPool builds a pool. It starts no goroutine and opens no connection.
// m may be nil (metrics off).
func NewPool(name string, addrs []string, s Settings, m *metrics.Metrics) *Pool {
	p := &Pool{Name: name}
	byAddr := map[string]*Target{}
	for _, a := range addrs {
		t := &Target{Addr: a}
		if m != nil {
			t.Obs = m.Target(name, a)
		}
		p.Targets = append(p.Targets, t)
		byAddr[a] = t
	}
	dialer := &net.Dialer{Timeout: s.ConnectTimeout, KeepAlive: 30 * time.Second}
	dial := dialer.DialContext
	if m != nil {
		// Counting dials, not requests, makes connection reuse visible
		// at no cost per request: reused = requests - opened.
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				if t := byAddr[addr]; t != nil {
					t.Obs.Dialed()
				}
			}
			return c, err
		}
	}
	p.Transport = &http.Transport{
		Proxy:       nil, // never an environment proxy
		DialContext: dial,
		// Pingora's lesson: net/http's default of 2 idle connections per
		// host makes most requests under load open a new connection.
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   s.MaxIdlePerTarget,
		IdleConnTimeout:       s.IdleConnTimeout,
		ResponseHeaderTimeout: s.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// Pass Accept-Encoding through and never decompress: the client
		// and the app negotiate encoding, not the proxy.
		DisableCompression: true,
		WriteBufferSize:    16 << 10,
		ReadBufferSize:     16 << 10,
	}
	return p
}

// Pick chooses a target by round robin.
func (p *Pool) Pick() (*Target, error) {
	n := len(p.Targets)
	if n == 0 {
		return nil, ErrNoTarget
	}
	i := p.rr.Add(1) - 1
	return p.Targets[i%uint64(n)], nil
}

// Begin marks a request to t as in flight; call the returned func when done.
func (t *Target) Begin() { t.inflight.Add(1) }

// Done ends what Begin started.
func (t *Target) Done() { t.inflight.Add(-1) }

// Close releases idle connections. Requests in flight finish normally.
func (p *Pool) Close() { p.Transport.CloseIdleConnections() }
