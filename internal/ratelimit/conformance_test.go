package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/phase"
)

// RunLimiterTests is the conformance suite every Limiter passes (the
// Redis store will run it too). Time is injected: no test sleeps.
func RunLimiterTests(t *testing.T, newLimiter func(t *testing.T) Limiter) {
	ctx := context.Background()
	t0 := time.Unix(1_000_000, 0)
	l := Limit{Rate: 10, Burst: 5} // one every 100ms, 5 at once
	t.Run("burst then rate, exactly", func(t *testing.T) {
		lim := newLimiter(t)
		for i := 0; i < 5; i++ {
			r, err := lim.Allow(ctx, k(1), l, t0)
			if err != nil || !r.Allowed || r.Remaining != 4-i {
				t.Fatalf("burst request %d: %+v %v", i, r, err)
			}
		}
		r, _ := lim.Allow(ctx, k(1), l, t0)
		if r.Allowed || r.RetryAfter != 100*time.Millisecond {
			t.Fatalf("6th at once: %+v", r)
		}
		if r, _ := lim.Allow(ctx, k(1), l, t0.Add(99*time.Millisecond)); r.Allowed {
			t.Fatal("allowed before the interval")
		}
		if r, _ := lim.Allow(ctx, k(1), l, t0.Add(100*time.Millisecond)); !r.Allowed {
			t.Fatal("refused after the interval")
		}
		// Steady state: exactly one per interval.
		allowed := 0
		for ms := 101; ms <= 1100; ms++ { // 200, 300, ..., 1100
			if r, _ := lim.Allow(ctx, k(1), l, t0.Add(time.Duration(ms)*time.Millisecond)); r.Allowed {
				allowed++
			}
		}
		if allowed != 10 {
			t.Fatalf("%d allowed over ~1s at 10/s, want 10", allowed)
		}
	})
	t.Run("recovers fully after burst/rate", func(t *testing.T) {
		lim := newLimiter(t)
		for i := 0; i < 6; i++ {
			lim.Allow(ctx, k(2), l, t0)
		}
		later := t0.Add(500 * time.Millisecond)
		for i := 0; i < 5; i++ {
			if r, _ := lim.Allow(ctx, k(2), l, later); !r.Allowed {
				t.Fatalf("request %d after recovery refused", i)
			}
		}
	})
	t.Run("keys are isolated", func(t *testing.T) {
		lim := newLimiter(t)
		for i := 0; i < 6; i++ {
			lim.Allow(ctx, k(3), l, t0)
		}
		if r, _ := lim.Allow(ctx, k(4), l, t0); !r.Allowed {
			t.Fatal("one key's limit applied to another")
		}
	})
}

func TestMemoryConformance(t *testing.T) {
	RunLimiterTests(t, func(*testing.T) Limiter { return NewMemory(10000) })
}

