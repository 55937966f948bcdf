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

// With Redis gone (connection refused), a call fails at once, not after
// the timeout spent on dial retries, and go-redis writes no line of its
// own per call (Gatehouse logs the store's failure once).
func TestRedisRefusedFailsAtOnce(t *testing.T) {
	srv := testutil.StartRedis(t, "")
	r := newLeaseGate(t, srv, 2*time.Second, 0)
	srv.Stop()
	start := time.Now()
	for range 5 {
		if _, err := r.Allow(context.Background(), k(1), Limit{Rate: 1, Burst: 1}, time.Now()); err == nil {
			t.Fatal("no error with Redis gone")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("5 calls to a refusing Redis took %v (timeout 2s each)", d)
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

// newLeaseGate is a Redis gate on srv whose leases last ttl.
func newLeaseGate(t *testing.T, srv *testutil.Redis, timeout, ttl time.Duration) *Redis {
	t.Helper()
	r, err := NewRedis(redisx.Config{URL: "redis://" + srv.Addr + "/0", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	r.LeaseTTL = ttl
	return r
}

// A take whose answer is lost while Redis stalls (DEBUG SLEEP: the
// server does nothing, the take waits in the socket) still runs once
// Redis resumes; its slot must come back within the lease, not hold the
// key's limit for good (a concurrency limit of 1 would refuse every
// request from then on).
func TestRedisGateTakeLostInAStall(t *testing.T) {
	srv := testutil.StartRedis(t, "", "--enable-debug-command", "local")
	const ttl = time.Second
	r := newLeaseGate(t, srv, 100*time.Millisecond, ttl)
	ctx := context.Background()
	// Warm: the script is loaded, so the stalled EVALSHA will run.
	rel, ok, err := r.Acquire(ctx, k(1), 1)
	if err != nil || !ok {
		t.Fatalf("warm take: ok=%v err=%v", ok, err)
	}
	rel()
	staller := newLeaseGate(t, srv, 5*time.Second, 0)
	go staller.Client.Do(context.Background(), "DEBUG", "SLEEP", "0.6")
	// DEBUG SLEEP has begun when a PING goes unanswered (on a client of
	// its own: r's pooled connection must stay, for the take to be
	// written before its timeout, as a busy gateway's would be).
	probe := newLeaseGate(t, srv, time.Second, 0)
	if !testutil.WaitFor(5*time.Second, func() bool {
		pctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		return probe.Client.Ping(pctx).Err() != nil
	}) {
		t.Fatal("Redis never stalled")
	}
	if _, ok, err := r.Acquire(ctx, k(1), 1); err == nil || ok {
		t.Fatalf("a take during the pause: ok=%v err=%v, want a timeout", ok, err)
	}
	// Redis ran the take when it resumed: the slot is held by no one.
	if !testutil.WaitFor(5*time.Second, func() bool {
		n, err := r.Client.ZCard(ctx, r.Prefix+"inflight:"+k(1).Text).Result()
		return err == nil && n == 1
	}) {
		t.Fatal("the stalled take never ran: the test shows nothing")
	}
	// Its lease runs out, refused takes notwithstanding.
	start := time.Now()
	if !testutil.WaitFor(10*ttl, func() bool {
		rel, ok, _ := r.Acquire(ctx, k(1), 1)
		if ok {
			rel()
		}
		return ok
	}) {
		t.Fatal("the lost take's slot never came back")
	}
	if d := time.Since(start); d > 3*ttl {
		t.Fatalf("the slot came back after %v, lease %v", d, ttl)
	}
}

// A lease whose holder is gone (an instance killed while it held the
// slot: taken, never renewed nor given back) runs out after its TTL; a
// refused take does not extend it. A lease still held is renewed and
// outlives its TTL.
func TestRedisGateLeases(t *testing.T) {
	srv := testutil.StartRedis(t, "")
	const ttl = time.Second // renewed every 333 ms: a margin for a loaded CI machine
	r := newLeaseGate(t, srv, time.Second, ttl)
	ctx := context.Background()
	key := r.Prefix + "inflight:" + k(1).Text
	// The dead instance's take, as its Acquire sent it.
	if ok, err := acquireScript.Run(ctx, r.Client, []string{key}, 1, ttl.Milliseconds(), "dead:1").Int(); err != nil || ok != 1 {
		t.Fatalf("take: %d %v", ok, err)
	}
	if _, ok, _ := r.Acquire(ctx, k(1), 1); ok {
		t.Fatal("a slot held by another instance given again")
	}
	// Refused takes keep coming; the lease still runs out.
	if !testutil.WaitFor(10*ttl, func() bool {
		rel, ok, _ := r.Acquire(ctx, k(1), 1)
		if ok {
			rel()
		}
		return ok
	}) {
		t.Fatal("the dead instance's slot never came back")
	}
	// A request that holds its slot past the TTL keeps it.
	rel, ok, err := r.Acquire(ctx, k(1), 1)
	if err != nil || !ok {
		t.Fatalf("take: ok=%v err=%v", ok, err)
	}
	for deadline := time.Now().Add(3 * ttl); time.Now().Before(deadline); time.Sleep(ttl / 8) {
		if _, ok, _ := r.Acquire(ctx, k(1), 1); ok {
			t.Fatal("a slot in use was given again after its lease's TTL")
		}
	}
	rel()
	if _, ok, _ := r.Acquire(ctx, k(1), 1); !ok {
		t.Fatal("no slot after the release")
	}
}
