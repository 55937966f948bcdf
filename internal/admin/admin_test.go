package admin

import (
	"testing"
	"time"
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
