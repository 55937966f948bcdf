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
