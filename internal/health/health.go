// Package health runs active health checks: every target of a pool is
// probed on an interval (jittered), by TCP connect or an HTTP request, and
// its state moves between up and down after rise passes or fall failures
// (lb.CheckState). A checker starts when its pool comes into use and stops
// when the pool leaves the config (its context ends).
package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"gatehouse/internal/lb"
)

// Config is one pool's active check.
type Config struct {
	Type         string // "tcp" or "http"
	Interval     time.Duration
	Timeout      time.Duration
	Rise, Fall   int
	Method, Path string
	Host         string
	Status       [][2]int // accepted status ranges
	BodyContains string
	// TLS, if set: HTTP checks use HTTPS with this client configuration.
	TLS *tls.Config
}

// Run checks every target of pool until ctx ends. Each target has its own
// loop, so one slow target never delays the others' checks.
func Run(ctx context.Context, pool *lb.Pool, cfg Config, events *slog.Logger) {
	var client *http.Client
	if cfg.Type == "http" {
		client = &http.Client{
			Transport: &http.Transport{
				Proxy:             nil,
				DisableKeepAlives: true, // each check proves a fresh connection works
				DialContext:       (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
				TLSClientConfig:   cfg.TLS,
			},
			Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a redirect is an answer, not a hop
			},
		}
	}
	// One loop per target; the set may change (DNS discovery), so loops
	// are started and stopped to follow it.
	running := map[*lb.Target]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, stop := range running {
			stop()
		}
		wg.Wait()
	}()
	for {
		changed := pool.Changed()
		current := map[*lb.Target]bool{}
		for _, t := range pool.Targets() {
			current[t] = true
			if _, ok := running[t]; ok {
				continue
			}
			tctx, stop := context.WithCancel(ctx)
			running[t] = stop
			wg.Go(func() {
				defer func() {
					if p := recover(); p != nil {
						events.Error("health check crashed", "upstream", pool.Name, "target", t.Addr, "panic", fmt.Sprint(p))
					}
				}()
				loop(tctx, pool, t, cfg, client, events)
			})
		}
		for t, stop := range running {
			if !current[t] {
				stop()
				delete(running, t)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

func loop(ctx context.Context, pool *lb.Pool, t *lb.Target, cfg Config, client *http.Client, events *slog.Logger) {
	var cs lb.CheckState
	timer := time.NewTimer(jitter(cfg.Interval) / 4) // spread the first checks
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ok, reason := Check(ctx, t.Addr, cfg, client)
		if ctx.Err() != nil {
			return
		}
		switch cs.Observe(t, ok, reason, pool.Now(), cfg.Rise, cfg.Fall) {
		case lb.StateDown:
			events.Warn("target down", "upstream", pool.Name, "target", t.Addr, "why", reason)
		case lb.StateUp:
			events.Info("target up", "upstream", pool.Name, "target", t.Addr)
		}
		timer.Reset(jitter(cfg.Interval))
	}
}

// jitter spreads d by ±10 % so checks of many targets do not align.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d)/5+1))
}

// Check probes addr once and says why it failed.
func Check(ctx context.Context, addr string, cfg Config, client *http.Client) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if cfg.Type != "http" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false, "tcp connect: " + short(err)
		}
		c.Close()
		return true, "tcp connect ok"
	}
	scheme := "http://"
	if cfg.TLS != nil {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, cfg.Method, scheme+addr+cfg.Path, nil)
	if err != nil {
		return false, "bad check request: " + err.Error()
	}
	if cfg.Host != "" {
		req.Host = cfg.Host
	}
	req.Header.Set("User-Agent", "gatehouse-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return false, "http: " + short(err)
	}
	defer resp.Body.Close()
	inRange := false
	for _, r := range cfg.Status {
		if resp.StatusCode >= r[0] && resp.StatusCode <= r[1] {
			inRange = true
		}
	}
	if !inRange {
		return false, fmt.Sprintf("http status %d", resp.StatusCode)
	}
	if cfg.BodyContains != "" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if !strings.Contains(string(b), cfg.BodyContains) {
			return false, fmt.Sprintf("http body lacks %q", cfg.BodyContains)
		}
	}
	return true, fmt.Sprintf("http status %d", resp.StatusCode)
}

func short(err error) string {
	var oe *net.OpError
	if e, ok := err.(*net.OpError); ok { //nolint:errorlint // only to shorten the message
		oe = e
		return oe.Err.Error()
	}
	return err.Error()
}
