package lb

import (
	"gatehouse/internal/phase"

	"fmt"
	"math"
	"net/http"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestPool(t testing.TB, balancer string, weights []int, backups int, c *clock) *Pool {
	t.Helper()
	var ts []*Target
	for i, w := range weights {
		ts = append(ts, NewTarget(fmt.Sprintf("10.0.0.%d:80", i+1), w, false))
	}
	for i := 0; i < backups; i++ {
		ts = append(ts, NewTarget(fmt.Sprintf("10.0.1.%d:80", i+1), 1, true))
	}
	s := Settings{Balancer: balancer, Seed: 42, Failures: 3, EjectionTime: 10 * time.Second, MaxEjectedPct: 50}
	if c != nil {
		s.Now = c.now
	}
	return NewPool("app", ts, s, nil)
}

func counts(t *testing.T, p *Pool, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		tg, err := p.Pick(nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		got[tg.Addr]++
	}
	return got
}

func TestBalancerDistribution(t *testing.T) {
	t.Parallel()
	const n = 30000
	tests := []struct {
		balancer string
		weights  []int
		// want share per target, and the tolerance (absolute share)
		want []float64
		tol  float64
	}{
		{"round_robin", []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.0001},
		{"weighted_round_robin", []int{5, 1, 1}, []float64{5. / 7, 1. / 7, 1. / 7}, 0.0001},
		{"least_requests", []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.02},
		{"least_requests", []int{2, 1, 1}, []float64{1, 0, 0}, 0}, // idle: in-flight per weight is lowest on the heaviest
		{"p2c_ewma", []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.03},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s%v", tt.balancer, tt.weights), func(t *testing.T) {
			t.Parallel()
			p := newTestPool(t, tt.balancer, tt.weights, 0, nil)
			got := counts(t, p, n)
			for i, w := range tt.want {
				share := float64(got[p.Targets()[i].Addr]) / n
				if math.Abs(share-w) > tt.tol {
					t.Errorf("target %d share %.4f, want %.4f ± %.4f (%v)", i, share, w, tt.tol, got)
				}
			}
		})
	}
}

func TestSmoothWRRInterleaves(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, "weighted_round_robin", []int{5, 1, 1}, 0, nil)
	var seq []int
	for i := 0; i < 7; i++ {
		tg, _ := p.Pick(nil, 0)
		for j, x := range p.Targets() {
			if x == tg {
				seq = append(seq, j)
			}
		}
	}
	// nginx's smooth WRR for {5,1,1}: a a b a c a a
	if fmt.Sprint(seq) != "[0 0 1 0 2 0 0]" {
		t.Fatalf("sequence %v", seq)
	}
}

func TestLeastRequestsAvoidsBusyTarget(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, "least_requests", []int{1, 1, 1}, 0, nil)
	for i := 0; i < 5; i++ {
		p.Targets()[0].Begin()
		p.Targets()[1].Begin()
	}
	for i := 0; i < 100; i++ {
		if tg, _ := p.Pick(nil, 0); tg != p.Targets()[2] {
			t.Fatalf("picked %s with 5 in flight", tg.Addr)
		}
	}
}

func TestP2CPrefersFastTarget(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, "p2c_ewma", []int{1, 1, 1}, 0, nil)
	p.Targets()[0].ObserveLatency(50 * time.Millisecond)
	p.Targets()[1].ObserveLatency(time.Millisecond)
	p.Targets()[2].ObserveLatency(time.Millisecond)
	got := counts(t, p, 3000)
	if share := float64(got[p.Targets()[0].Addr]) / 3000; share > 0.05 {
		t.Fatalf("slow target got %.2f of picks: %v", share, got)
	}
}

func TestTriedAndUnavailableAreSkipped(t *testing.T) {
	t.Parallel()
	for _, b := range []string{"round_robin", "weighted_round_robin", "least_requests", "p2c_ewma", "consistent_hash"} {
		p := newTestPool(t, b, []int{1, 1, 1}, 1, nil)
		p.Targets()[0].active.Store(StateDown)
		var tried Tried
		tried.Add(p.Targets()[1])
		for i := 0; i < 50; i++ {
			if tg, _ := p.Pick(&tried, 0); tg != p.Targets()[2] {
				t.Fatalf("%s: picked %s", b, tg.Addr)
			}
		}
		// Every primary down or tried: the backup serves.
		tried.Add(p.Targets()[2])
		if tg, _ := p.Pick(&tried, 0); tg == nil || !tg.Backup {
			t.Fatalf("%s: backup not used: %v", b, tg)
		}
		tried.Add(p.Targets()[3])
		if _, err := p.Pick(&tried, 0); err != ErrNoTarget {
			t.Fatalf("%s: err %v, want ErrNoTarget", b, err)
		}
	}
}

