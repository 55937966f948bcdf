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
	dur := e.since(rc.Start)
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
	entry := logging.AccessEntry{Time: rc.Start.Add(dur), RequestID: rc.RequestID, TraceID: rc.TraceID,
		ClientIP: st.clientIP(), Method: r.Method, Host: rc.Host, Path: path, Route: rc.Route, Upstr: rc.Upstream,
		Status: rc.Status, Bytes: rc.Bytes, DurationMS: ms(dur), UpstreamMS: ms(rc.UpstreamRT), Attempts: rc.Attempts,
		Auth: rc.Auth, AuthReason: rc.AuthReason, RateLimit: rc.RateLimit, Err: errText}
	// Gatehouse's own handler writes the line directly; any other handler
	// gets a record (built here, not by Logger.LogAttrs, which captures the
	// caller's PC on every call).
	if lh, ok := e.access.(*logging.LineHandler); ok {
		_ = lh.WriteAccess(&entry)
		return
	}
	rec := slog.NewRecord(entry.Time, slog.LevelInfo, "access", 0)
	rec.AddAttrs(entry.Attrs()...)
	_ = e.access.Handle(context.Background(), rec)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
