package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"gatehouse/internal/phase"
)

// Part is one component of a policy's key.
type Part struct {
	Kind   string // client_ip, user, client_id, route, header
	Header string // canonical name, for header
}

// ParseKey parses "client_ip", "user+route", "header:X-Tenant".
func ParseKey(spec string) []Part {
	var out []Part
	for _, p := range strings.Split(spec, "+") {
		kind, name, _ := strings.Cut(p, ":")
		out = append(out, Part{Kind: kind, Header: http.CanonicalHeaderKey(name)})
	}
	return out
}

// PostAuth reports whether a key needs the verified identity, so its
// policy runs after authentication (invalid tokens never make buckets).
func PostAuth(parts []Part) bool {
	for _, p := range parts {
		if p.Kind == "user" || p.Kind == "client_id" {
			return true
		}
	}
	return false
}

// Observer counts decisions and store trouble.
type Observer interface {
	RateLimit(policy, result string)
	StoreError(policy string)
	// Degraded: the policy switched to its fallback (true) or back.
	Degraded(policy string, on bool)
}

// DecisionCounters is what an Observer may offer besides RateLimit: the
// policy's three decision counters, taken once by Prepare, so that a
// decision costs no label lookup (Prometheus's WithLabelValues hashes
// both labels and looks the series up on every call).
type DecisionCounters interface {
	DecisionCounters(policy string) (allowed, limited, softLimited func())
}

// Filter applies one policy to a route's requests. A limited request gets
// 429 with Retry-After and the IETF RateLimit-Policy and RateLimit
// headers, before any upstream, key fetch or introspection call.
type Filter struct {
	Policy     string
	Parts      []Part
	Limit      Limit
	IPv6Prefix int
	Soft       bool
	Store      Limiter
	Seed       maphash.Seed
	Obs        Observer // may be nil
	Now        func() time.Time
	// When Store fails (a shared store that is slow or down): OnError
	// "deny" answers 503; anything else falls back to Local, a limiter of
	// this instance only. The switch and the recovery are logged.
	OnError string
	Local   Limiter
	Events  *slog.Logger
	// MaxInFlight > 0 limits the key's requests in progress through Gate
	// (and LocalGate when Gate's store fails); 0: no such limit. A policy
	// without a rate (Limit.Rate 0) limits only this.
	MaxInFlight int
	Gate        Gate
	LocalGate   Gate

	policyHeader []string // RateLimit-Policy value, precomputed
	needText     bool
	degraded     atomic.Bool

	// The decision counters, when Obs offers them (DecisionCounters).
	incAllowed, incLimited, incSoft func()
}

// Prepare precomputes header values; call once after setting the fields.
func (f *Filter) Prepare() {
	for _, st := range []any{f.Store, f.Gate} {
		if tl, ok := st.(TextLimiter); ok && tl.NeedsText() {
			f.needText = true
		}
	}
	if f.Events == nil {
		f.Events = slog.New(slog.DiscardHandler)
	}
	if dc, ok := f.Obs.(DecisionCounters); ok {
		f.incAllowed, f.incLimited, f.incSoft = dc.DecisionCounters(f.Policy)
	}
	if f.Limit.Rate > 0 {
		window := max(1, int(math.Round(float64(f.Limit.Burst)/f.Limit.Rate)))
		f.policyHeader = []string{`"` + f.Policy + `";q=` + strconv.Itoa(f.Limit.Burst) + `;w=` + strconv.Itoa(window)}
	}
}

// key builds the request's key: its hash, and for shared stores its text.
func (f *Filter) key(rc *phase.RequestCtx, r *http.Request) Key {
	k := Key{Hash: f.hash(rc, r)}
	if f.needText {
		k.Text = f.text(rc, r)
	}
	return k
}

