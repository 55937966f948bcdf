package lb

import (
	"slices"
	"testing"
	"time"

	"gatehouse/internal/observe/metrics"
)

// TestVerdictNeverUpWithoutEvidence (issue 15): a target never checked
// nor used is "unknown", not "up"; the last request decides until active
// checks do; active checks and ejection win.
func TestVerdictNeverUpWithoutEvidence(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1000, 0)}
	now := func() int64 { return c.t.UnixNano() }
	tests := []struct {
		name string
		do   func(p *Pool, tg *Target)
		want string
	}{
		{"never checked nor used", func(*Pool, *Target) {}, VerdictUnknown},
		{"last request answered", func(p *Pool, tg *Target) { p.Report(tg, Success) }, VerdictUp},
		{"neutral says nothing", func(p *Pool, tg *Target) { p.Report(tg, Neutral) }, VerdictUnknown},
		{"last request failed", func(p *Pool, tg *Target) { p.Report(tg, Success); p.Report(tg, Failure) }, VerdictFailing},
		{"ejected", func(p *Pool, tg *Target) {
			for range 3 {
				p.Report(tg, Failure)
			}
		}, VerdictEjected},
		{"ejection over, last request failed", func(p *Pool, tg *Target) {
			for range 3 {
				p.Report(tg, Failure)
			}
			c.t = c.t.Add(time.Hour)
		}, VerdictFailing},
		{"active checks pass", func(p *Pool, tg *Target) {
			var cs CheckState
			cs.Observe(tg, true, "ok", c.t, 1, 1)
			p.Report(tg, Failure)
		}, VerdictUp},
		{"active checks fail", func(p *Pool, tg *Target) {
			var cs CheckState
			p.Report(tg, Success)
			cs.Observe(tg, false, "refused", c.t, 1, 1)
		}, VerdictDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = time.Unix(1000, 0)
			p := newTestPool(t, "round_robin", []int{1, 1}, 0, c)
			tg := p.Targets()[0]
			tt.do(p, tg)
			if got := tg.Verdict(now()); got != tt.want {
				t.Fatalf("verdict %q, want %q", got, tt.want)
			}
			if !slices.Contains(metrics.TargetStates[:], tt.want) {
				t.Fatalf("verdict %q is not a state label value of metrics.TargetStates", tt.want)
			}
		})
	}
}
