package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gatehouse/internal/runtime"
)

func TestHistoryRates(t *testing.T) {
	t.Parallel()
	h := newHistory(61)
	t0 := time.Unix(1000, 0)
	for i := 0; i <= 12; i++ { // 10 req/s, 1 of them 5xx, sampled every 5 s
		h.add(t0.Add(time.Duration(i)*5*time.Second), map[string][2]float64{"admin": {float64(50 * i), float64(5 * i)}})
	}
	now := t0.Add(60 * time.Second)
	total, rps, eps, series := h.rates("admin", now, time.Minute)
	if total != 600 || rps != 10 || eps != 1 {
		t.Fatalf("total %v rps %v eps %v", total, rps, eps)
	}
	if len(series) != 12 || series[0].RPS != 10 {
		t.Fatalf("series %v", series)
	}
	if _, rps, _, _ := h.rates("nope", now, time.Minute); rps != 0 {
		t.Fatalf("unknown route rps %v", rps)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	t.Parallel()
	h := newHistory(5)
	t0 := time.Unix(0, 0)
	for i := 0; i < 100; i++ {
		h.add(t0.Add(time.Duration(i)*5*time.Second), nil)
	}
	if len(h.samples) != 5 {
		t.Fatalf("%d samples kept", len(h.samples))
	}
}

type snapSource struct{ snap *runtime.Snapshot }

func (s snapSource) Snapshot() *runtime.Snapshot { return s.snap }
func (s snapSource) ConfigYAML() ([]byte, error) { return nil, nil }
func (s snapSource) Reloads() ReloadState        { return ReloadState{} }
func (s snapSource) Ready() (bool, []string)     { return true, nil }

func TestAssertionJWKS(t *testing.T) {
	for _, tc := range []struct {
		name string
		jwks []byte
		want int
	}{{"off", nil, http.StatusNotFound}, {"on", []byte(`{"keys":[]}`), http.StatusOK}} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Source: snapSource{&runtime.Snapshot{AssertionJWKS: tc.jwks}}})
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("GET", "/jwks.json", nil))
			if rec.Code != tc.want || (tc.want == 200 && rec.Body.String() != string(tc.jwks)) {
				t.Fatalf("GET /jwks.json: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// TestStatusReportsPID: after a zero-downtime upgrade, the status page
// tells which process answers.
func TestStatusReportsPID(t *testing.T) {
	t.Parallel()
	s := New(Options{Source: snapSource{&runtime.Snapshot{Fallback: &runtime.Route{}}}, PID: 4242})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/status.json", nil))
	var got struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("status %d, %v: %s", rec.Code, err, rec.Body)
	}
	if got.PID != 4242 {
		t.Fatalf("pid %d, want 4242", got.PID)
	}
}

// TestHostNamesOutsideAllowedHostsAreRefused: a page whose own name
// resolves to the admin listener (DNS rebinding) names that host in
// every request the browser sends; the listener answers it 403 before
// any handler runs. The port is not compared (a forwarded port keeps
// the name), nor is case.
func TestHostNamesOutsideAllowedHostsAreRefused(t *testing.T) {
	t.Parallel()
	loopback := []string{"localhost", "127.0.0.1", "::1"}
	for _, tc := range []struct {
		allowed []string
		host    string
		want    int
	}{
		{loopback, "localhost:9901", 200},
		{loopback, "LocalHost:1234", 200},
		{loopback, "127.0.0.1:9901", 200},
		{loopback, "127.0.0.1", 200},
		{loopback, "[::1]:9901", 200},
		{loopback, "[::1]", 200},
		{loopback, "[0:0:0:0:0:0:0:1]:9901", 200},
		{loopback, "", 200}, // HTTP/1.0 without Host: no browser sends that
		{loopback, "rebind.example:9901", 403},
		{loopback, "rebind.example", 403},
		{loopback, "127.0.0.1.rebind.example:9901", 403},
		{loopback, "localhost.rebind.example", 403},
		{loopback, "127.0.0.2:9901", 403},
		{loopback, "[::2]:9901", 403},
		{[]string{"gatehouse-admin"}, "gatehouse-admin:9901", 200},
		{[]string{"gatehouse-admin"}, "localhost:9901", 403},
		{[]string{"*"}, "rebind.example:9901", 200},
		{nil, "rebind.example:9901", 200},
	} {
		s := New(Options{Source: snapSource{&runtime.Snapshot{}}, AllowedHosts: tc.allowed})
		for _, path := range []string{"/healthz", "/config"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", path, nil)
			req.Host = tc.host
			s.ServeHTTP(rec, req)
			if got := rec.Code; (got == 403) != (tc.want == 403) {
				t.Errorf("allowed %q, Host %q, GET %s: %d, want %d", tc.allowed, tc.host, path, got, tc.want)
			}
		}
	}
}