// A flood of distinct keys keeps memory bounded and never resets a
// limited key.
func TestMemoryBoundedUnderKeyFlood(t *testing.T) {
	const maxKeys = 100_000
	m := NewMemory(maxKeys)
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	l := Limit{Rate: 1, Burst: 1}
	// A victim key, limited.
	m.Allow(ctx, Key{Hash: 7}, l, now)
	if r, _ := m.Allow(ctx, Key{Hash: 7}, l, now); r.Allowed {
		t.Fatal("victim not limited")
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for k := uint64(1_000_000); k < 2_000_000; k++ { // 1,000,000 distinct keys
		m.Allow(ctx, Key{Hash: k}, l, now)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1,000,000 distinct keys: %d keys held, heap grew %.1f MiB", m.Len(), float64(grew)/(1<<20))
	if m.Len() > maxKeys {
		t.Fatalf("%d keys held, cap %d", m.Len(), maxKeys)
	}
	if grew > 32<<20 {
		t.Fatalf("heap grew %d bytes", grew)
	}
	if r, _ := m.Allow(ctx, Key{Hash: 7}, l, now); r.Allowed {
		t.Fatal("the flood reset a limited key")
	}
	// The flood's new keys share the overflow bucket: limited together.
	if r, _ := m.Allow(ctx, Key{Hash: 5_000_000}, l, now); r.Allowed {
		t.Fatal("an untracked key got a fresh bucket while the store was full of limited keys")
	}
}

func BenchmarkMemoryAllow(b *testing.B) {
	m := NewMemory(100_000)
	ctx := context.Background()
	l := Limit{Rate: 1e9, Burst: 1000}
	now := time.Now()
	b.ReportAllocs()
	var k uint64
	for b.Loop() {
		k++
		m.Allow(ctx, Key{Hash: k % 1000}, l, now)
	}
}

// k is a test key usable by every store.
func k(n int) Key { return Key{Hash: uint64(n), Text: "test:" + strconv.Itoa(n)} }

// RunGateTests is the conformance suite every Gate (concurrency limit)
// passes.
func RunGateTests(t *testing.T, newGate func(t *testing.T) Gate) {
	ctx := context.Background()
	t.Run("at most max in flight, slots come back", func(t *testing.T) {
		g := newGate(t)
		var releases []func()
		for i := 0; i < 3; i++ {
			rel, ok, err := g.Acquire(ctx, k(1), 3)
			if err != nil || !ok {
				t.Fatalf("slot %d: ok=%v err=%v", i, ok, err)
			}
			releases = append(releases, rel)
		}
		if _, ok, _ := g.Acquire(ctx, k(1), 3); ok {
			t.Fatal("4th slot of 3 given")
		}
		releases[0]()
		releases[0]() // a second release gives nothing back
		rel, ok, _ := g.Acquire(ctx, k(1), 3)
		if !ok {
			t.Fatal("no slot after a release")
		}
		if _, ok, _ := g.Acquire(ctx, k(1), 3); ok {
			t.Fatal("a double release gave two slots back")
		}
		rel()
		releases[1]()
		releases[2]()
		for i := 0; i < 3; i++ {
			if _, ok, _ := g.Acquire(ctx, k(1), 3); !ok {
				t.Fatalf("slot %d after all were released", i)
			}
		}
	})
	t.Run("keys are isolated", func(t *testing.T) {
		g := newGate(t)
		if _, ok, _ := g.Acquire(ctx, k(2), 1); !ok {
			t.Fatal("first slot")
		}
		if _, ok, _ := g.Acquire(ctx, k(2), 1); ok {
			t.Fatal("second slot of 1")
		}
		if _, ok, _ := g.Acquire(ctx, k(3), 1); !ok {
			t.Fatal("another key was limited")
		}
	})
	t.Run("concurrent takers get exactly max", func(t *testing.T) {
		g := newGate(t)
		var mu sync.Mutex
		got := 0
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Go(func() {
				if _, ok, err := g.Acquire(ctx, k(4), 10); ok && err == nil {
					mu.Lock()
					got++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if got != 10 {
			t.Fatalf("%d of 50 concurrent takers got a slot, want 10", got)
		}
	})
}

func TestMemoryGateConformance(t *testing.T) {
	RunGateTests(t, func(*testing.T) Gate { return NewMemoryGate() })
}

func TestMemoryGateForgetsIdleKeys(t *testing.T) {
	g := NewMemoryGate()
	rel, _, _ := g.Acquire(context.Background(), k(9), 2)
	rel()
	for i := range g.shards {
		if n := len(g.shards[i].n); n != 0 {
			t.Fatalf("shard %d holds %d keys with nothing in flight", i, n)
		}
	}
}

// flaky is a Limiter whose failure the test switches.
type flaky struct{ fail bool }

func (f *flaky) Allow(context.Context, Key, Limit, time.Time) (Result, error) {
	if f.fail {
		return Result{}, context.DeadlineExceeded
	}
	return Result{Allowed: true}, nil
}

type degradedLog struct{ events []bool }

func (d *degradedLog) RateLimit(string, string)   {}
func (d *degradedLog) StoreError(string)          {}
func (d *degradedLog) Degraded(_ string, on bool) { d.events = append(d.events, on) }

// The switch to the fallback and the recovery are each reported once,
// however many requests fail in between.
func TestFallbackSwitchReported(t *testing.T) {
	store := &flaky{}
	obs := &degradedLog{}
	f := &Filter{Policy: "p", Parts: ParseKey("client_ip"), Limit: Limit{Rate: 100, Burst: 10}, Store: store, Local: NewMemory(100), Obs: obs, Seed: maphash.MakeSeed()}
	f.Prepare()
	req := httptest.NewRequest("GET", "/", nil)
	run := func() {
		if _, err := f.FilterRequest(&phase.RequestCtx{}, nil, req); err != nil {
			t.Fatal(err)
		}
	}
	run()
	store.fail = true
	run()
	run()
	store.fail = false
	run()
	run()
	if fmt.Sprint(obs.events) != "[true false]" {
		t.Fatalf("degraded events %v, want [true false]", obs.events)
	}
}

// BenchmarkFilter is a policy's whole per-request work, allowed: the key
// from the client address, the decision, and (with concurrency) a slot
// taken and given back.
func BenchmarkFilter(b *testing.B) {
	for _, tc := range []struct {
		name        string
		rate        float64
		concurrency int
	}{{"rate", 1e9, 0}, {"concurrency", 0, 1000}, {"both", 1e9, 1000}} {
		b.Run(tc.name, func(b *testing.B) {
			f := &Filter{Policy: "p", Parts: ParseKey("client_ip"), Limit: Limit{Rate: tc.rate, Burst: 1 << 30},
				Store: NewMemory(1000), Gate: NewMemoryGate(), MaxInFlight: tc.concurrency, Seed: maphash.MakeSeed()}
			f.Prepare()
			req := httptest.NewRequest("GET", "/", nil)
			rc := &phase.RequestCtx{ClientIP: netip.MustParseAddr("192.0.2.7")}
			b.ReportAllocs()
			for b.Loop() {
				rc.RateLimit = ""
				if _, err := f.FilterRequest(rc, nil, req); err != nil {
					b.Fatal(err)
				}
				rc.End()
			}
		})
	}
}

// plainObs counts decisions by RateLimit; countingObs hands out counters
// (DecisionCounters) besides.
type plainObs struct {
	degradedLog
	byCall []string
}

func (o *plainObs) RateLimit(_, result string) { o.byCall = append(o.byCall, result) }

type countingObs struct {
	plainObs
	byCounter map[string]int
}

func (o *countingObs) DecisionCounters(string) (allowed, limited, soft func()) {
	inc := func(r string) func() { return func() { o.byCounter[r]++ } }
	return inc("allowed"), inc("limited"), inc("soft_limited")
}

// An Observer that offers DecisionCounters is counted through them, each
// decision under its own result; one that does not, through RateLimit.
func TestDecisionCounters(t *testing.T) {
	for _, soft := range []bool{false, true} {
		obs := &countingObs{byCounter: map[string]int{}}
		f := &Filter{Policy: "p", Parts: ParseKey("client_ip"), Limit: Limit{Rate: 1, Burst: 2}, Soft: soft,
			Store: NewMemory(100), Obs: obs, Seed: maphash.MakeSeed(), Now: func() time.Time { return time.Unix(1000, 0) }}
		f.Prepare()
		req := httptest.NewRequest("GET", "/", nil)
		for range 3 {
			f.FilterRequest(&phase.RequestCtx{ClientIP: netip.MustParseAddr("192.0.2.7")}, nil, req)
		}
		over := "limited"
		if soft {
			over = "soft_limited"
		}
		if want := map[string]int{"allowed": 2, over: 1}; fmt.Sprint(obs.byCounter) != fmt.Sprint(want) || obs.byCall != nil {
			t.Errorf("soft %v: counters %v, calls %v; want counters %v", soft, obs.byCounter, obs.byCall, want)
		}
	}
	obs := &plainObs{}
	f := &Filter{Policy: "p", Parts: ParseKey("client_ip"), Limit: Limit{Rate: 1, Burst: 1}, Store: NewMemory(100), Obs: obs, Seed: maphash.MakeSeed()}
	f.Prepare()
	f.FilterRequest(&phase.RequestCtx{}, nil, httptest.NewRequest("GET", "/", nil))
	if fmt.Sprint(obs.byCall) != "[allowed]" {
		t.Errorf("without counters: calls %v", obs.byCall)
	}
}

// Without an injected clock, a request is counted at its start
// (RequestCtx.Start, read by the engine): two requests a minute apart by
// their starts both pass a limit of one a minute, and a third at the
// second's start is refused, however close together they run.
func TestRequestCountedAtItsStart(t *testing.T) {
	f := &Filter{Policy: "p", Parts: ParseKey("client_ip"), Limit: Limit{Rate: 1.0 / 60, Burst: 1},
		Store: NewMemory(100), Seed: maphash.MakeSeed()}
	f.Prepare()
	ip := netip.MustParseAddr("192.0.2.7")
	start := time.Unix(1_000_000, 0)
	for i, tc := range []struct {
		start time.Time
		ok    bool
	}{{start, true}, {start.Add(time.Minute), true}, {start.Add(time.Minute), false}} {
		_, err := f.FilterRequest(&phase.RequestCtx{ClientIP: ip, Start: tc.start}, nil, httptest.NewRequest("GET", "/", nil))
		if (err == nil) != tc.ok {
			t.Errorf("request %d at %v: err %v, want allowed %v", i, tc.start, err, tc.ok)
		}
	}
}
