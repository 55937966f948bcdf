package proxy

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"

	"gatehouse/internal/phase"
)

// routeRequest picks the route, then applies the route's body limit and
// overall timeout. No match is 404. It returns the request the later phases
// must use (with the route's deadline in its context).
func (e *Engine) routeRequest(st *state, w *respWriter, r *http.Request) (*http.Request, bool) {
	idx := st.snap.Table.Match(st.rc.Host, st.rc.Path, r.Method, r.Header)
	if idx < 0 {
		st.route = st.snap.Fallback
		e.failToProxy(st, w, r, phase.NewError(phase.KindNotFound, "no route for this request", nil))
		return r, false
	}
	rt := st.snap.Routes[idx]
	st.route = rt
	st.rc.Route = rt.Name
	if st.span != nil {
		st.span.SetName(r.Method + " " + rt.Name)
		st.span.SetAttributes(attribute.String("http.route", rt.Name))
	}

	if limit := rt.MaxBodyBytes; limit > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > limit {
			e.failToProxy(st, w, r, phase.NewError(phase.KindBodyTooLarge, "request body too large", nil))
			return r, false
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	if rt.Timeout > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), rt.Timeout)
		st.cancel = cancel
		r = r.WithContext(ctx)
	}
	return r, true
}

// requestFilters runs the route's request filters in order. Default (no
// filters): continue.
func (e *Engine) requestFilters(st *state, w *respWriter, r *http.Request) bool {
	for _, f := range st.route.Filters {
		out, err := f.FilterRequest(&st.rc, w, r)
		if err != nil {
			e.failToProxy(st, w, r, phase.AsError(err))
			return false
		}
		if out == phase.Responded {
			return false
		}
	}
	return true
}
