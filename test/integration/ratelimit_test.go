//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// Two Gatehouse processes share one limit through a real redis-server;
// when Redis dies, each policy's fallback applies without hanging; when it
// returns, sharing resumes.
func TestSharedLimitThroughRedis(t *testing.T) {
	redis := testutil.StartRedis(t, "")
	up := startUpstream(t, "app")
	var gates []string
	for i := 0; i < 2; i++ {
		addr := testutil.FreePort(t)
		testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q] }
admin: { listen: "off" }
redis: { url: "redis://%s/0", timeout: 100ms }
rate_limits:
  shared: { rate: 1/m, burst: 10, store: redis }
  strict: { rate: 1/m, burst: 10, store: redis, on_store_error: deny }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: /app }, upstream: app, rate_limits: [shared] }
  - { name: strict, match: { path_prefix: /strict }, upstream: app, rate_limits: [strict] }
`, addr, redis.Addr, up.Addr), addr)
		gates = append(gates, "http://"+addr)
	}
	get := func(url string) (int, time.Duration) {
		start := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	// 2N requests split across both instances: N allowed in all (exactly:
	// one shared GCRA state, a refill rate of 1 per minute).
	allowed := 0
	for i := 0; i < 20; i++ {
		if c, _ := get(gates[i%2] + "/app/x"); c == 200 {
			allowed++
		}
	}
	t.Logf("%d of 20 requests allowed across two instances sharing burst 10", allowed)
	if allowed != 10 {
		t.Fatalf("%d allowed, want 10", allowed)
	}

	// Redis down: "shared" falls back to each instance's own limiter
	// (fresh, so requests pass), "strict" answers 503; nothing hangs.
	stopped := time.Now()
	redis.Stop()
	t.Logf("stopping redis took %v", time.Since(stopped))
	for _, tt := range []struct {
		path string
		want int
	}{{"/app/x", 200}, {"/strict/x", 503}} {
		c, d := get(gates[0] + tt.path)
		if c != tt.want {
			t.Errorf("%s with Redis down: %d, want %d", tt.path, c, tt.want)
		}
		if d > time.Second {
			t.Errorf("%s with Redis down took %v (timeout 100ms)", tt.path, d)
		}
	}

	// Redis back (empty, on the same port): shared limiting resumes.
	redis = testutil.StartRedis(t, redis.Addr)
	back := time.Now()
	if !testutil.WaitFor(20*time.Second, func() bool { c, _ := get(gates[1] + "/strict/x"); return c == 200 }) {
		t.Fatal("no recovery after Redis returned")
	}
	t.Logf("shared limiting back %v after Redis restarted", time.Since(back))
}
