package metrics

import (
	"slices"
	"strings"
	"testing"
)

// series counts the series of the families named.
func series(t *testing.T, m *Metrics, names ...string) int {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fams {
		if slices.Contains(names, f.GetName()) {
			n += len(f.GetMetric())
		}
	}
	return n
}

// values returns the values of family name (gauges or counters) by the
// label values joined with ",", in label-name order.
func values(t *testing.T, m *Metrics, name string) map[string]float64 {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			var lv []string
			for _, l := range s.GetLabel() {
				lv = append(lv, l.GetValue())
			}
			out[strings.Join(lv, ",")] = s.GetGauge().GetValue() + s.GetCounter().GetValue()
		}
	}
	return out
}

// TestRouteSeriesCreatedOnFirstUse (issue 15): a route exposes the
// method × class series it served, not all 50 of them up front.
func TestRouteSeriesCreatedOnFirstUse(t *testing.T) {
	t.Parallel()
	m := New("test")
	ro := m.Route("app")
	m.Route("idle")
	fams := []string{"gatehouse_http_requests_total", "gatehouse_http_request_duration_seconds"}
	if n := series(t, m, fams...); n != 0 {
		t.Fatalf("%d series before any request, want 0", n)
	}
	ro.Observe("GET", 200, 0.01)
	ro.Observe("GET", 204, 0.01)
	if n := series(t, m, fams...); n != 2 {
		t.Fatalf("%d series after GET 2xx, want 2 (one counter, one histogram)", n)
	}
	for _, meth := range []string{"GET", "POST", "BREW", "brew", strings.Repeat("X", 100)} {
		for _, st := range []int{101, 200, 302, 404, 503, 999, 0} {
			ro.Observe(meth, st, 0.01)
		}
	}
	// Bounded: 3 method values × 5 classes, counter and histogram.
	if n := series(t, m, fams...); n != 30 {
		t.Fatalf("%d series, want 30", n)
	}
	if got := m.RouteTotals()["app"]; got[0] != 37 || got[1] != 15 {
		t.Fatalf("RouteTotals = %v, want [37 15] (999 and 0 count as 5xx)", got)
	}
	if _, ok := m.RouteTotals()["idle"]; !ok {
		t.Fatal("a route without requests is missing from RouteTotals")
	}
}

func TestTargetSeriesCreatedOnFirstUse(t *testing.T) {
	t.Parallel()
	m := New("test")
	to := m.Target("app", "127.0.0.1:1")
	fams := []string{"gatehouse_upstream_requests_total", "gatehouse_upstream_response_header_seconds",
		"gatehouse_upstream_errors_total", "gatehouse_upstream_connections_opened_total"}
	if n := series(t, m, fams...); n != 0 {
		t.Fatalf("%d series before any attempt, want 0", n)
	}
	to.Response(200, 0.01)
	to.Response(201, 0.01)
	to.Error("connect")
	to.Error("nonsense")
	to.Dialed()
	if n := series(t, m, fams...); n != 4 {
		t.Fatalf("%d series, want 4", n)
	}
}

// The request path allocates nothing once a series exists.
func TestObserveDoesNotAllocate(t *testing.T) {
	m := New("test")
	ro, to := m.Route("app"), m.Target("app", "127.0.0.1:1")
	ro.Observe("GET", 200, 0.01)
	to.Response(200, 0.01)
	if n := testing.AllocsPerRun(100, func() {
		ro.Observe("GET", 200, 0.01)
		to.Response(200, 0.01)
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}

// TestTargetUpOnlyOnEvidence (issue 15): target_up is 1 only for "up";
// target_state has one series per state, 1 for the current one.
func TestTargetUpOnlyOnEvidence(t *testing.T) {
	t.Parallel()
	m := New("test")
	m.WatchTargets(func() []TargetState {
		return []TargetState{{"a", "t1", "up"}, {"a", "t2", "unknown"}, {"a", "t3", "down"}, {"a", "t4", "failing"}}
	})
	up := values(t, m, "gatehouse_upstream_target_up")
	for k, want := range map[string]float64{"t1,a": 1, "t2,a": 0, "t3,a": 0, "t4,a": 0} {
		if got, ok := up[k]; !ok || got != want {
			t.Errorf("target_up{%s} = %v (present %v), want %v", k, got, ok, want)
		}
	}
	st := values(t, m, "gatehouse_upstream_target_state")
	if st["unknown,t2,a"] != 1 || st["up,t2,a"] != 0 || st["down,t3,a"] != 1 {
		t.Errorf("target_state = %v", st)
	}
	if n := series(t, m, "gatehouse_upstream_target_state"); n != 4*len(TargetStates) {
		t.Fatalf("%d target_state series, want %d", n, 4*len(TargetStates))
	}
}

// A policy's decision counters count the series RateLimit counts.
func TestDecisionCountersAreRateLimitsSeries(t *testing.T) {
	m := New("test")
	o := m.RateLimits()
	allowed, limited, soft := o.DecisionCounters("per-ip")
	allowed()
	allowed()
	limited()
	soft()
	o.RateLimit("per-ip", "allowed")
	got := values(t, m, "gatehouse_ratelimit_decisions_total")
	want := map[string]float64{"per-ip,allowed": 3, "per-ip,limited": 1, "per-ip,soft_limited": 1}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
