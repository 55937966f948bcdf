// Package ratelimit holds Gatehouse's rate limiters: a Limiter interface,
// an in-memory store (sharded, bounded) implementing GCRA, and the request
// filter that applies named policies to routes.
//
// GCRA (the generic cell rate algorithm) keeps one number per key, the
// theoretical arrival time (TAT) of the next request. With emission
// interval T = 1/rate and burst B, a request at now is allowed when
// now ≥ TAT - B·T; allowing it moves TAT to max(TAT, now) + T. A key whose
// TAT is in the past is indistinguishable from a new key, so the store may
// forget it at any time: evicting such keys never refills a key that is
// still limited.
package ratelimit

import (
	"context"
	"time"
)

// Limit is a rate and a burst.
type Limit struct {
	Rate  float64 // requests per second
	Burst int     // requests allowed at once; at least 1
}

// Interval is the emission interval 1/Rate.
func (l Limit) Interval() time.Duration { return time.Duration(float64(time.Second) / l.Rate) }

// Result is one decision.
type Result struct {
	Allowed    bool
	Remaining  int           // requests still allowed right now
	RetryAfter time.Duration // when limited: until the next request is allowed
	Reset      time.Duration // until the bucket is full again
}

// Key identifies what is limited: Hash for in-process stores (keyed by a
// per-process secret seed), Text for shared stores, which every instance
// must name alike. Text is empty unless the store asked for it.
type Key struct {
	Hash uint64
	Text string
}

// Limiter decides for one key. Implementations must be safe for
// concurrent use; Allow must not block longer than its context allows.
type Limiter interface {
	Allow(ctx context.Context, key Key, l Limit, now time.Time) (Result, error)
}

// gcra applies one request at now to tat (unix nanos; 0 = none) and
// returns the decision and the new tat.
func gcra(tat int64, l Limit, now int64) (Result, int64) {
	t := int64(l.Interval())
	burst := int64(max(l.Burst, 1))
	if tat < now {
		tat = now
	}
	newTat := tat + t
	allowAt := newTat - burst*t
	if now < allowAt {
		return Result{RetryAfter: time.Duration(allowAt - now), Reset: time.Duration(tat - now)}, tat
	}
	remaining := int((now - allowAt) / t)
	return Result{Allowed: true, Remaining: remaining, Reset: time.Duration(newTat - now)}, newTat
}
