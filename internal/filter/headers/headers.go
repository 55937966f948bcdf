// Package headers holds the header filters a route can carry: request and
// response header edits, and default security headers. They are ordinary
// phase filters, attached by internal/compile; the engine does not know
// them.
package headers

import (
	"net/http"
	"sort"

	"gatehouse/internal/httpsyntax"
	"gatehouse/internal/phase"
)

// kv is one header. vals is the value as a one-element slice with len ==
// cap, built once and shared by every request: appending to it copies, and
// nothing on the response path writes into it, so sharing saves an
// allocation per header per request.
type kv struct {
	name, value string
	vals        []string
}

// Edits is a compiled set of header edits, applied remove → set → add.
// Names are canonical and lists are sorted, so the order of application is
// deterministic.
type Edits struct {
	remove []string
	set    []kv
	add    []kv
}

// NewEdits compiles edits; it returns nil when there is nothing to do.
func NewEdits(set, add map[string]string, remove []string) *Edits {
	if len(set)+len(add)+len(remove) == 0 {
		return nil
	}
	e := &Edits{set: sorted(set), add: sorted(add)}
	for _, n := range remove {
		e.remove = append(e.remove, http.CanonicalHeaderKey(n))
	}
	return e
}

func sorted(m map[string]string) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{name: http.CanonicalHeaderKey(k), value: v, vals: []string{v}[:1:1]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Apply edits h in place.
func (e *Edits) Apply(h http.Header) {
	for _, n := range e.remove {
		delete(h, n)
	}
	for _, p := range e.set {
		h[p.name] = p.vals
	}
	for _, p := range e.add {
		h[p.name] = append(h[p.name], p.value)
	}
}

// RequestEdits edits the request sent upstream.
type RequestEdits struct{ *Edits }

// FilterUpstreamRequest implements phase.UpstreamRequestFilter.
func (f RequestEdits) FilterUpstreamRequest(_ *phase.RequestCtx, out *http.Request) {
	f.Apply(out.Header)
}

// ResponseEdits edits the response sent to the client.
type ResponseEdits struct{ *Edits }

// FilterResponse implements phase.ResponseFilter.
func (f ResponseEdits) FilterResponse(_ *phase.RequestCtx, _ int, h http.Header) { f.Apply(h) }

// FieldsAdded implements phase.FieldAdder.
func (f ResponseEdits) FieldsAdded() int { return len(f.set) + len(f.add) }

// Security sets default security headers on responses that lack them. An
// app that sends its own value (say, X-Frame-Options for a page meant to be
// framed) keeps it; a route turns a default off in config. An empty value
// is no value: "X-Content-Type-Options:" alone would otherwise switch the
// default off from the app's side.
type Security struct{ set []kv }

// NewSecurity compiles the defaults merged with a route's overrides; an
// empty override value removes that default. It returns nil when empty.
func NewSecurity(defaults, overrides map[string]string) *Security {
	merged := map[string]string{}
	for k, v := range defaults {
		merged[http.CanonicalHeaderKey(k)] = v
	}
	for k, v := range overrides {
		if v == "" {
			delete(merged, http.CanonicalHeaderKey(k))
		} else {
			merged[http.CanonicalHeaderKey(k)] = v
		}
	}
	if len(merged) == 0 {
		return nil
	}
	return &Security{set: sorted(merged)}
}

// FieldsAdded implements phase.FieldAdder.
func (s *Security) FieldsAdded() int { return len(s.set) }

// FilterResponse implements phase.ResponseFilter.
func (s *Security) FilterResponse(_ *phase.RequestCtx, _ int, h http.Header) {
	for _, p := range s.set {
		if !httpsyntax.FieldHasValue(h[p.name]) {
			h[p.name] = p.vals
		}
	}
}
