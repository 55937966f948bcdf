package logging

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// LineHandler is a slog.Handler that writes one JSON object per record,
// like slog.JSONHandler, in a fraction of its time: attributes are encoded
// straight into a pooled buffer, with no reflection for strings, numbers,
// booleans, times and durations. It exists for the access log, which
// writes a line per request (docs/performance.md). Groups are flattened:
// a key inside a group is written as "group.key".
type LineHandler struct {
	w      io.Writer
	level  slog.Leveler
	prefix []byte // pre-encoded attributes from WithAttrs, each starting with ','
	group  string // dotted group prefix for keys
}

// NewLineHandler writes records at or above level (nil: info) to w; each
// record is a single Write call.
func NewLineHandler(w io.Writer, level slog.Leveler) *LineHandler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &LineHandler{w: w, level: level}
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Enabled implements slog.Handler.
func (h *LineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle implements slog.Handler.
func (h *LineHandler) Handle(_ context.Context, r slog.Record) error {
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = appendTime(b, r.Time)
	b = append(b, `","level":"`...)
	b = append(b, r.Level.String()...)
	b = append(b, `","msg":`...)
	b = appendString(b, r.Message)
	b = append(b, h.prefix...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.group, a)
		return true
	})
	b = append(b, '}', '\n')
	_, err := h.w.Write(b)
	*bp = b
	lineBufs.Put(bp)
	return err
}

// WithAttrs implements slog.Handler.
func (h *LineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.prefix = append([]byte(nil), h.prefix...)
	for _, a := range attrs {
		h2.prefix = appendAttr(h2.prefix, h.group, a)
	}
	return &h2
}

// WithGroup implements slog.Handler.
func (h *LineHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.group = h.group + name + "."
	return &h2
}

func appendAttr(b []byte, group string, a slog.Attr) []byte {
	v := a.Value.Resolve()
	if a.Key == "" && v.Kind() != slog.KindGroup {
		return b
	}
	if v.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range v.Group() {
			b = appendAttr(b, g, ga)
		}
		return b
	}
	b = append(b, ',')
	b = appendString(b, group+a.Key)
	b = append(b, ':')
	switch v.Kind() {
	case slog.KindString:
		b = appendString(b, v.String())
	case slog.KindInt64:
		b = strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		b = strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		b = strconv.AppendFloat(b, v.Float64(), 'f', -1, 64)
	case slog.KindBool:
		b = strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		b = strconv.AppendInt(b, int64(v.Duration()), 10)
	case slog.KindTime:
		b = append(b, '"')
		b = v.Time().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	default:
		any := v.Any()
		if err, ok := any.(error); ok {
			b = appendString(b, err.Error())
			break
		}
		j, err := json.Marshal(any)
		if err != nil {
			b = appendString(b, "!ERROR: "+err.Error())
			break
		}
		b = append(b, j...)
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, and <, >, & escaped
// as encoding/json does, so a log line is safe to embed in HTML.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AccessEntry is one access line. WriteAccess writes it exactly as the
// same fields logged through slog would be, without building a
// slog.Record (which copies and allocates for more than five attributes).
type AccessEntry struct {
	Time                                                           time.Time
	RequestID, TraceID, ClientIP, Method, Host, Path, Route, Upstr string
	Status                                                         int
	Bytes                                                          int64
	DurationMS, UpstreamMS                                         float64
	Attempts                                                       int
	Auth, AuthReason, RateLimit, Err                               string
}

// WriteAccess writes e as one JSON line at level INFO, message "access".
func (h *LineHandler) WriteAccess(e *AccessEntry) error {
	if slog.LevelInfo < h.level.Level() {
		return nil
	}
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = appendTime(b, e.Time)
	b = append(b, `","level":"INFO","msg":"access"`...)
	b = append(b, h.prefix...)
	str := func(k, v string) {
		b = append(b, ',', '"')
		b = append(b, h.group...)
		b = append(b, k...)
		b = append(b, '"', ':')
		b = appendString(b, v)
	}
	num := func(k string, v int64) {
		b = append(b, ',', '"')
		b = append(b, h.group...)
		b = append(b, k...)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, v, 10)
	}
	flt := func(k string, v float64) {
		b = append(b, ',', '"')
		b = append(b, h.group...)
		b = append(b, k...)
		b = append(b, '"', ':')
		b = appendMillis(b, v)
	}
	str(KeyRequestID, e.RequestID)
	str(KeyTraceID, e.TraceID)
	str(KeyClientIP, e.ClientIP)
	str(KeyMethod, e.Method)
	str(KeyHost, e.Host)
	str(KeyPath, e.Path)
	str(KeyRoute, e.Route)
	str(KeyUpstream, e.Upstr)
	num(KeyStatus, int64(e.Status))
	num(KeyBytes, e.Bytes)
	flt(KeyDurationMS, e.DurationMS)
	flt(KeyUpstreamMS, e.UpstreamMS)
	num(KeyAttempts, int64(e.Attempts))
	str(KeyAuth, e.Auth)
	str(KeyAuthReason, e.AuthReason)
	str(KeyRateLimit, e.RateLimit)
	str(KeyErr, e.Err)
	b = append(b, '}', '\n')
	_, err := h.w.Write(b)
	*bp = b
	lineBufs.Put(bp)
	return err
}