// text is the key as the same string on every instance.
func (f *Filter) text(rc *phase.RequestCtx, r *http.Request) string {
	var b strings.Builder
	b.WriteString(f.Policy)
	for _, p := range f.Parts {
		b.WriteByte('|')
		switch p.Kind {
		case "client_ip":
			b.WriteString(f.prefixed(rc.ClientIP).String())
		case "user":
			if rc.Subject == "" {
				b.WriteString("anon:" + f.prefixed(rc.ClientIP).String())
			} else {
				b.WriteString("u:" + rc.Issuer + ":" + rc.Subject) // issuer names have no ':'

			}
		case "client_id":
			if rc.ClientID == "" {
				b.WriteString("anon:" + f.prefixed(rc.ClientIP).String())
			} else {
				b.WriteString("c:" + rc.Issuer + ":" + rc.ClientID)
			}
		case "route":
			b.WriteString(rc.Route)
		case "header":
			b.WriteString(strings.Join(r.Header[p.Header], ","))
		}
	}
	s := b.String()
	if len(s) > 200 { // long header values: a digest, not the value
		sum := sha256.Sum256([]byte(s))
		s = f.Policy + "|#" + hex.EncodeToString(sum[:])
	}
	return s
}

// prefixed cuts IPv6 addresses to the policy's prefix.
func (f *Filter) prefixed(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(f.IPv6Prefix); err == nil {
			return p.Addr()
		}
	}
	return a
}

// hash hashes the request's key parts. Missing identity (an anonymous
// request on an optional-auth route) falls back to the client address.
func (f *Filter) hash(rc *phase.RequestCtx, r *http.Request) uint64 {
	var h maphash.Hash
	h.SetSeed(f.Seed)
	h.WriteString(f.Policy)
	for _, p := range f.Parts {
		h.WriteByte(0)
		switch p.Kind {
		case "client_ip":
			f.writeIP(&h, rc.ClientIP)
		case "user":
			if rc.Subject == "" {
				h.WriteString("anon:")
				f.writeIP(&h, rc.ClientIP)
			} else {
				h.WriteString(rc.Issuer)
				h.WriteByte(0)
				h.WriteString(rc.Subject)
			}
		case "client_id":
			if rc.ClientID == "" {
				h.WriteString("anon:")
				f.writeIP(&h, rc.ClientIP)
			} else {
				h.WriteString(rc.Issuer)
				h.WriteByte(0)
				h.WriteString(rc.ClientID)
			}
		case "route":
			h.WriteString(rc.Route)
		case "header":
			for _, v := range r.Header[p.Header] {
				h.WriteString(v)
			}
		}
	}
	return h.Sum64()
}

// writeIP writes the address, IPv6 cut to the policy's prefix (a client
// owns a whole /64, so per-address limits would be no limit at all).
func (f *Filter) writeIP(h *maphash.Hash, a netip.Addr) {
	b := f.prefixed(a).As16()
	h.Write(b[:])
}

// FilterRequest implements phase.RequestFilter: the rate first (when the
// policy has one), then the in-flight limit (when it has one), whose slot
// is given back when the request ends.
func (f *Filter) FilterRequest(rc *phase.RequestCtx, _ http.ResponseWriter, r *http.Request) (phase.Outcome, error) {
	key := f.key(rc, r)
	if f.Limit.Rate > 0 {
		if err := f.rate(rc, r, key); err != nil {
			return phase.Continue, err
		}
	}
	if f.MaxInFlight > 0 {
		if err := f.inFlight(rc, r, key); err != nil {
			return phase.Continue, err
		}
	}
	if rc.RateLimit == "" {
		rc.RateLimit = "pass"
	}
	return phase.Continue, nil
}

