package runtime

import (
	"context"
	"net"
	goruntime "runtime"
	"testing"
	"time"

	"gatehouse/internal/health"
	"gatehouse/internal/lb"
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
