// Package flight runs fetches that many requests wait on (an issuer's key
// set, its metadata, one token's introspection) once, for all of them.
//
// Invariant: a shared fetch never runs under one waiter's cancellation.
// It runs under context.WithoutCancel of the first waiter's context (so
// its values, such as the trace, carry over) bounded by its own timeout.
// A waiter whose context ends stops waiting and gets its context's error;
// the fetch goes on for the others (issue 14: one client that
// disconnected used to fail everyone's fetch, and they all got 503).
//
// The fetch runs in singleflight's goroutine, owned by the Group; it ends
// when the fetch returns, which the timeout bounds.
package flight

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"
)

// Group runs shared fetches. The zero value is ready to use.
type Group struct {
	sf singleflight.Group
}

// Do runs fn once for all concurrent callers with the same key and
// returns its result, or ctx's error as soon as ctx ends (the fetch is not
// cancelled; other callers still get its result). fn's context carries
// ctx's values, not its cancellation, and ends after timeout.
func Do[T any](g *Group, ctx context.Context, key string, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("stopped waiting for a shared fetch: %w", context.Cause(ctx))
	}
	ch := g.sf.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil
	case <-ctx.Done():
		return zero, fmt.Errorf("stopped waiting for a shared fetch: %w", context.Cause(ctx))
	}
}
