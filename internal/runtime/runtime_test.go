package runtime

import (
	"context"
	"net"
	goruntime "runtime"
	"slices"
	"testing"
	"time"

	"gatehouse/internal/discovery"
	"gatehouse/internal/health"
	"gatehouse/internal/lb"
	"gatehouse/internal/observe/metrics"
	"gatehouse/internal/testutil"
)

// Checkers start with Start (or at once for pools made after it) and stop
// when their pool leaves the live snapshot.
func TestRegistryRunsCheckersForLivePoolsOnly(t *testing.T) {
	testutil.CheckGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := NewRegistry(nil, nil)
	target := r.Target("app", ln.Addr().String(), 1, false)
	spec := PoolSpec{Key: "app|1", Name: "app", Static: []*lb.Target{target},
		Check: &health.Config{Type: "tcp", Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 1},
		Make:  func() *lb.Pool { return lb.NewPool("app", []*lb.Target{target}, lb.Settings{}, nil) }}
	pool := r.Pool(spec)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := goruntime.NumGoroutine()
	r.Start(ctx)
	if !testutil.WaitFor(5*time.Second, func() bool {
		return target.Status(time.Now(), 0).State == "up"
	}) {
		t.Fatal("checker never ran")
	}
	if again := r.Pool(spec); again != pool {
		t.Fatal("same spec, new pool")
	}
	if r.Target("app", ln.Addr().String(), 1, false) != target {
		t.Fatal("same address, new target state")
	}
	r.Retain(&Snapshot{}) // the pool left the config: its checker stops
	if !testutil.WaitFor(5*time.Second, func() bool { return goruntime.NumGoroutine() <= before }) {
		t.Fatalf("checker still running after its pool left: %d goroutines, %d before", goruntime.NumGoroutine(), before)
	}
	r.Close()
}

// A reload forgets the metric series of the routes and targets the live
// config no longer has (a route renamed, a target moved), and keeps the
// others': they were exported for the life of the process, and with DNS
// discovery every address a deploy ever had stayed.
func TestRetainForgetsSeriesOfWhatLeft(t *testing.T) {
	m := metrics.New("test")
	r := NewRegistry(m, nil)
	a := r.Target("app", "127.0.0.1:1", 1, false)
	b := r.Target("app", "127.0.0.1:2", 1, false)
	pool := func(key string, ts ...*lb.Target) *lb.Pool {
		return r.Pool(PoolSpec{Key: key, Name: "app", Static: ts,
			Make: func() *lb.Pool { return lb.NewPool("app", ts, lb.Settings{}, m) }})
	}
	pool("v1", a, b)
	a.Obs.Response(200, 0.01)
	b.Obs.Response(200, 0.01)
	old, kept, login, none := m.Route("old"), m.Route("kept"), m.Route("gatehouse-login"), m.Route("(none)")
	for _, ro := range []*metrics.RouteObs{old, kept, login, none} {
		ro.Observe("GET", 200, 0.01)
	}

	// The reload: target a and route "old" are gone.
	b2 := r.Target("app", "127.0.0.1:2", 2, false) // a new weight: a new target, the same series
	live := &Snapshot{Pools: map[string]*lb.Pool{"app": pool("v2", b2)}, Routes: []*Route{{Name: "kept", Obs: kept}},
		Local: map[string]*Route{"/_gatehouse/login": {Name: "gatehouse-login", Obs: login}}, Fallback: &Route{Obs: none}}
	r.Retain(live)

	series := map[string]bool{}
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "route" || l.GetName() == "target" {
					series[f.GetName()+" "+l.GetValue()] = true
				}
			}
		}
	}
	for _, gone := range []string{"gatehouse_http_requests_total old", "gatehouse_upstream_requests_total 127.0.0.1:1",
		"gatehouse_upstream_response_header_seconds 127.0.0.1:1"} {
		if series[gone] {
			t.Errorf("%s is still exported", gone)
		}
	}
	for _, stays := range []string{"gatehouse_http_requests_total kept", "gatehouse_http_requests_total gatehouse-login",
		"gatehouse_http_requests_total (none)", "gatehouse_upstream_requests_total 127.0.0.1:2"} {
		if !series[stays] {
			t.Errorf("%s was forgotten", stays)
		}
	}
	if r.Target("app", "127.0.0.1:1", 1, false) == a {
		t.Error("the registry kept the target that left")
	}
	r.Close()
}

// DNS discovery's changes forget the targets that left, and their series,
// without a reload: pod addresses change with every deploy.
func TestDiscoveryForgetsTargetsThatLeft(t *testing.T) {
	dns := testutil.StartDNS(t)
	dns.SetIPs("app.test", "10.0.0.1")
	m := metrics.New("test")
	r := NewRegistry(m, nil)
	pool := r.Pool(PoolSpec{Key: "app", Name: "app",
		Discover: &discovery.Config{Name: "app.test", Type: "A", Port: 3003, Interval: 20 * time.Millisecond, Resolver: dns.Addr},
		Make:     func() *lb.Pool { return lb.NewPool("app", nil, lb.Settings{}, m) }})
	ctx, cancel := context.WithCancel(context.Background())
	defer r.Close()
	defer cancel()
	r.Start(ctx)
	addrs := func() (out []string) {
		for _, t := range pool.Targets() {
			out = append(out, t.Addr)
		}
		return out
	}
	if !testutil.WaitFor(5*time.Second, func() bool { return slices.Equal(addrs(), []string{"10.0.0.1:3003"}) }) {
		t.Fatalf("targets %v", addrs())
	}
	pool.Targets()[0].Obs.Response(200, 0.01)
	// A target a compile still running has been given: no pool has it
	// yet, and the discovery's sweep must not drop it.
	compiling := r.Target("other", "10.9.9.9:1", 1, false)
	dns.SetIPs("app.test", "10.0.0.2")
	if !testutil.WaitFor(5*time.Second, func() bool { return slices.Equal(addrs(), []string{"10.0.0.2:3003"}) }) {
		t.Fatalf("targets %v", addrs())
	}
	exported := func() bool {
		fams, _ := m.Registry.Gather()
		for _, f := range fams {
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetValue() == "10.0.0.1:3003" {
						return true
					}
				}
			}
		}
		return false
	}
	// The sweep runs right after the set changes.
	if !testutil.WaitFor(5*time.Second, func() bool { return !exported() }) {
		t.Error("the address that left is still exported")
	}
	r.mu.Lock()
	n := len(r.targets)
	r.mu.Unlock()
	if n != 2 {
		t.Errorf("the registry holds %d targets, want the one in use and the one being compiled", n)
	}
	if r.Target("other", "10.9.9.9:1", 1, false) != compiling {
		t.Error("a sweep dropped the target a compile holds")
	}
}
