package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"gatehouse/internal/observe/logging"
	"gatehouse/internal/phase"
)

// logging is the last phase: it runs exactly once per request, on every
// exit path (ServeHTTP's deferred finish), and writes one access line.
// It never logs the query string, cookies or Authorization: only the
// normalized path.
func (e *Engine) logging(st *state, r *http.Request) {
	rc := &st.rc
	rc.Status = st.w.status
	rc.Bytes = st.w.bytes
	if rc.Err != nil && rc.Err.Kind == phase.KindClientGone {
		rc.Status = 499 // nginx's "client closed request"
	}
	if rc.Status == 0 {
		rc.Status = http.StatusOK // the handler returned without writing
	}
	dur := e.now().Sub(rc.Start)
	if obs := st.route.Obs; obs != nil {
		obs.Observe(r.Method, rc.Status, dur.Seconds())
	}
	if st.span != nil {
		e.endServerSpan(st)
	}
	if e.access == nil {
		return
	}
	path := rc.Path
	if path == "" { // refused before normalization: log what was sent, bounded
		path = r.URL.EscapedPath()
		if len(path) > 256 {
			path = path[:256]
		}
	}
	errText := ""
	if rc.Err != nil {
		errText = rc.Err.Error()
	}
	// The record is built here rather than through Logger.LogAttrs, which
	// captures the caller's PC (runtime.Callers) on every call: a cost paid
	// per request for a source location the access log never prints.
	rec := slog.NewRecord(rc.Start.Add(dur), slog.LevelInfo, "access", 0)
	rec.AddAttrs(
		slog.String(logging.KeyRequestID, rc.RequestID),
		slog.String(logging.KeyTraceID, rc.TraceID),
		slog.String(logging.KeyClientIP, st.clientIP()),
		slog.String(logging.KeyMethod, r.Method),
		slog.String(logging.KeyHost, rc.Host),
		slog.String(logging.KeyPath, path),
		slog.String(logging.KeyRoute, rc.Route),
		slog.String(logging.KeyUpstream, rc.Upstream),
		slog.Int(logging.KeyStatus, rc.Status),
		slog.Int64(logging.KeyBytes, rc.Bytes),
		slog.Float64(logging.KeyDurationMS, ms(dur)),
		slog.Float64(logging.KeyUpstreamMS, ms(rc.UpstreamRT)),
		slog.Int(logging.KeyAttempts, rc.Attempts),
		slog.String(logging.KeyAuth, rc.Auth),
		slog.String(logging.KeyAuthReason, rc.AuthReason),
		slog.String(logging.KeyRateLimit, rc.RateLimit),
		slog.String(logging.KeyErr, errText),
	)
	_ = e.access.Handle(context.Background(), rec)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