// Attrs returns e's fields as slog attributes, in WriteAccess's order, for
// handlers other than LineHandler.
func (e *AccessEntry) Attrs() []slog.Attr {
	return []slog.Attr{
		slog.String(KeyRequestID, e.RequestID), slog.String(KeyTraceID, e.TraceID),
		slog.String(KeyClientIP, e.ClientIP), slog.String(KeyMethod, e.Method),
		slog.String(KeyHost, e.Host), slog.String(KeyPath, e.Path),
		slog.String(KeyRoute, e.Route), slog.String(KeyUpstream, e.Upstr),
		slog.Int(KeyStatus, e.Status), slog.Int64(KeyBytes, e.Bytes),
		slog.Float64(KeyDurationMS, e.DurationMS), slog.Float64(KeyUpstreamMS, e.UpstreamMS),
		slog.Int(KeyAttempts, e.Attempts), slog.String(KeyAuth, e.Auth),
		slog.String(KeyAuthReason, e.AuthReason), slog.String(KeyRateLimit, e.RateLimit),
		slog.String(KeyErr, e.Err),
	}
}

// stamp is one second formatted as RFC 3339 up to its seconds, and the
// zone's suffix, for appendTime.
type stamp struct {
	sec  int64 // Unix seconds
	loc  *time.Location
	date []byte // "2006-01-02T15:04:05"
	zone []byte // "Z" or "-07:00"
}

// lastStamp is the second the last line was written in: lines written in
// the same second share it.
var lastStamp atomic.Pointer[stamp]

// appendTime appends t as t.AppendFormat(b, time.RFC3339Nano) does, with
// the date, clock and zone formatted once per second: AppendFormat was a
// sixth of the access log's time (docs/performance.md).
func appendTime(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	s := lastStamp.Load()
	if s == nil || s.sec != sec || s.loc != loc {
		s = &stamp{sec: sec, loc: loc,
			date: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		lastStamp.Store(s)
	}
	b = append(b, s.date...)
	if ns := t.Nanosecond(); ns != 0 {
		// ".999999999": nine digits, trailing zeros dropped.
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, s.zone...)
}

// appendMillis appends v as strconv.AppendFloat(b, v, 'f', -1, 64) does.
// The access line's durations are whole microseconds in milliseconds
// (k/1000), and for those it writes k's digits with the decimal point
// put in and trailing zeros dropped, which is what the shortest
// representation is: the double nearest k/1000, below 2^30, has no
// shorter decimal within half its ulp (under 2^-22). AppendFloat's
// shortest-digits search was a fifth of the line's cost.
func appendMillis(b []byte, v float64) []byte {
	if !(v >= 0 && v < 1<<30) || math.Signbit(v) { // -0 is "-0"
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	k := uint64(v*1000 + 0.5)
	if float64(k)/1000 != v {
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	b = strconv.AppendUint(b, k/1000, 10)
	frac := k % 1000
	if frac == 0 {
		return b
	}
	digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := 3
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}