func (f *Filter) rate(rc *phase.RequestCtx, r *http.Request, key Key) error {
	// The request's start, which the engine read microseconds before
	// (a clock read less per request), unless a clock is injected.
	now := rc.Start
	switch {
	case f.Now != nil:
		now = f.Now()
	case now.IsZero():
		now = time.Now()
	}
	res, err := f.Store.Allow(r.Context(), key, f.Limit, now)
	if err != nil {
		if pe := f.storeFailed(rc, err, f.Local != nil); pe != nil {
			return pe
		}
		if res, err = f.Local.Allow(r.Context(), key, f.Limit, now); err != nil {
			return nil
		}
	} else {
		f.storeOK()
	}
	if res.Allowed {
		f.observe("allowed")
		return nil
	}
	return f.over(rc, func() *phase.Error {
		retry := int(math.Ceil(res.RetryAfter.Seconds()))
		return &phase.Error{Kind: phase.KindTooManyRequests, Detail: "too many requests; slow down",
			Header: http.Header{
				"Retry-After":      {strconv.Itoa(retry)},
				"Ratelimit-Policy": f.policyHeader,
				"Ratelimit":        {`"` + f.Policy + `";r=0;t=` + strconv.Itoa(retry)},
			}}
	})
}

// inFlight takes one of the key's MaxInFlight slots for the life of the
// request.
func (f *Filter) inFlight(rc *phase.RequestCtx, r *http.Request, key Key) error {
	release, ok, err := f.Gate.Acquire(r.Context(), key, f.MaxInFlight)
	if err != nil {
		if pe := f.storeFailed(rc, err, f.LocalGate != nil); pe != nil {
			return pe
		}
		if release, ok, err = f.LocalGate.Acquire(r.Context(), key, f.MaxInFlight); err != nil {
			return nil
		}
	} else {
		f.storeOK()
	}
	if ok {
		rc.OnEnd(release)
		f.observe("allowed")
		return nil
	}
	return f.over(rc, func() *phase.Error {
		return &phase.Error{Kind: phase.KindTooManyRequests, Detail: "too many requests in progress; retry when one has finished",
			Header: http.Header{"Retry-After": {"1"}}}
	})
}

// over handles a request over the policy: in soft mode it is recorded and
// passes; otherwise it gets the 429 that refusal makes.
func (f *Filter) over(rc *phase.RequestCtx, refusal func() *phase.Error) error {
	if f.Soft {
		rc.RateLimit = "soft-limited:" + f.Policy
		f.observe("soft_limited")
		return nil
	}
	rc.RateLimit = "limited:" + f.Policy
	f.observe("limited")
	return refusal()
}

// storeFailed handles a shared store's failure: nil means "use the local
// fallback"; otherwise the 503 to answer (on_store_error: deny, or no
// fallback for this operation).
func (f *Filter) storeFailed(rc *phase.RequestCtx, err error, hasFallback bool) *phase.Error {
	if f.Obs != nil {
		f.Obs.StoreError(f.Policy)
	}
	if f.degraded.CompareAndSwap(false, true) {
		f.Events.Warn("rate-limit store failing; using the fallback", "policy", f.Policy, "fallback", f.OnError, "err", err.Error())
		if f.Obs != nil {
			f.Obs.Degraded(f.Policy, true)
		}
	}
	if f.OnError == "deny" || !hasFallback {
		rc.RateLimit = "store-unavailable:" + f.Policy
		return &phase.Error{Kind: phase.KindAuthUnavailable, Status: http.StatusServiceUnavailable,
			Detail: "rate limiting is unavailable; try again shortly", Header: http.Header{"Retry-After": {"1"}}}
	}
	return nil
}

func (f *Filter) storeOK() {
	if f.degraded.CompareAndSwap(true, false) {
		f.Events.Info("rate-limit store recovered", "policy", f.Policy)
		if f.Obs != nil {
			f.Obs.Degraded(f.Policy, false)
		}
	}
}

func (f *Filter) observe(result string) {
	switch {
	case f.Obs == nil:
	case f.incAllowed == nil:
		f.Obs.RateLimit(f.Policy, result)
	case result == "allowed":
		f.incAllowed()
	case result == "limited":
		f.incLimited()
	default: // "soft_limited"
		f.incSoft()
	}
}
