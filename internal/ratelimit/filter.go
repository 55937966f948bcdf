package ratelimit

import (
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
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

// Observer counts decisions.
type Observer interface {
	RateLimit(policy, result string)
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

	policyHeader []string // RateLimit-Policy value, precomputed
}

// Prepare precomputes header values; call once after setting the fields.
func (f *Filter) Prepare() {
	window := max(1, int(math.Round(float64(f.Limit.Burst)/f.Limit.Rate)))
	f.policyHeader = []string{`"` + f.Policy + `";q=` + strconv.Itoa(f.Limit.Burst) + `;w=` + strconv.Itoa(window)}
}

// key hashes the request's key parts. Missing identity (an anonymous
// request on an optional-auth route) falls back to the client address.
func (f *Filter) key(rc *phase.RequestCtx, r *http.Request) uint64 {
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
				h.WriteString(rc.Subject)
			}
		case "client_id":
			if rc.ClientID == "" {
				h.WriteString("anon:")
				f.writeIP(&h, rc.ClientIP)
			} else {
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
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(f.IPv6Prefix); err == nil {
			a = p.Addr()
		}
	}
	b := a.As16()
	h.Write(b[:])
}

// FilterRequest implements phase.RequestFilter.
func (f *Filter) FilterRequest(rc *phase.RequestCtx, _ http.ResponseWriter, r *http.Request) (phase.Outcome, error) {
	now := time.Now()
	if f.Now != nil {
		now = f.Now()
	}
	res, err := f.Store.Allow(r.Context(), f.key(rc, r), f.Limit, now)
	if err != nil { // a store that cannot answer: the request goes on (memory never fails)
		return phase.Continue, nil
	}
	if res.Allowed {
		if rc.RateLimit == "" {
			rc.RateLimit = "pass"
		}
		f.observe("allowed")
		return phase.Continue, nil
	}
	if f.Soft {
		rc.RateLimit = "soft-limited:" + f.Policy
		f.observe("soft_limited")
		return phase.Continue, nil
	}
	rc.RateLimit = "limited:" + f.Policy
	f.observe("limited")
	retry := int(math.Ceil(res.RetryAfter.Seconds()))
	return phase.Continue, &phase.Error{Kind: phase.KindTooManyRequests, Detail: "too many requests; slow down",
		Header: http.Header{
			"Retry-After":      {strconv.Itoa(retry)},
			"Ratelimit-Policy": f.policyHeader,
			"Ratelimit":        {`"` + f.Policy + `";r=0;t=` + strconv.Itoa(retry)},
		}}
}

func (f *Filter) observe(result string) {
	if f.Obs != nil {
		f.Obs.RateLimit(f.Policy, result)
	}
}
