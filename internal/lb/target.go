package lb

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/internal/observe/metrics"
)

// Health states of a target.
const (
	StateUnchecked int32 = iota // no active check has decided yet: available
	StateUp                     // active checks pass
	StateDown                   // active checks fail: unavailable
)

// Target is one upstream address and everything learned about it. Targets
// live in the runtime.Registry keyed by upstream name and address, so what
// checks and passive ejection learned survives config reloads.
type Target struct {
	Addr   string
	Weight int
	Backup bool
	Obs    *metrics.TargetObs // nil when metrics are off

	inflight     atomic.Int64
	ewmaNanos    atomic.Uint64 // float64 bits: latency to response headers
	active       atomic.Int32  // StateUnchecked, StateUp or StateDown
	ejectedUntil atomic.Int64  // unix nanos; passive ejection
	recoveredAt  atomic.Int64  // unix nanos; slow start begins here
	consecFails  atomic.Int32
	ejections    atomic.Int32 // current ejection level (backoff exponent + 1)
	totalEjects  atomic.Int64
	passive      atomic.Int32 // passiveNone, passiveOK or passiveFailed: the last attempt's outcome

	mu         sync.Mutex // guards the following fields
	lastCheck  time.Time
	lastReason string
	lastEject  time.Time
}

// What passive health last learned of a target (Pool.Report).
const (
	passiveNone   int32 = iota // no attempt has reported yet
	passiveOK                  // the last attempt got an answer
	passiveFailed              // the last attempt failed (connect, timeout, 502/503/504)
)

// Verdicts of Target.Verdict: the state label values of
// gatehouse_upstream_target_state (metrics.TargetStates).
const (
	VerdictUp      = "up"      // active checks pass, or (before any active verdict) the last request got an answer
	VerdictDown    = "down"    // active checks fail
	VerdictEjected = "ejected" // passively ejected after consecutive failures
	VerdictFailing = "failing" // no active verdict, the last request failed, not (yet) ejected
	VerdictUnknown = "unknown" // never checked, never used: nothing is known
)

// Verdict says what is known of t at now (unix nanos). Active checks
// decide when they have; otherwise the last request does. A target that
// was never checked nor used is "unknown": available to the balancers
// (like Envoy's and HAProxy's unchecked hosts), but not known to be up.
func (t *Target) Verdict(now int64) string {
	switch {
	case t.active.Load() == StateDown:
		return VerdictDown
	case t.ejectedUntil.Load() > now:
		return VerdictEjected
	case t.active.Load() == StateUp:
		return VerdictUp
	}
	switch t.passive.Load() {
	case passiveOK:
		return VerdictUp
	case passiveFailed:
		return VerdictFailing
	}
	return VerdictUnknown
}

// CheckedUp reports whether active checks have marked t up.
func (t *Target) CheckedUp() bool { return t.active.Load() == StateUp }

// NewTarget returns a target in the unchecked state.
func NewTarget(addr string, weight int, backup bool) *Target {
	if weight < 1 {
		weight = 1
	}
	return &Target{Addr: addr, Weight: weight, Backup: backup}
}

// Inflight is the number of requests currently sent to the target.
func (t *Target) Inflight() int64 { return t.inflight.Load() }

// Begin marks a request to t as in flight.
func (t *Target) Begin() { t.inflight.Add(1) }

// Done ends what Begin started.
func (t *Target) Done() { t.inflight.Add(-1) }

// Available reports whether t may be picked at now (unix nanos): not
// marked down by active checks and not passively ejected.
func (t *Target) Available(now int64) bool {
	return t.active.Load() != StateDown && t.ejectedUntil.Load() <= now
}

// EWMA returns the smoothed latency to response headers (0: unknown).
func (t *Target) EWMA() time.Duration {
	return time.Duration(math.Float64frombits(t.ewmaNanos.Load()))
}

// ewmaAlpha weighs the newest sample in the latency average.
const ewmaAlpha = 0.3

// ObserveLatency folds one latency sample into the EWMA.
func (t *Target) ObserveLatency(d time.Duration) {
	for {
		old := t.ewmaNanos.Load()
		cur := math.Float64frombits(old)
		next := float64(d)
		if cur != 0 {
			next = ewmaAlpha*float64(d) + (1-ewmaAlpha)*cur
		}
		if t.ewmaNanos.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// slowStart returns the share of its weight t takes at now: it grows
// linearly from 10 % to 100 % over window after the target recovered.
func (t *Target) slowStart(now int64, window time.Duration) float64 {
	if window <= 0 {
		return 1
	}
	rec := t.recoveredAt.Load()
	if rec == 0 || now >= rec+int64(window) {
		return 1
	}
	if now <= rec {
		return 0.1
	}
	return max(0.1, float64(now-rec)/float64(window))
}

// Status is a target's state for the admin listener.
type Status struct {
	Address   string  `json:"address"`
	Weight    int     `json:"weight"`
	Backup    bool    `json:"backup"`
	State     string  `json:"state"` // up, down, ejected, unchecked
	Why       string  `json:"why,omitempty"`
	LastCheck string  `json:"last_check,omitempty"`
	InFlight  int64   `json:"in_flight"`
	EWMAms    float64 `json:"ewma_ms"`
	Ejections int64   `json:"ejections"`
	// EjectedUntil is set while passively ejected.
	EjectedUntil string  `json:"ejected_until,omitempty"`
	SlowStart    float64 `json:"slow_start_share"`
}

// Status reports t at now.
func (t *Target) Status(now time.Time, slowStart time.Duration) Status {
	st := Status{Address: t.Addr, Weight: t.Weight, Backup: t.Backup, InFlight: t.Inflight(),
		EWMAms: float64(t.EWMA().Microseconds()) / 1000, Ejections: t.totalEjects.Load(),
		SlowStart: t.slowStart(now.UnixNano(), slowStart)}
	switch t.active.Load() {
	case StateUp:
		st.State = "up"
	case StateDown:
		st.State = "down"
	default:
		st.State = "unchecked"
	}
	t.mu.Lock()
	st.Why = t.lastReason
	if !t.lastCheck.IsZero() {
		st.LastCheck = t.lastCheck.UTC().Format(time.RFC3339Nano)
	}
	t.mu.Unlock()
	if until := t.ejectedUntil.Load(); until > now.UnixNano() && st.State != "down" {
		st.State = "ejected"
		st.EjectedUntil = time.Unix(0, until).UTC().Format(time.RFC3339Nano)
	}
	return st
}

// CheckState is the rise/fall state machine of active checks. It is
// owned by one checker goroutine.
type CheckState struct {
	passes, fails int
}

// Observe records one check result on t at now and returns the new state
// when it changed (0 when it did not). A target leaves "unchecked" after
// rise passes or fall failures, like any other state change.
func (cs *CheckState) Observe(t *Target, ok bool, reason string, now time.Time, rise, fall int) int32 {
	t.mu.Lock()
	t.lastCheck, t.lastReason = now, reason
	t.mu.Unlock()
	cur := t.active.Load()
	if ok {
		cs.passes++
		cs.fails = 0
		if cur != StateUp && cs.passes >= rise {
			t.active.Store(StateUp)
			if cur == StateDown {
				// Back from down: slow start from here, and any passive
				// ejection earned while it was failing ends (as Envoy's
				// successful_active_health_check_uneject_host).
				t.recoveredAt.Store(now.UnixNano())
				t.ejectedUntil.Store(0)
			}
			return StateUp
		}
		return 0
	}
	cs.fails++
	cs.passes = 0
	if cur != StateDown && cs.fails >= fall {
		t.active.Store(StateDown)
		return StateDown
	}
	return 0
}
