package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLineHandlerMatchesJSONHandler: both handlers' output decodes to the
// same values, for awkward strings too.
func TestLineHandlerMatchesJSONHandler(t *testing.T) {
	t.Parallel()
	strs := []string{"plain", `quote " and \ backslash`, "new\nline\ttab\x00nul\x1f", "<script>&amp;", "ünïcödé ✓", "bad \xff utf8", "line\u2028sep"}
	for _, s := range strs {
		attrs := []slog.Attr{
			slog.String("s", s), slog.Int("i", -42), slog.Int64("i64", 1<<40), slog.Uint64("u", 7),
			slog.Float64("f", 0.289), slog.Bool("b", true), slog.Duration("d", 1500*time.Millisecond),
			slog.Time("t", time.Date(2026, 11, 25, 22, 52, 43, 580000000, time.UTC)),
			slog.Any("err", errors.New("boom")), slog.Any("list", []int{1, 2}),
			slog.Group("g", slog.String("k", "v")),
		}
		var a, b bytes.Buffer
		slog.New(slog.NewJSONHandler(&a, nil)).With("pre", "x").LogAttrs(t.Context(), slog.LevelInfo, s, attrs...)
		slog.New(NewLineHandler(&b, nil)).With("pre", "x").LogAttrs(t.Context(), slog.LevelInfo, s, attrs...)
		var ma, mb map[string]any
		if err := json.Unmarshal(a.Bytes(), &ma); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b.Bytes(), &mb); err != nil {
			t.Fatalf("LineHandler wrote invalid JSON %q: %v", b.String(), err)
		}
		delete(ma, "time")
		delete(mb, "time")
		// slog nests groups; LineHandler flattens them.
		ma["g.k"] = ma["g"].(map[string]any)["k"]
		delete(ma, "g")
		if diff := cmp.Diff(ma, mb); diff != "" {
			t.Errorf("%q (-JSONHandler +LineHandler):\n%s", s, diff)
		}
		if strings.Count(b.String(), "\n") != 1 {
			t.Errorf("not one line: %q", b.String())
		}
	}
}

func BenchmarkAccessLine(b *testing.B) {
	for _, h := range []struct {
		name string
		h    slog.Handler
	}{{"slog.JSONHandler", slog.NewJSONHandler(io.Discard, nil)}, {"LineHandler", NewLineHandler(io.Discard, nil)}} {
		b.Run(h.name, func(b *testing.B) {
			l := slog.New(h.h)
			b.ReportAllocs()
			for b.Loop() {
				l.LogAttrs(b.Context(), slog.LevelInfo, "access",
					slog.String(KeyRequestID, "186256494ebc-4"), slog.String(KeyTraceID, ""),
					slog.String(KeyClientIP, "127.0.0.1"), slog.String(KeyMethod, "GET"),
					slog.String(KeyHost, "localhost"), slog.String(KeyPath, "/oauth/login"),
					slog.String(KeyRoute, "oauth"), slog.String(KeyUpstream, "127.0.0.1:3001"),
					slog.Int(KeyStatus, 200), slog.Int64(KeyBytes, 541), slog.Float64(KeyDurationMS, 0.289),
					slog.Float64(KeyUpstreamMS, 0.264), slog.Int(KeyAttempts, 1), slog.String(KeyAuth, ""),
					slog.String(KeyAuthReason, ""), slog.String(KeyRateLimit, ""), slog.String(KeyErr, ""))
			}
		})
	}
}