func TestPassiveEjectionBackoffAndCap(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1000, 0)}
	p := newTestPool(t, "round_robin", []int{1, 1, 1, 1}, 0, c)
	a, b, d := p.Targets()[0], p.Targets()[1], p.Targets()[2]
	fail := func(tg *Target, n int) {
		for i := 0; i < n; i++ {
			p.Report(tg, Failure)
		}
	}
	fail(a, 2)
	p.Report(a, Success) // a success resets the count
	fail(a, 2)
	if !a.Available(c.t.UnixNano()) {
		t.Fatal("ejected before 3 consecutive failures")
	}
	fail(a, 1)
	if a.Available(c.t.UnixNano()) {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	c.t = c.t.Add(10*time.Second + time.Millisecond)
	if !a.Available(c.t.UnixNano()) {
		t.Fatal("still ejected after the first ejection time")
	}
	fail(a, 3) // second ejection: twice as long
	c.t = c.t.Add(15 * time.Second)
	if a.Available(c.t.UnixNano()) {
		t.Fatal("second ejection not longer than the first")
	}
	c.t = c.t.Add(6 * time.Second)
	if !a.Available(c.t.UnixNano()) {
		t.Fatal("second ejection longer than 20s")
	}
	// The cap: 50 % of 4 targets may be ejected at once.
	fail(a, 3)
	fail(b, 3)
	fail(d, 3)
	if a.Available(c.t.UnixNano()) || b.Available(c.t.UnixNano()) || !d.Available(c.t.UnixNano()) {
		t.Fatalf("cap not applied: a %v b %v d %v", a.Available(c.t.UnixNano()), b.Available(c.t.UnixNano()), d.Available(c.t.UnixNano()))
	}
	if got := a.totalEjects.Load(); got != 3 {
		t.Fatalf("ejections %d", got)
	}
}

func TestSlowStartRamps(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1000, 0)}
	tg := NewTarget("x:1", 1, false)
	tg.recoveredAt.Store(c.t.UnixNano())
	w := 10 * time.Second
	for _, tt := range []struct {
		after time.Duration
		want  float64
	}{{0, 0.1}, {5 * time.Second, 0.5}, {10 * time.Second, 1}, {time.Hour, 1}} {
		if got := tg.slowStart(c.t.Add(tt.after).UnixNano(), w); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("after %v: %v, want %v", tt.after, got, tt.want)
		}
	}
	// A recovering target gets less than its share from round robin.
	p := newTestPool(t, "round_robin", []int{1, 1}, 0, c)
	p.Settings.SlowStart = w
	p.Targets()[1].recoveredAt.Store(c.t.UnixNano())
	got := counts(t, p, 10000)
	if share := float64(got[p.Targets()[1].Addr]) / 10000; share > 0.15 {
		t.Fatalf("recovering target share %.3f at the start of slow start", share)
	}
}

