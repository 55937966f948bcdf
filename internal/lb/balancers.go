package lb

import (
	"sync"
	"sync/atomic"
)

// A picker chooses among candidates (all primaries or all backups). It
// skips targets that are unavailable or already tried, honours slow start,
// and returns nil when nothing can be picked. Costs, with n candidates:
//
//	round_robin            O(1) usually; O(n) when most are unavailable
//	weighted_round_robin   O(n) (smooth weighted round robin, as nginx)
//	least_requests         O(n) (scans for the fewest in flight)
//	p2c_ewma               O(1) usually (two random choices)
//	consistent_hash        O(log n) (binary search on a ketama ring)
//
// None allocates.
type picker interface {
	// pick chooses from cands, which is set 0 (the primaries) or set 1
	// (the backups) of p; sets never change after the pool is built.
	pick(p *Pool, cands []*Target, set int, now int64, tried *Tried, key uint64) *Target
}

func newPicker(name string, primaries, backups []*Target) picker {
	switch name {
	case "consistent_hash":
		return &ketama{rings: [2]ring{newRing(primaries), newRing(backups)}}
	case "weighted_round_robin":
		return &wrr{}
	case "least_requests":
		return leastRequests{}
	case "p2c_ewma":
		return p2c{}
	}
	return &roundRobin{}
}

func usable(t *Target, now int64, tried *Tried) bool {
	return t.Available(now) && !tried.Has(t)
}

// roundRobin takes the next usable target. A target in slow start is
// skipped with probability 1 - its share, so it ramps up.
type roundRobin struct{ next atomic.Uint64 }

func (rr *roundRobin) pick(p *Pool, cands []*Target, _ int, now int64, tried *Tried, _ uint64) *Target {
	n := uint64(len(cands))
	if n == 0 {
		return nil
	}
	start := rr.next.Add(1) - 1
	var fallback *Target
	for i := uint64(0); i < n; i++ {
		t := cands[(start+i)%n]
		if !usable(t, now, tried) {
			continue
		}
		if f := t.slowStart(now, p.Settings.SlowStart); f < 1 && float64(p.random()%1000) >= f*1000 {
			if fallback == nil {
				fallback = t
			}
			continue
		}
		return t
	}
	return fallback
}

// wrr is smooth weighted round robin (nginx): each pick adds every
// target's effective weight to its current weight, takes the largest, and
// subtracts the total from it. The sequence interleaves, rather than
// sending a run of requests to the heaviest target.
type wrr struct {
	mu      sync.Mutex   // guards current
	current [2][]float64 // per set, parallel to its targets
}

func (w *wrr) pick(p *Pool, cands []*Target, set int, now int64, tried *Tried, _ uint64) *Target {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur := w.current[set]
	if len(cur) != len(cands) {
		cur = make([]float64, len(cands))
		w.current[set] = cur
	}
	best := -1
	total := 0.0
	for i, t := range cands {
		if !usable(t, now, tried) {
			continue
		}
		eff := float64(t.Weight) * t.slowStart(now, p.Settings.SlowStart)
		total += eff
		cur[i] += eff
		if best < 0 || cur[i] > cur[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	cur[best] -= total
	return cands[best]
}

// leastRequests takes the target with the fewest requests in flight per
// unit of effective weight; ties are broken at random (reservoir
// sampling), so equal targets share load evenly.
type leastRequests struct{}

func (leastRequests) pick(p *Pool, cands []*Target, _ int, now int64, tried *Tried, _ uint64) *Target {
	var best *Target
	bestScore, ties := 0.0, 0
	for _, t := range cands {
		if !usable(t, now, tried) {
			continue
		}
		score := float64(t.Inflight()+1) / (float64(t.Weight) * t.slowStart(now, p.Settings.SlowStart))
		switch {
		case best == nil || score < bestScore:
			best, bestScore, ties = t, score, 1
		case score == bestScore:
			ties++
			if p.random()%uint64(ties) == 0 {
				best = t
			}
		}
	}
	return best
}

// p2c is the power of two choices on in-flight × latency EWMA: pick two
// usable targets at random and take the cheaper. A target with no latency
// sample yet costs as little as the cheapest, so new targets get tried.
type p2c struct{}

func (p2c) pick(p *Pool, cands []*Target, _ int, now int64, tried *Tried, _ uint64) *Target {
	n := uint64(len(cands))
	if n == 0 {
		return nil
	}
	var a, b *Target
	for i := 0; i < 8 && (a == nil || b == nil); i++ {
		t := cands[p.random()%n]
		if !usable(t, now, tried) || t == a {
			continue
		}
		if a == nil {
			a = t
		} else {
			b = t
		}
	}
	if a == nil { // most are unusable: scan
		for _, t := range cands {
			if usable(t, now, tried) {
				a = t
				break
			}
		}
		if a == nil {
			return nil
		}
	}
	if b == nil || p2cCost(p, a, now) <= p2cCost(p, b, now) {
		return a
	}
	return b
}

func p2cCost(p *Pool, t *Target, now int64) float64 {
	lat := float64(t.EWMA())
	if lat < 1000 {
		lat = 1000 // 1µs floor: unknown latency is cheap, not free
	}
	return float64(t.Inflight()+1) * lat / (float64(t.Weight) * t.slowStart(now, p.Settings.SlowStart))
}
