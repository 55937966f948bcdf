package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"gatehouse/internal/lb"
	"gatehouse/internal/phase"
)

// proxy is the upstream-peer phase and the round trips: it picks a target,
// lets httputil.ReverseProxy make one attempt on the wire (hop-by-hop
// headers, trailers, 1xx, upgrades, streaming) and, while nothing has been
// written to the client, retries a failed attempt on a target not yet
// tried.
//
// A failed attempt is retried when all of these hold (docs/upstreams.md):
//   - attempts remain (retries.attempts) and the deadline has not passed;
//   - the body can be sent again: there is none, or it fit in
//     retries.buffer_body and was kept;
//   - the failure is safe to retry: a connection that was never made
//     (any method), or for idempotent methods also a timeout, a reset, or
//     a status in retries.on_status;
//   - the client is still there.
func (e *Engine) proxy(st *state, w *respWriter, r *http.Request) {
	pol := st.retry
	st.clientCtx = r.Context()
	var body []byte
	// A request that declares no content has none to replay: the HTTP/2
	// servers give one that ended with its HEADERS frame an empty body of
	// length 0, not NoBody (net/http's does too), and reading it into a
	// buffer cost four allocations per request.
	replayable := r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
	if !replayable && pol.Attempts > 1 && r.ContentLength >= 0 && r.ContentLength <= pol.BufferBody {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			e.failToProxy(st, w, r, classify(r, err))
			return
		}
		body, replayable = b, true
	}
	idempotent := isIdempotent(r.Method)
	var key uint64
	if spec := st.pool.Settings.HashKey; spec != "" {
		key = lb.HashKey(spec, r, &st.rc.Identity, st.clientIP(), st.rc.Path)
	}
	var first time.Time // the first attempt's start: the retry deadline runs from it
	for {
		t, err := st.pool.Pick(&st.tried, key)
		if err != nil {
			if st.attemptErr != nil { // every target tried: the last failure stands
				e.failToProxy(st, w, r, st.attemptErr)
				return
			}
			pe := phase.NewError(phase.KindUnavailable, "no upstream available", err)
			pe.Header = http.Header{"Retry-After": {"5"}}
			e.failToProxy(st, w, r, pe)
			return
		}
		st.tried.Add(t)
		if body != nil {
			r.Body = &replayBody{bytes.NewReader(body)}
		}
		if !e.attempt(st, w, r, t) {
			return // a response (or an abort) went to the client
		}
		if first.IsZero() {
			first = st.rtStart
		}
		pe := st.attemptErr
		retry := st.rc.Attempts < pol.Attempts && replayable && pe.Retryable &&
			(pe.Kind == phase.KindUpstreamConnect || idempotent) &&
			(pol.Deadline == 0 || e.since(first) < pol.Deadline) &&
			st.clientCtx.Err() == nil
		if !retry {
			e.failToProxy(st, w, r, pe)
			return
		}
	}
}

// replayBody is a request body the engine kept (retries.buffer_body),
// given to each attempt afresh. Close does nothing: the bytes are the
// engine's. It says its length (bytes.Reader's Len), which tells the
// pool's client it is in memory and never waits.
type replayBody struct{ *bytes.Reader }

func (replayBody) Close() error { return nil }

// attempt makes one round trip to t. It returns true when the attempt
// failed before anything was written to the client (st.attemptErr says
// why), false when a response, or an aborted one, reached the client.
func (e *Engine) attempt(st *state, w *respWriter, r *http.Request, t *lb.Target) bool {
	st.target = t
	st.rc.Upstream = t.Addr
	st.rc.Attempts++
	st.attemptErr = nil
	st.rc.UpstreamRT = 0
	t.Begin()
	defer t.Done()
	direct := st.pool.DirectFor(r) && !e.noDirect
	// ReverseProxy's callbacks find the state in the context; the direct
	// attempt is handed it.
	ctx := st.clientCtx
	st.n1xx, st.bad1xx, st.stopAttempt = 0, nil, nil
	if !direct {
		ctx = context.WithValue(ctx, stateKey{}, st)
		// ReverseProxy's 1xx hook cannot fail the round trip, and the
		// Transport bounds no 1xx once a hook looks at them: the writer
		// stops the attempt past lb.Max1xx through this (stop1xx).
		var stop context.CancelCauseFunc
		ctx, stop = context.WithCancelCause(ctx)
		defer stop(nil)
		st.stopAttempt = stop
	}
	if st.retry.PerTry > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		ib, _ := r.Body.(*idleBody)
		pt := startPerTry(st.retry.PerTry, ib, cancel)
		st.perTry.Store(pt)
		defer pt.stop()
	}
	if e.tracer != nil {
		e.startClientSpan(st, r)
		defer e.endClientSpan(st)
	}
	st.rtStart = e.nowAfter(st.rc.Start)
	if direct {
		e.direct(st, w, r, ctx)
	} else {
		e.rp.ServeHTTP(w, r.WithContext(ctx))
	}
	return st.attemptErr != nil && !w.wroteHeader && !w.hijacked
}