// WriteAccess writes byte for byte what logging the same fields through
// slog with a LineHandler writes.
func TestWriteAccessMatchesSlogPath(t *testing.T) {
	t.Parallel()
	e := &AccessEntry{Time: time.Date(2026, 11, 25, 22, 52, 43, 580000000, time.UTC), RequestID: "r-1", ClientIP: "10.0.0.1",
		Method: "GET", Host: "example.com", Path: "/a%20b", Route: "app", Upstr: "127.0.0.1:3002", Status: 200, Bytes: 541,
		DurationMS: 0.289, UpstreamMS: 0.264, Attempts: 1, Auth: "deny", AuthReason: `missing role "admin"`, Err: "x\ny"}
	var a, b bytes.Buffer
	h := NewLineHandler(&a, nil)
	rec := slog.NewRecord(e.Time, slog.LevelInfo, "access", 0)
	rec.AddAttrs(e.Attrs()...)
	if err := h.Handle(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	if err := NewLineHandler(&b, nil).WriteAccess(e); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a.String(), b.String()); diff != "" {
		t.Fatalf("(-slog +WriteAccess):\n%s", diff)
	}
}

// appendMillis writes what strconv.AppendFloat(b, v, 'f', -1, 64) writes:
// for whole microseconds in milliseconds (its fast path) and for any
// other float (its fallback).
func TestAppendMillisMatchesAppendFloat(t *testing.T) {
	t.Parallel()
	check := func(v float64) {
		t.Helper()
		if got, want := string(appendMillis([]byte("x"), v)), string(strconv.AppendFloat([]byte("x"), v, 'f', -1, 64)); got != want {
			t.Fatalf("appendMillis(%v) = %q, want %q", v, got, want)
		}
	}
	for _, us := range []int64{0, 1, 9, 10, 100, 999, 1000, 1001, 1010, 1100, 12345, 999999, 1000000, 86400e6, 1<<30*1000 - 1, 1 << 30 * 1000} {
		check(float64(us) / 1000)
	}
	for _, v := range []float64{math.Copysign(0, -1), -0.001, -1, 0.0001, 0.0005, 1.0001, 1e-9, 1 << 30, 1e15, 1e300, math.Inf(1), math.Inf(-1), math.NaN(), math.Nextafter(0.289, 1)} {
		check(v)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		us := rng.Int64N(1 << 40)
		if rng.IntN(2) == 0 {
			us = rng.Int64N(10000000)
		}
		check(float64(us) / 1000)
		check(rng.Float64() * float64(rng.Int64N(1<<31)))
	}
}

// TestAppendTimeMatchesAppendFormat: the per-second cache writes what
// time.RFC3339Nano does, whatever the zone, the fraction (trailing zeros
// dropped, none at all for a whole second) and the order the times come
// in, from several goroutines at once.
func TestAppendTimeMatchesAppendFormat(t *testing.T) {
	t.Parallel()
	locs := []*time.Location{time.UTC, time.Local, time.FixedZone("east", 5*3600+30*60), time.FixedZone("west", -7*3600)}
	if ny, err := time.LoadLocation("America/New_York"); err == nil {
		locs = append(locs, ny) // a DST change: 2026-03-08 07:00 UTC
	}
	base := time.Date(2026, 3, 8, 6, 59, 58, 0, time.UTC)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := 0; i < 20000; i++ {
				tm := base.Add(time.Duration(rng.Int64N(int64(4 * time.Second))))
				switch rng.IntN(4) {
				case 0:
					tm = tm.Truncate(time.Second) // no fraction
				case 1:
					tm = tm.Truncate(time.Millisecond) // trailing zeros
				}
				tm = tm.In(locs[rng.IntN(len(locs))])
				if got, want := string(appendTime([]byte("x"), tm)), "x"+tm.Format(time.RFC3339Nano); got != want {
					t.Errorf("appendTime(%v) = %q, want %q", tm, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkWriteAccess is the engine's path: one access line per request,
// its time now.
func BenchmarkWriteAccess(b *testing.B) {
	h := NewLineHandler(io.Discard, nil)
	e := AccessEntry{RequestID: "186256494ebc-4", ClientIP: "127.0.0.1", Method: "GET", Host: "localhost",
		Path: "/oauth/login", Route: "oauth", Upstr: "127.0.0.1:3001", Status: 200, Bytes: 541,
		DurationMS: 0.289, UpstreamMS: 0.264, Attempts: 1}
	b.ReportAllocs()
	for b.Loop() {
		e.Time = time.Now()
		_ = h.WriteAccess(&e)
	}
}