func TestCheckStateRiseFall(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	tg := NewTarget("x:1", 1, false)
	var cs CheckState
	steps := []struct {
		ok   bool
		want int32 // state after
		chg  int32
	}{
		{false, StateUnchecked, 0}, {false, StateUnchecked, 0}, {false, StateDown, StateDown}, // fall 3
		{true, StateDown, 0}, {false, StateDown, 0}, {true, StateDown, 0}, {true, StateUp, StateUp}, // rise 2, reset by a failure
		{false, StateUp, 0}, {true, StateUp, 0},
	}
	for i, s := range steps {
		chg := cs.Observe(tg, s.ok, "r", now, 2, 3)
		if chg != s.chg || tg.active.Load() != s.want {
			t.Fatalf("step %d: change %d state %d, want %d %d", i, chg, tg.active.Load(), s.chg, s.want)
		}
	}
	if tg.recoveredAt.Load() != now.UnixNano() {
		t.Fatal("recovery did not start slow start")
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, b := range []string{"round_robin", "weighted_round_robin", "least_requests", "p2c_ewma", "consistent_hash"} {
		p := newTestPool(t, b, []int{1, 2, 3}, 1, nil)
		var tried Tried
		tried.Add(p.Targets()[0])
		p.Pick(&tried, 0) // wrr builds its table on first use
		if a := testing.AllocsPerRun(200, func() { p.Pick(&tried, 0) }); a != 0 {
			t.Errorf("%s: %v allocs per pick", b, a)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, bal := range []string{"round_robin", "weighted_round_robin", "least_requests", "p2c_ewma", "consistent_hash"} {
		for _, n := range []int{3, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", bal, n), func(b *testing.B) {
				w := make([]int, n)
				for i := range w {
					w[i] = 1 + i%3
				}
				p := newTestPool(b, bal, w, 0, nil)
				b.ReportAllocs()
				var key uint64
				for b.Loop() {
					key += 0x9E3779B97F4A7C15
					p.Pick(nil, key)
				}
			})
		}
	}
}

func hashPool(addrs ...string) *Pool {
	var ts []*Target
	for _, a := range addrs {
		ts = append(ts, NewTarget(a, 1, false))
	}
	return NewPool("app", ts, Settings{Balancer: "consistent_hash", HashKey: "client_ip"}, nil)
}

func owners(t *testing.T, p *Pool, keys int) []string {
	t.Helper()
	out := make([]string, keys)
	for i := range out {
		tg, err := p.Pick(nil, xxhashKey(i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = tg.Addr
	}
	return out
}

func xxhashKey(i int) uint64 {
	return HashKey("path", nil, nil, "", fmt.Sprintf("/user/%d", i))
}

func TestConsistentHashBoundedMovement(t *testing.T) {
	t.Parallel()
	const keys = 20000
	three := owners(t, hashPool("a:1", "b:1", "c:1"), keys)
	share := map[string]int{}
	for _, o := range three {
		share[o]++
	}
	for a, n := range share {
		if f := float64(n) / keys; f < 0.25 || f > 0.42 {
			t.Errorf("target %s owns %.2f of keys", a, f)
		}
	}
	// A target joins: about a quarter of the keys move, all of them to it.
	four := owners(t, hashPool("a:1", "b:1", "c:1", "d:1"), keys)
	moved := 0
	for i := range three {
		if three[i] != four[i] {
			moved++
			if four[i] != "d:1" {
				t.Fatalf("key %d moved from %s to %s, not to the new target", i, three[i], four[i])
			}
		}
	}
	if f := float64(moved) / keys; f < 0.15 || f > 0.35 {
		t.Errorf("%.2f of keys moved when 1 target joined 3", f)
	}
	// A target goes down: only its keys move.
	p := hashPool("a:1", "b:1", "c:1")
	p.Targets()[1].active.Store(StateDown)
	down := owners(t, p, keys)
	for i := range three {
		if three[i] != "b:1" && down[i] != three[i] {
			t.Fatalf("key %d moved from %s though its target is fine", i, three[i])
		}
		if down[i] == "b:1" {
			t.Fatal("a key still goes to the down target")
		}
	}
	// The same key always lands on the same target.
	if again := owners(t, hashPool("c:1", "a:1", "b:1"), keys); fmt.Sprint(again) != fmt.Sprint(three) {
		t.Error("target order in the config changed key placement")
	}
}

func TestHashKeySources(t *testing.T) {
	t.Parallel()
	r, _ := http.NewRequest("GET", "http://x/a?b=1", nil)
	r.Header.Set("X-User", "alice")
	r.AddCookie(&http.Cookie{Name: "sid", Value: "s1"})
	ip := HashKey("client_ip", r, nil, "10.0.0.1", "/a")
	for _, tt := range []struct {
		spec string
		same bool // same as hashing the client IP
	}{
		{"client_ip", true}, {"path", false}, {"header:X-User", false}, {"cookie:sid", false},
		{"header:X-Missing", true}, {"cookie:missing", true},
	} {
		if got := HashKey(tt.spec, r, nil, "10.0.0.1", "/a"); (got == ip) != tt.same {
			t.Errorf("%s: same as client_ip = %v, want %v", tt.spec, got == ip, tt.same)
		}
	}
	// Identity headers are not in r.Header; the verified value is used.
	id := phase.NewIdentity([]phase.Header{{Name: "X-Auth-Subject", Values: []string{"alice"}}})
	r.Header.Set("X-Auth-Subject", "mallory")
	if HashKey("header:x-auth-subject", r, &id, "10.0.0.1", "/a") != HashKey("header:X-User", r, nil, "10.0.0.1", "/a") {
		t.Error("header:X-Auth-Subject did not hash the verified subject")
	}
}