// perTry is one attempt's per-try timer, which cancels the attempt through
// cancel. It is an allocation of its own, not part of the pooled state:
// its function may run after the attempt has ended and the state serves
// another request.
//
// The limit covers the wait for response headers and an upload the
// upstream stops taking, not the wait for the client (upstreams.md): when
// it runs out while the attempt waits on the client (a read of the
// client's body waits, or returned within half the limit), it starts
// again, so a slow upload is neither answered 504 nor taken for a slow
// upstream, which passive health would eject; once the body has been read
// to its end, the wait for headers gets the whole limit (bodyEnded). An
// upstream that stops reading the body leaves the body writer blocked on
// it, reading nothing from the client: that runs out, within one and a
// half times the limit.
type perTry struct {
	d      time.Duration
	ib     *idleBody // the client's body, if streamed
	cancel context.CancelFunc
	fired  atomic.Bool // the limit ran out

	mu   sync.Mutex // guards the following fields
	live bool       // still waiting for response headers
	t    *time.Timer
}

func startPerTry(d time.Duration, ib *idleBody, cancel context.CancelFunc) *perTry {
	p := &perTry{d: d, ib: ib, cancel: cancel, live: true}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.t = time.AfterFunc(d, p.fire)
	return p
}

func (p *perTry) fire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.live {
		return // headers came, or the attempt ended
	}
	if p.ib != nil && p.ib.waitingOnClient(p.d/2) {
		p.t.Reset(p.d)
		return
	}
	p.fired.Store(true)
	p.cancel()
}

// bodyEnded gives the wait for response headers the whole limit: the
// client's body has been read to its end.
func (p *perTry) bodyEnded() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live {
		p.t.Reset(p.d)
	}
}

// stop stops the timer for good: response headers came, or the attempt
// is over (a body that ends later must not start it again).
func (p *perTry) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live = false
	p.t.Stop()
}

// perTryRanOut reports whether the current attempt's per-try limit ran
// out.
func (st *state) perTryRanOut() bool {
	pt := st.perTry.Load()
	return pt != nil && pt.fired.Load()
}

// upstreamResponse runs when response headers arrive (ReverseProxy's
// ModifyResponse). A status in retries.on_status, on a request that may be
// retried, becomes an error so the attempt is retried; the response is
// discarded. Response filters run later, in respWriter.WriteHeader, so
// local responses get them too.
func (e *Engine) upstreamResponse(resp *http.Response) error {
	if err := e.upstreamResponseOf(stateOf(resp.Request.Context()), resp); err != nil {
		return err
	}
	if resp.ContentLength == -1 && resp.StatusCode != http.StatusSwitchingProtocols {
		// Trailers come only with chunks; ReverseProxy copies them once
		// the body is closed, and they are checked then.
		resp.Body = &trailerCheckedBody{ReadCloser: resp.Body, resp: resp}
	}
	return nil
}

// trailerCheckedBody is a ReverseProxy response's body whose Close drops
// the trailer fields no sender may send (dropBadTrailers) before
// ReverseProxy passes the trailer on.
type trailerCheckedBody struct {
	io.ReadCloser
	resp *http.Response
}

func (b *trailerCheckedBody) Close() error {
	err := b.ReadCloser.Close()
	dropBadTrailers(b.resp.Trailer)
	return err
}

// dropBadTrailers deletes the trailer fields RFC 9110 §6.5.1 forbids a
// sender (framing, routing, authentication, content metadata: the ones
// httpguts.ValidTrailerHeader refuses). An upstream's undeclared
// trailers reach the client writer under http.TrailerPrefix, which both
// HTTP/1.1 servers write unchecked; h2server checks them itself, and the
// declared ones were checked when the response head arrived.
func dropBadTrailers(t http.Header) {
	for k := range t {
		if !httpguts.ValidTrailerHeader(k) || trailerOnlyInHead(k) {
			delete(t, k)
		}
	}
}

// trailerOnlyInHead reports whether a field, valid in a trailer by
// httpguts' list, means something only in a header section (RFC 9110
// §6.5.1) and is dropped from a trailer like those: a hop-by-hop field
// (an Upgrade: h2c in a trailer went to the client), Set-Cookie (the
// login cookies are Gatehouse's, and no other cookie is set from a
// trailer) and Strict-Transport-Security, which Gatehouse decides on in
// the head (respWriter.WriteHeader).
func trailerOnlyInHead(k string) bool {
	switch k {
	case "Set-Cookie", "Strict-Transport-Security":
		return true
	}
	return isHopHeader(k)
}

