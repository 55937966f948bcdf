// Package redisx builds Gatehouse's Redis clients from configuration: a
// single server, a Sentinel-managed primary, or a Redis Cluster, all
// through go-redis's universal client, with the same fail-fast settings
// (short timeouts, no retries: a slow Redis must fail a request quickly,
// and a retried SET NX or INCR could count twice).
package redisx

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config says where Redis is.
type Config struct {
	// URL: redis://[user:password@]host:port/db, or rediss:// for TLS. Its
	// credentials, database and TLS apply in every mode; its host is the
	// server in single mode.
	URL string
	// Password, when set, replaces the URL's password.
	Password string
	// Timeout bounds dialing, each read and each write.
	Timeout time.Duration
	// ClusterNodes, when set, are the seed nodes of a Redis Cluster.
	ClusterNodes []string
	// SentinelMaster, when set, is the primary's name; SentinelNodes are
	// the Sentinels to ask for it.
	SentinelMaster string
	SentinelNodes  []string
	// PoolSize per node; 0: go-redis's default.
	PoolSize int
}

// New returns a client for c. It connects lazily.
func New(c Config) (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(c.URL)
	if err != nil {
		// A *url.Error quotes the URL, password and all; keep only why.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if c.Password != "" {
		opt.Password = c.Password
	}
	if c.Timeout <= 0 {
		return nil, fmt.Errorf("redis timeout %v: must be positive", c.Timeout)
	}
	u := &redis.UniversalOptions{
		Addrs:    []string{opt.Addr},
		Username: opt.Username, Password: opt.Password, DB: opt.DB, TLSConfig: opt.TLSConfig,
		DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // 0 would mean go-redis's default of 3
		// One dial: a refused connection is known at once, and five
		// spaced 100 ms apart made every call wait out the timeout.
		DialerRetries: 1,
		MaxRedirects:  3, // cluster MOVED/ASK are followed, not retried
		PoolSize:      c.PoolSize,
	}
	switch {
	case c.SentinelMaster != "":
		u.MasterName, u.Addrs = c.SentinelMaster, c.SentinelNodes
	case len(c.ClusterNodes) > 0:
		u.Addrs, u.DB = c.ClusterNodes, 0 // clusters have one database
		u.IsClusterMode = true
	}
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	return redis.NewUniversalClient(u), nil
}

// quiet drops go-redis's own log lines: unstructured, one per failed
// dial (per request while Redis is down), where Gatehouse logs a store's
// failure once, and its recovery, as JSON events.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once
