package ratelimit

import (
	"context"
	"testing"
	"time"

	"gatehouse/internal/redisx"
	"gatehouse/internal/testutil"
)

func TestRedisConformance(t *testing.T) {
	srv := testutil.StartRedis(t, "")
	n := 0
	RunLimiterTests(t, func(t *testing.T) Limiter {
		r, err := NewRedis(redisx.Config{URL: "redis://" + srv.Addr + "/0", Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		n++
		r.Prefix = "test" + string(rune('a'+n)) + ":" // each subtest its own keys
		return r
	})
}

func TestRedisGateConformance(t *testing.T) {
	srv := testutil.StartRedis(t, "")
	n := 0
	RunGateTests(t, func(t *testing.T) Gate {
		r, err := NewRedis(redisx.Config{URL: "redis://" + srv.Addr + "/0", Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		n++
		r.Prefix = "gate" + string(rune('a'+n)) + ":"
		return r
	})
}

func TestRedisDownFailsFast(t *testing.T) {
	srv := testutil.StartRedis(t, "")
	r, err := NewRedis(redisx.Config{URL: "redis://" + srv.Addr + "/0", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Allow(context.Background(), k(1), Limit{Rate: 1, Burst: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	if _, err := r.Allow(context.Background(), k(1), Limit{Rate: 1, Burst: 1}, time.Now()); err == nil {
		t.Fatal("no error with Redis down")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a call with Redis down took %v (timeout 100ms)", d)
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	srv := testutil.StartRedis(b, "")
	r, _ := NewRedis(redisx.Config{URL: "redis://" + srv.Addr + "/0", Timeout: time.Second})
	defer r.Close()
	ctx := context.Background()
	l := Limit{Rate: 1e9, Burst: 1000}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		r.Allow(ctx, k(1), l, now)
	}
}

// The limiter and the gate work on a Sentinel-managed primary and on a
// Redis Cluster (real redis-server processes), through the same config
// as a single server.
func TestRedisSentinelAndCluster(t *testing.T) {
	primary := testutil.StartRedis(t, "")
	sentinel := testutil.StartSentinel(t, "gatehouse", primary.Addr)
	cluster := testutil.StartCluster(t, 3)
	for _, tc := range []struct {
		name string
		cfg  redisx.Config
	}{
		{"sentinel", redisx.Config{URL: "redis://127.0.0.1:1/0", Timeout: time.Second, SentinelMaster: "gatehouse", SentinelNodes: []string{sentinel.Addr}}},
		{"cluster", redisx.Config{URL: "redis://127.0.0.1:1/0", Timeout: time.Second, ClusterNodes: cluster}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			mk := func(t *testing.T) *Redis {
				r, err := NewRedis(tc.cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				n++
				r.Prefix = tc.name + string(rune('a'+n)) + ":"
				return r
			}
			RunLimiterTests(t, func(t *testing.T) Limiter { return mk(t) })
			RunGateTests(t, func(t *testing.T) Gate { return mk(t) })
		})
	}
}