func (e *Engine) upstreamResponseOf(st *state, resp *http.Response) error {
	if cb := st.bodyErr.Load(); cb != nil {
		// The upstream answered a request whose body failed half way (it
		// saw a truncated body): its answer is not for what the client
		// sent.
		return *cb
	}
	if resp.StatusCode < 100 {
		// http.ReadResponse takes any three digits; net/http cannot
		// write a status below 100 (it panics).
		return fmt.Errorf("upstream sent status %d", resp.StatusCode)
	}
	if pt := st.perTry.Load(); pt != nil {
		pt.stop() // the per-try limit covers the wait for headers only
	}
	if resp.StatusCode == http.StatusOK && isEventStream(resp.Header.Get("Content-Type")) {
		resp.Body = e.drainable(resp.Body)
	}
	st.rc.UpstreamRT = e.since(st.rtStart)
	t := st.target
	t.ObserveLatency(st.rc.UpstreamRT)
	if obs := t.Obs; obs != nil {
		obs.Response(resp.StatusCode, st.rc.UpstreamRT.Seconds())
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		st.pool.Report(t, lb.Failure)
	default:
		st.pool.Report(t, lb.Success)
	}
	if base := st.snap.StripCookie; base != "" {
		// The login cookies are Gatehouse's alone, both ways: no app may
		// plant or end a session for the others (fixation, login CSRF).
		dropOwnSetCookies(resp.Header, base)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if err := checkSwitch(resp); err != nil {
			return err
		}
		st.w.status = http.StatusSwitchingProtocols
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			st.ws, resp.Body = e.newTunnel(rwc)
		}
	}
	if slices.Contains(st.retry.OnStatus, resp.StatusCode) && st.rc.Attempts < st.retry.Attempts &&
		isIdempotent(resp.Request.Method) {
		return &retryStatus{status: resp.StatusCode}
	}
	return nil
}

// checkSwitch lets a 101 through only as the answer to a WebSocket
// upgrade that was sent, switching to WebSocket: anything else would hand
// the client a tunnel to the upstream that no route or filter sees. The
// attempt then fails (502) and the upstream connection is closed.
// ReverseProxy also refuses a protocol other than the one asked for; this
// does not rely on it.
func checkSwitch(resp *http.Response) error {
	var asked []string
	if resp.Request != nil && httpguts.HeaderValuesContainsToken(resp.Request.Header["Connection"], "Upgrade") {
		asked = resp.Request.Header["Upgrade"]
	}
	got := resp.Header["Upgrade"]
	if isWebSocket(asked) && isWebSocket(got) {
		return nil
	}
	return &phase.Error{Kind: phase.KindUpstreamProto, Detail: "upstream switched protocols unasked",
		Err: fmt.Errorf("upstream answered 101 to %q with upgrade %q", asked, got)}
}

// retryStatus carries a retryable upstream status through ReverseProxy's
// ErrorHandler.
type retryStatus struct{ status int }

func (r *retryStatus) Error() string { return fmt.Sprintf("upstream answered %d", r.status) }

// upstreamError runs when the attempt failed before any response byte was
// written to the client (ReverseProxy's ErrorHandler). It records why and
// feeds passive health; proxy decides whether to retry or answer.
func (e *Engine) upstreamError(_ http.ResponseWriter, r *http.Request, err error) {
	e.attemptFailed(stateOf(r.Context()), err)
}

func (e *Engine) attemptFailed(st *state, err error) {
	if st.bad1xx != nil {
		err = st.bad1xx // not the cancellation that stopped the Transport
	}
	if st.rc.UpstreamRT == 0 {
		st.rc.UpstreamRT = e.since(st.rtStart)
	}
	var rs *retryStatus
	var pe *phase.Error
	switch {
	case errors.As(err, &rs):
		pe = &phase.Error{Kind: phase.KindUpstreamProto, Status: rs.status, Detail: "upstream unavailable", Retryable: true, Err: err}
	case bodyFault(st) != nil:
		pe = bodyFault(st)
	case st.perTryRanOut() && st.clientCtx.Err() == nil:
		pe = &phase.Error{Kind: phase.KindUpstreamTimeout, Detail: "upstream timed out", Retryable: true, Err: err}
	default:
		pe = classifyCtx(st.clientCtx, err)
	}
	st.attemptErr = pe
	t := st.target
	switch pe.Kind {
	case phase.KindUpstreamConnect, phase.KindUpstreamTimeout:
		st.pool.Report(t, lb.Failure)
	case phase.KindUpstreamProto:
		if rs == nil {
			st.pool.Report(t, lb.Failure)
		}
	}
	if obs := t.Obs; obs != nil {
		switch pe.Kind {
		case phase.KindUpstreamConnect:
			obs.Error("connect")
		case phase.KindUpstreamTimeout:
			obs.Error("timeout")
		case phase.KindUpstreamProto:
			if rs == nil {
				obs.Error("protocol")
			}
		}
	}
}

// stop1xx ends an attempt whose upstream's informational responses
// cannot be passed on (err: more than lb.Max1xx, or one with too many
// fields): the direct client fails it itself (Informational returns err);
// a ReverseProxy attempt is cancelled. attemptFailed then reports err, a
// 502.
func (st *state) stop1xx(err error) {
	st.bad1xx = err
	if st.stopAttempt != nil {
		st.stopAttempt(err)
	}
}

// isIdempotent: RFC 9110 §9.2.2.
func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
