package app

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"gatehouse/internal/lb"
	"gatehouse/internal/runtime"
)

// notReady lists why snap cannot serve its routes at now; empty means
// ready as far as the config goes (the listeners are App.Ready's part).
// docs/observability.md#readiness states the rule:
//
//   - every upstream a route sends to (upstream, api.services) has a
//     target a request could be sent to: not down by active checks, not
//     ejected, and, when the upstream has active checks, marked up by
//     them (a target not yet checked does not count, like Envoy's cluster
//     warming; without active checks an unchecked target counts, as in
//     Envoy and HAProxy);
//   - every upstream has its health.min_healthy_share of primary targets
//     available;
//   - every issuer a route's auth needs has had its keys fetched at least
//     once (after that its keys stay usable through an outage, so an
//     outage does not make the replica unready).
//
// Routes answered by Gatehouse itself (static, redirect, respond, the
// login paths) need nothing.
func notReady(snap *runtime.Snapshot, at time.Time) []string {
	now := at.UnixNano()
	users := map[string][]string{} // upstream → routes sending to it
	for _, rt := range snap.Routes {
		switch {
		case rt.Action == runtime.ActionProxy && rt.Pool != nil:
			users[rt.Pool.Name] = appendNew(users[rt.Pool.Name], rt.Name)
		case rt.Action == runtime.ActionAPI && rt.API != nil:
			for _, p := range rt.API.Services {
				users[p.Name] = appendNew(users[p.Name], rt.Name)
			}
		}
	}
	names := make([]string, 0, len(snap.Pools))
	for n := range snap.Pools {
		names = append(names, n)
	}
	sort.Strings(names)
	var reasons []string
	for _, n := range names {
		p, u := snap.Pools[n], snap.Upstreams[n]
		if routes := users[n]; len(routes) > 0 && !servable(p, u, now) {
			reasons = append(reasons, fmt.Sprintf("upstream %s (route %s): no target available: %s",
				n, strings.Join(routes, ", "), describeTargets(p, at)))
		}
		if u != nil && u.MinHealthyShare > 0 {
			if share := p.Share(); share < u.MinHealthyShare {
				reasons = append(reasons, fmt.Sprintf("upstream %s: %.0f%% of targets available, %.0f%% required",
					n, share*100, u.MinHealthyShare*100))
			}
		}
	}
	for _, is := range snap.Issuers {
		if len(is.Routes) == 0 {
			continue
		}
		reached, lastErr := is.Keys.Reachability()
		if reached {
			continue
		}
		why := "first fetch pending"
		if lastErr != "" {
			why = lastErr
		}
		reasons = append(reasons, fmt.Sprintf("issuer %s (route %s): keys never fetched: %s",
			is.Name, strings.Join(is.Routes, ", "), why))
	}
	return reasons
}

// servable reports whether a request to p could be sent somewhere now.
func servable(p *lb.Pool, u *runtime.Upstream, now int64) bool {
	for _, t := range p.Targets() {
		if t.Available(now) && (u == nil || !u.ActiveChecks || t.CheckedUp()) {
			return true
		}
	}
	return false
}

// describeTargets says why each of p's targets is out, briefly.
func describeTargets(p *lb.Pool, at time.Time) string {
	ts := p.Targets()
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		st := t.Status(at, 0)
		s := t.Addr + " " + st.State
		if st.Why != "" {
			s += " (" + st.Why + ")"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "no targets"
	}
	return strings.Join(parts, "; ")
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
