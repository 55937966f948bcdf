package app

import (
	"strings"
	"testing"
	"time"

	"gatehouse/internal/lb"
	"gatehouse/internal/runtime"
)

type fakeKeys struct {
	reached bool
	err     string
}

func (f fakeKeys) Fetches() int64               { return 0 }
func (f fakeKeys) Reachability() (bool, string) { return f.reached, f.err }

// TestNotReady (issue 15) pins the readiness rule of
// docs/observability.md#readiness.
func TestNotReady(t *testing.T) {
	t.Parallel()
	at := time.Unix(1000, 0)
	type setup struct {
		activeChecks bool
		do           func(p *lb.Pool, tg *lb.Target)
		action       runtime.Action
		issuer       *fakeKeys // needed by the route when set
		unusedIssuer bool      // configured, no route needs it
	}
	tests := []struct {
		name string
		s    setup
		want []string // substrings of the reasons, in order; none: ready
	}{
		{name: "unchecked target without active checks counts", s: setup{}},
		{name: "target ejected", s: setup{do: func(p *lb.Pool, tg *lb.Target) { p.Report(tg, lb.Failure) }},
			want: []string{"upstream app (route r): no target available: 10.0.0.1:80 ejected"}},
		{name: "active checks, not checked yet", s: setup{activeChecks: true},
			want: []string{"upstream app (route r): no target available: 10.0.0.1:80 unchecked"}},
		{name: "active checks pass", s: setup{activeChecks: true, do: func(p *lb.Pool, tg *lb.Target) {
			var cs lb.CheckState
			cs.Observe(tg, true, "tcp connect ok", at, 1, 1)
		}}},
		{name: "active checks fail", s: setup{activeChecks: true, do: func(p *lb.Pool, tg *lb.Target) {
			var cs lb.CheckState
			cs.Observe(tg, false, "tcp connect: connection refused", at, 1, 1)
		}}, want: []string{"upstream app (route r): no target available: 10.0.0.1:80 down (tcp connect: connection refused)"}},
		{name: "api route needs its services", s: setup{action: runtime.ActionAPI,
			do: func(p *lb.Pool, tg *lb.Target) { p.Report(tg, lb.Failure) }},
			want: []string{"upstream app (route r): no target available"}},
		{name: "respond route needs no upstream", s: setup{action: runtime.ActionRespond,
			do: func(p *lb.Pool, tg *lb.Target) { p.Report(tg, lb.Failure) }}},
		{name: "issuer never reached", s: setup{issuer: &fakeKeys{err: "jwks: fetch: status 503"}},
			want: []string{"issuer idp (route r): keys never fetched: jwks: fetch: status 503"}},
		{name: "issuer first fetch pending", s: setup{issuer: &fakeKeys{}},
			want: []string{"issuer idp (route r): keys never fetched: first fetch pending"}},
		{name: "issuer reached once, failing now", s: setup{issuer: &fakeKeys{reached: true, err: "status 503"}}},
		{name: "unused issuer never reached", s: setup{unusedIssuer: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := lb.NewTarget("10.0.0.1:80", 1, false)
			p := lb.NewPool("app", []*lb.Target{tg}, lb.Settings{Balancer: "round_robin", Failures: 1,
				EjectionTime: time.Minute, MaxEjectedPct: 100, Now: func() time.Time { return at }}, nil)
			if tt.s.do != nil {
				tt.s.do(p, tg)
			}
			rt := &runtime.Route{Name: "r", Action: tt.s.action}
			switch tt.s.action {
			case runtime.ActionProxy:
				rt.Pool = p
			case runtime.ActionAPI:
				rt.API = &runtime.API{Services: map[string]*lb.Pool{"app": p}}
			}
			snap := &runtime.Snapshot{Routes: []*runtime.Route{rt}, Pools: map[string]*lb.Pool{"app": p},
				Upstreams: map[string]*runtime.Upstream{"app": {ActiveChecks: tt.s.activeChecks}}}
			if tt.s.issuer != nil {
				snap.Issuers = []runtime.IssuerKeys{{Name: "idp", Keys: *tt.s.issuer, Routes: []string{"r"}}}
			}
			if tt.s.unusedIssuer {
				snap.Issuers = []runtime.IssuerKeys{{Name: "idp", Keys: fakeKeys{}}}
			}
			got := notReady(snap, at)
			if len(got) != len(tt.want) {
				t.Fatalf("reasons %q, want %d matching %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("reason %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// min_healthy_share still applies, to every upstream.
func TestNotReadyMinHealthyShare(t *testing.T) {
	t.Parallel()
	at := time.Unix(1000, 0)
	a, b := lb.NewTarget("10.0.0.1:80", 1, false), lb.NewTarget("10.0.0.2:80", 1, false)
	p := lb.NewPool("app", []*lb.Target{a, b}, lb.Settings{Balancer: "round_robin", Failures: 1,
		EjectionTime: time.Minute, MaxEjectedPct: 100, Now: func() time.Time { return at }}, nil)
	p.Report(a, lb.Failure)
	snap := &runtime.Snapshot{Pools: map[string]*lb.Pool{"app": p},
		Upstreams: map[string]*runtime.Upstream{"app": {MinHealthyShare: 0.75}}}
	got := notReady(snap, at)
	if len(got) != 1 || !strings.Contains(got[0], "upstream app: 50% of targets available, 75% required") {
		t.Fatalf("reasons %q", got)
	}
}
