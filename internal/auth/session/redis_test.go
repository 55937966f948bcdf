package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/internal/redisx"
	"gatehouse/internal/testutil"
)

// newRedis returns a store on srv with prefix, closed at cleanup.
func newRedis(t *testing.T, srv *testutil.Redis, timeout time.Duration, prefix string) *Redis {
	t.Helper()
	r, err := NewRedis(redisx.Config{URL: "redis://" + srv.Addr + "/0", Timeout: timeout}, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisConformance(t *testing.T) {
	testutil.CheckGoroutines(t)
	srv := testutil.StartRedis(t, testutil.FreePort(t))
	n := 0
	RunStoreTests(t, Harness{
		New: func(t *testing.T) Store {
			n++ // each store its own keys, as two deployments sharing a server
			return newRedis(t, srv, time.Second, fmt.Sprintf("test%d:", n))
		},
	})
}

// TestRedisLayout pins what other tools (and an operator with redis-cli)
// see: prefix+key with a millisecond TTL, the lock beside it, and nothing
// left behind by an unlock.
func TestRedisLayout(t *testing.T) {
	testutil.CheckGoroutines(t)
	srv := testutil.StartRedis(t, testutil.FreePort(t))
	r := newRedis(t, srv, time.Second, "gh:s:")
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	ctx := t.Context()

	if err := r.Save(ctx, "k", []byte("v"), 90*time.Second+500*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	if got, err := raw.Get(ctx, "gh:s:k").Result(); err != nil || got != "v" {
		t.Fatalf("GET gh:s:k = %q, %v; want v", got, err)
	}
	if ttl := raw.PTTL(ctx, "gh:s:k").Val(); ttl <= 89*time.Second || ttl > 90*time.Second+time.Millisecond {
		t.Fatalf("PTTL = %v, want about 90s (rounded up to the ms)", ttl)
	}
	unlock, ok, err := r.Lock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lock = %v, %v", ok, err)
	}
	if tok := raw.Get(ctx, "gh:s:lock:k").Val(); len(tok) < 20 {
		t.Fatalf("lock token %q: want a long random token", tok)
	}
	unlock()
	if n := raw.Exists(ctx, "gh:s:lock:k").Val(); n != 0 {
		t.Fatal("the lock key is still there after unlock")
	}
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 1 || keys[0] != "gh:s:k" {
		t.Fatalf("KEYS * = %q, %v; want only gh:s:k", keys, err)
	}
}

func TestRedisDownFailsFast(t *testing.T) {
	testutil.CheckGoroutines(t)
	srv := testutil.StartRedis(t, testutil.FreePort(t))
	r := newRedis(t, srv, 100*time.Millisecond, "p:")
	ctx := t.Context()
	if err := r.Save(ctx, "k", []byte("secret-value"), time.Minute); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"load", func() error { _, err := r.Load(ctx, "k"); return err }},
		{"save", func() error { return r.Save(ctx, "k", []byte("secret-value"), time.Minute) }},
		{"delete", func() error { return r.Delete(ctx, "k") }},
		{"lock", func() error { _, _, err := r.Lock(ctx, "k", time.Minute); return err }},
		{"publish", func() error { return r.Publish(ctx, "k") }},
		{"subscribe", func() error { return r.Subscribe(ctx, func(string) {}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.call()
			if err == nil || errors.Is(err, ErrNotFound) {
				t.Fatalf("with Redis down, err = %v; want a real error", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v with a 100ms timeout", d)
			}
			if !strings.HasPrefix(err.Error(), "session: redis "+tc.name+": ") {
				t.Errorf("err = %q, want the prefix %q", err, "session: redis "+tc.name+": ")
			}
			if strings.Contains(err.Error(), "secret-value") {
				t.Errorf("err = %q names the value", err)
			}
		})
	}
}

func TestNewRedisErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		url     string
		timeout time.Duration
	}{
		{"bad scheme", "http://127.0.0.1:6379", time.Second},
		{"bad db", "redis://127.0.0.1:6379/x", time.Second},
		{"zero timeout", "redis://127.0.0.1:6379/0", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if r, err := NewRedis(redisx.Config{URL: tc.url, Timeout: tc.timeout}, "p:"); err == nil {
				r.Close()
				t.Fatal("no error")
			}
		})
	}
}

func TestRedisSubscribeEndsWhenClosed(t *testing.T) {
	testutil.CheckGoroutines(t)
	srv := testutil.StartRedis(t, testutil.FreePort(t))
	r, err := NewRedis(redisx.Config{URL: "redis://" + srv.Addr + "/0", Timeout: time.Second}, "p:")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Subscribe(ctx, func(string) {}) }()
	// Wait for the subscription to be confirmed, as seen by the server.
	if !testutil.WaitFor(5*time.Second, func() bool {
		n, _ := r.client.PubSubNumSub(ctx, "p:ended").Result()
		return n["p:ended"] == 1
	}) {
		t.Fatal("subscription never became active")
	}
	r.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Subscribe returned nil after Close, want an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Subscribe still running 5s after Close")
	}
}

// The store passes the same suite on a Redis Cluster (real redis-server
// processes): records, locks and the ended-session broadcast.
func TestRedisClusterConformance(t *testing.T) {
	nodes := testutil.StartCluster(t, 3)
	n := 0
	RunStoreTests(t, Harness{
		New: func(t *testing.T) Store {
			n++
			r, err := NewRedis(redisx.Config{URL: "redis://127.0.0.1:1/0", Timeout: time.Second, ClusterNodes: nodes}, fmt.Sprintf("c%d:", n))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		},
	})
}
