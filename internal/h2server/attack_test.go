package h2server_test

// Attack tests: what a hostile or broken client can do to an HTTP/2
// server. Each asserts what the client notices, that the server still
// answers a fresh connection, and that the server's goroutines come back
// down to what they were before the client connected. They do not run in
// parallel (goroutines are counted process-wide), except the preface
// test, which counts the server's connections instead.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"gatehouse/internal/testutil"
)

// heapBound is how much the live heap may grow while a client floods.
const heapBound = 64 << 20

// blockUntilDone is a handler that returns when its request is done.
func blockUntilDone(e *env, w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// blockUntilRelease is a handler that answers "ok" once the test lets it
// (or returns when its request is done).
func blockUntilRelease(e *env, w http.ResponseWriter, r *http.Request) {
	select {
	case <-e.release:
		io.WriteString(w, "ok")
	case <-r.Context().Done():
	}
}

func mustDial(t *testing.T, srv *testServer, noRead bool, settings ...http2.Setting) *client {
	t.Helper()
	c, err := dial(srv, noRead, settings...)
	if err != nil {
		t.Fatalf("dial %s: %v", srv.kind, err)
	}
	t.Cleanup(c.close)
	return c
}

// afterAttack closes c and checks that srv answers a fresh connection and
// that the goroutines are back to base.
func afterAttack(t *testing.T, srv *testServer, c *client, base int) {
	t.Helper()
	c.close()
	if err := health(srv); err != nil {
		t.Error(err)
	}
	if err := goroutinesBackTo(base); err != nil {
		t.Error(err)
	}
}

func TestRapidReset(t *testing.T) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			lim := defaultLimits
			e := newEnv()
			srv := startServer(t, kind, lim, e.handler(blockUntilDone, true))
			base := runtime.NumGoroutine()
			c := mustDial(t, srv, false)
			const n = 10000
			id, sent := uint32(1), 0
			for sent < n {
				err := c.write(func() error {
					for i := 0; i < 500 && sent < n; i++ {
						if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id,
							BlockFragment: literal(req("GET", "/block")), EndStream: true, EndHeaders: true}); err != nil {
							return err
						}
						if err := c.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
							return err
						}
						id, sent = id+2, sent+1
					}
					return nil
				})
				if err != nil {
					break
				}
			}
			c.barrier()
			tr := c.snapshot()
			t.Logf("%s: %d streams opened and reset; %d handlers started, at most %d at once; %v",
				kind, sent, e.started.Load(), e.maxInflight.Load(), tr)
			if bound := 4 * int64(lim.MaxConcurrentStreams); e.maxInflight.Load() > bound {
				t.Errorf("%d handlers ran at once, more than %d", e.maxInflight.Load(), bound)
			}
			switch tr.GoAway {
			case "":
				if tr.Closed {
					t.Errorf("connection closed without GOAWAY: %v", tr)
					break
				}
				// Still working: a request on the same connection.
				c.headers(id, true, req("GET", healthPath))
				c.waitStream(id)
				if tr := c.snapshot(); tr.status(id) != "200" {
					t.Errorf("the connection survived but does not answer: %v", tr)
				}
			case "ENHANCE_YOUR_CALM", "PROTOCOL_ERROR":
				if !c.waitClosed() {
					t.Errorf("GOAWAY %s but the connection stays open", tr.GoAway)
				}
			default:
				t.Errorf("GOAWAY %s, want ENHANCE_YOUR_CALM or PROTOCOL_ERROR", tr.GoAway)
			}
			if !testutil.WaitFor(waitTimeout, func() bool { return e.inflight.Load() == 0 }) {
				t.Errorf("%d handlers still running", e.inflight.Load())
			}
			afterAttack(t, srv, c, base)
		})
	}
}

// fillFields returns n header fields of about 1 KiB each (uncompressible:
// '~' has a 13-bit Huffman code, so HPACK sends it as is).
func fillFields(from, n int) []hpack.HeaderField {
	var hf []hpack.HeaderField
	for i := from; i < from+n; i++ {
		hf = append(hf, hpack.HeaderField{Name: fmt.Sprintf("x-fill-%04d", i), Value: strings.Repeat("~", 1000)})
	}
	return hf
}

func TestContinuationFlood(t *testing.T) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			e := newEnv()
			srv := startServer(t, kind, defaultLimits, e.handler(nil, false))
			base, heap0 := runtime.NumGoroutine(), heapAlloc()
			c := mustDial(t, srv, false)
			// HEADERS without END_HEADERS, then CONTINUATION frames of 16
			// KiB, each well-formed HPACK, up to 6 times heapBound.
			c.headerFrames(1, true, false, req("GET", "/"))
			frag := literal(fillFields(0, 16))
			var sent, peak int
			for sent < 6*heapBound {
				err := c.write(func() error {
					for range 64 {
						if err := c.fr.WriteContinuation(1, false, frag); err != nil {
							return err
						}
						sent += len(frag)
					}
					return nil
				})
				if err != nil {
					break
				}
				if h := heapSample(); h > heap0 && int(h-heap0) > peak {
					peak = int(h - heap0)
				}
				if peak > heapBound && int(heapAlloc()-heap0) > heapBound {
					t.Errorf("heap grew by %d MiB after %d MiB of CONTINUATION", peak>>20, sent>>20)
					break
				}
			}
			closed := c.waitClosed()
			tr := c.snapshot()
			t.Logf("%s: sent %d KiB of CONTINUATION; heap peak +%d KiB; %v", kind, sent>>10, peak>>10, tr)
			if !closed {
				t.Errorf("connection still open after %d MiB of an unfinished header block", sent>>20)
			}
			if grew := int64(heapAlloc()) - int64(heap0); grew > heapBound {
				t.Errorf("heap grew by %d MiB", grew>>20)
			}
			if len(tr.Saw) != 0 {
				t.Errorf("a handler ran: %+v", tr.Saw)
			}
			afterAttack(t, srv, c, base)
		})
	}
}

// heapSample is the heap now, without a collection.
func heapSample() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestControlFrameFlood(t *testing.T) {
	floods := []struct {
		name  string
		frame func(fr *http2.Framer) error
	}{
		{"PING", func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}) }},
		{"SETTINGS", func(fr *http2.Framer) error {
			return fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096})
		}},
	}
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			for _, fl := range floods {
				t.Run(fl.name, func(t *testing.T) {
					srv := startServer(t, kind, defaultLimits, newEnv().handler(nil, false))
					base, heap0 := runtime.NumGoroutine(), heapAlloc()
					c := mustDial(t, srv, true) // never reads
					const max = 1 << 20
					sent, peak := 0, 0
					var err error
					for sent < max && err == nil {
						err = c.write(func() error {
							for range 4096 {
								if err := fl.frame(c.fr); err != nil {
									return err
								}
								sent++
							}
							return nil
						})
						if h := heapSample(); h > heap0 && int(h-heap0) > peak {
							peak = int(h - heap0)
						}
						if peak > heapBound && int(heapAlloc()-heap0) > heapBound {
							t.Errorf("heap grew by %d MiB after %d frames", peak>>20, sent)
							break
						}
					}
					outcome := "absorbed"
					var ne net.Error
					switch {
					case errors.As(err, &ne) && ne.Timeout():
						outcome = "blocked (the server stopped reading)"
					case err != nil:
						outcome = "closed: " + err.Error()
					}
					grew := int64(heapAlloc()) - int64(heap0)
					t.Logf("%s: %d %s frames, never reading: %s; heap +%d KiB (peak +%d KiB)", kind, sent, fl.name, outcome, grew>>10, peak>>10)
					if grew > heapBound {
						t.Errorf("heap grew by %d MiB", grew>>20)
					}
					afterAttack(t, srv, c, base)
				})
			}
		})
	}
}

// TestWriteTimeout: a client that stops reading, with its windows wide
// open, holds a handler's writes no longer than WriteTimeout (and a
// little): the write fails and the connection is closed. h2server is
// held to it. net/http's server is not: its stream timer resets the
// stream with a frame that must itself be written, and with the socket
// full it never is, so whether its handler is freed depends on whether
// the timer fires before the socket fills (a loaded machine decides);
// its outcome is logged, not asserted.
func TestWriteTimeout(t *testing.T) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			lim := defaultLimits
			lim.WriteTimeout = 500 * time.Millisecond
			e := newEnv()
			began, took := make(chan struct{}), make(chan time.Duration, 1)
			srv := startServer(t, kind, lim, e.handler(func(e *env, w http.ResponseWriter, r *http.Request) {
				start := time.Now()
				close(began)
				p := pattern(32 << 10)
				var err error
				for i := 0; i < 320 && err == nil; i++ { // 10 MiB
					_, err = w.Write(p)
				}
				took <- time.Since(start)
				e.note("write: " + errClass(err))
			}, false))
			base := runtime.NumGoroutine()
			// Windows wide open, so that only the socket holds the server
			// back: then the client stops reading. (With the default 64 KiB
			// windows the server would wait on flow control, which is no
			// reason to close.)
			c := mustDial(t, srv, true, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
			c.windowUpdate(0, 1<<31-1-65535)
			c.headers(1, true, req("GET", "/"))
			select {
			case <-began:
			case <-time.After(waitTimeout):
				t.Fatal("the handler did not start")
			}
			select {
			case d := <-took:
				if d > lim.WriteTimeout+3*time.Second {
					t.Errorf("the handler's writes ended after %v, WriteTimeout is %v", d, lim.WriteTimeout)
				}
			case <-time.After(lim.WriteTimeout + waitTimeout):
				if kind == "nethttp" {
					t.Logf("nethttp: the handler is still writing %v after it began (see above)", lim.WriteTimeout+waitTimeout)
					c.conn.Close() // frees it
					if !testutil.WaitFor(waitTimeout, func() bool { return e.inflight.Load() == 0 }) {
						t.Fatal("the handler has not returned after the client closed")
					}
					return
				}
				t.Fatalf("the handler is still writing %v after it began", lim.WriteTimeout+waitTimeout)
			}
			if !testutil.WaitFor(waitTimeout, func() bool { return e.inflight.Load() == 0 }) {
				t.Fatal("the handler has not returned")
			}
			e.mu.Lock()
			wrote := e.wrote
			e.mu.Unlock()
			if len(wrote) != 1 || wrote[0] != "write: error" {
				t.Errorf("the handler noted %q, want its Write to fail", wrote)
			}
			// The server has closed: the client reads what was sent, then
			// the end.
			c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
			n, err := io.Copy(io.Discard, c.conn)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("the connection is still open (%d bytes read)", n)
			}
			t.Logf("%s: client read %d KiB after the stall, then %v", kind, n>>10, err)
			afterAttack(t, srv, c, base)
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			lim := defaultLimits
			lim.IdleTimeout = 200 * time.Millisecond
			srv := startServer(t, kind, lim, newEnv().handler(nil, false))
			base := runtime.NumGoroutine()
			c := mustDial(t, srv, false)
			idle := time.Now() // the server's connection goes idle after this
			c.headers(1, true, req("GET", "/"))
			c.waitStream(1)
			if !c.waitGoAway() {
				t.Fatalf("no GOAWAY %v after the request, IdleTimeout %v", time.Since(idle), lim.IdleTimeout)
			}
			after := time.Since(idle)
			tr := c.snapshot()
			if tr.GoAway == "" {
				t.Fatalf("closed without GOAWAY %v after the request: %v", after, tr)
			}
			if tr.status(1) != "200" || tr.GoAway != "NO_ERROR" {
				t.Errorf("want a 200 then GOAWAY NO_ERROR, got %v", tr)
			}
			if after < lim.IdleTimeout || after > lim.IdleTimeout+2*time.Second {
				t.Errorf("GOAWAY %v after the request, IdleTimeout %v", after, lim.IdleTimeout)
			}
			if !c.waitClosed() {
				t.Errorf("GOAWAY, but the connection stays open")
			}
			afterAttack(t, srv, c, base)
		})
	}
}

func TestGracefulShutdown(t *testing.T) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			e := newEnv()
			body := pattern(100 << 10)
			srv := startServer(t, kind, defaultLimits, e.handler(func(e *env, w http.ResponseWriter, r *http.Request) {
				<-e.release
				w.Write(body)
			}, false))
			base := runtime.NumGoroutine()
			c := mustDial(t, srv, false)
			c.headers(1, true, req("GET", "/slow"))
			if !e.waitStarted(1) {
				t.Fatal("the handler did not start")
			}
			shut := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				shut <- srv.hs.Shutdown(ctx)
			}()
			if !c.waitGoAway() {
				t.Fatal("no GOAWAY after Shutdown")
			}
			if tr := c.snapshot(); tr.GoAway != "NO_ERROR" || tr.GoAwayLast < 1 || tr.Closed {
				t.Errorf("want GOAWAY NO_ERROR with last stream ID >= 1 on an open connection, got %v (last %d)", tr, tr.GoAwayLast)
			}
			e.releaseAll()
			c.waitStream(1)
			tr := c.snapshot()
			if st := tr.Streams[1]; tr.status(1) != "200" || !st.EndStream || st.RST != "" || st.Body != summarize(body) {
				t.Errorf("the stream in flight did not complete: %v", tr)
			}
			if !c.waitClosed() {
				t.Error("the connection stays open after its last stream")
			}
			select {
			case err := <-shut:
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			case <-time.After(waitTimeout):
				t.Error("Shutdown has not returned")
			}
			c.close()
			if err := goroutinesBackTo(base); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestPrefaceTimeout opens a TLS connection that negotiates h2 and never
// sends the client preface. Gatehouse closes it after ReadHeaderTimeout;
// net/http's HTTP/2 server ignores ReadHeaderTimeout there and waits for
// its fixed 10 s prefaceTimeout, which is what the nethttp subtest
// expects. Parallel (it mostly waits), so the server's leftovers are
// counted by its connections, not by goroutines.
func TestPrefaceTimeout(t *testing.T) {
	t.Parallel()
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			lim := defaultLimits
			lim.ReadHeaderTimeout = time.Second
			want := lim.ReadHeaderTimeout
			if kind == "nethttp" {
				want = 10 * time.Second
			}
			srv := startServer(t, kind, lim, newEnv().handler(nil, false))
			raw, err := net.DialTimeout("tcp", srv.addr, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			conn := tls.Client(raw, &tls.Config{ServerName: authority, InsecureSkipVerify: true, NextProtos: []string{"h2"}})
			conn.SetDeadline(time.Now().Add(waitTimeout))
			if err := conn.Handshake(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			conn.SetDeadline(start.Add(want + 3*time.Second))
			n, err := io.Copy(io.Discard, conn) // the server's SETTINGS, perhaps a GOAWAY, then the end
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the connection is still open after %v (%d bytes read)", took, n)
			}
			t.Logf("%s: closed after %v (%d bytes, %v)", kind, took, n, err)
			if took < want/2 || took > want+2*time.Second {
				t.Errorf("closed after %v, want about %v", took, want)
			}
			if !testutil.WaitFor(waitTimeout, func() bool { return srv.openConns() == 0 }) {
				t.Errorf("the server still serves %d connections", srv.openConns())
			}
		})
	}
}

// TestAttackScripts are the attacks that are one scripted exchange:
// differential (the transcript must equal net/http's), each also checked
// for the answer that matters, then for the server's health and its
// goroutines.
func TestAttackScripts(t *testing.T) {
	goAway := func(code string) func(t *testing.T, tr transcript) {
		return func(t *testing.T, tr transcript) {
			t.Helper()
			if tr.GoAway != code || !tr.Closed {
				t.Errorf("want GOAWAY %s and the connection closed, got %v", code, tr)
			}
		}
	}
	// Flow-control errors may be stream or connection errors (net/http
	// answers DATA beyond the connection's window with RST_STREAM).
	flowControlError := func(t *testing.T, tr transcript) {
		t.Helper()
		if tr.GoAway == "FLOW_CONTROL_ERROR" {
			return
		}
		for _, st := range tr.Streams {
			if st.RST == "FLOW_CONTROL_ERROR" {
				return
			}
		}
		t.Errorf("want RST_STREAM or GOAWAY FLOW_CONTROL_ERROR, got %v", tr)
	}
	// Fields of about 1 KiB each: the first 14 (with the pseudo-header
	// fields, about 14.7 KB of the 16 KiB MaxHeaderBytes) in HEADERS, 3
	// more in CONTINUATION.
	tooLarge := func(c *client, e *env) {
		c.headerFrames(1, true, true, append(req("GET", "/"), fillFields(0, 14)...), fillFields(14, 3))
	}
	runExchanges(t, true, []exchange{
		{name: "header list over MaxHeaderBytes", script: tooLarge, check: func(t *testing.T, tr transcript) {
			if tr.status(1) != "431" || len(tr.Saw) != 0 {
				t.Errorf("want 431 and no handler, got %v", tr)
			}
		}},
		{name: "more than MaxConcurrentStreams", handler: blockUntilRelease, noRead: true, script: func(c *client, e *env) {
			c.waitSettings()
			for i := range 100 {
				c.headers(uint32(2*i+1), true, req("GET", fmt.Sprintf("/%03d", i)))
			}
			e.waitStarted(100)
			c.headers(201, true, req("GET", "/over"))
			c.waitStream(201)
			e.releaseAll()
		}, check: func(t *testing.T, tr transcript) {
			if st := tr.Streams[201]; st == nil || st.RST != "PROTOCOL_ERROR" && st.RST != "REFUSED_STREAM" {
				t.Errorf("stream 201: want RST_STREAM PROTOCOL_ERROR or REFUSED_STREAM, got %v", tr)
			}
			if tr.status(1) != "200" || tr.status(199) != "200" || len(tr.Saw) != 100 {
				t.Errorf("the first 100 streams were not all served: %d handlers", len(tr.Saw))
			}
		}},
		{name: "WINDOW_UPDATE overflow on the connection", script: func(c *client, e *env) {
			c.waitSettings()
			c.windowUpdate(0, 1<<31-1)
		}, check: goAway("FLOW_CONTROL_ERROR")},
		{name: "WINDOW_UPDATE overflow on a stream", handler: blockUntilRelease, script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/"))
			e.waitStarted(1)
			c.windowUpdate(1, 1<<31-1)
			c.waitStream(1)
		}, check: func(t *testing.T, tr transcript) {
			if st := tr.Streams[1]; st == nil || st.RST != "FLOW_CONTROL_ERROR" {
				t.Errorf("want RST_STREAM FLOW_CONTROL_ERROR, got %v", tr)
			}
		}},
		{name: "DATA beyond the stream's window", handler: blockUntilRelease, noRead: true,
			noDiff: "window sizes are each server's choice",
			script: func(c *client, e *env) {
				c.waitSettings()
				c.headers(1, false, req("POST", "/"))
				e.waitStarted(1)
				_, sw := c.windows(1)
				c.fill(1, int(sw)+1)
				c.waitStream(1)
				e.releaseAll()
			}, check: flowControlError},
		{name: "DATA beyond the connection's window", handler: blockUntilRelease, noRead: true,
			noDiff: "window sizes are each server's choice",
			script: func(c *client, e *env) {
				c.waitSettings()
				id := uint32(1)
				for range 3 { // fill it, then again what the server gave back, if anything
					cw, _ := c.windows(id)
					for cw > 0 {
						c.headers(id, false, req("POST", "/"))
						_, sw := c.windows(id)
						n := min(cw, sw)
						c.fill(id, int(n))
						cw -= n
						id += 2
					}
					if c.barrier(); func() bool { cw, _ := c.windows(id); return cw <= 0 }() {
						break
					}
				}
				c.headers(id, false, req("POST", "/"))
				c.fill(id, 1) // within the stream's window, beyond the connection's
				c.waitStream(id)
				e.releaseAll()
			}, check: flowControlError},
		{name: "stream ID reused", script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/"))
			c.waitStream(1)
			c.headers(1, true, req("GET", "/again"))
		}, check: func(t *testing.T, tr transcript) {
			if tr.GoAway == "" || tr.GoAway == "NO_ERROR" {
				t.Errorf("want GOAWAY with an error, got %v", tr)
			}
		}},
		{name: "even stream ID", script: func(c *client, e *env) { c.headers(2, true, req("GET", "/")) },
			check: goAway("PROTOCOL_ERROR")},
		{name: "decreasing stream ID", script: func(c *client, e *env) {
			c.headers(5, true, req("GET", "/five"))
			c.waitStream(5)
			c.headers(3, true, req("GET", "/three"))
		}, check: goAway("PROTOCOL_ERROR")},
		{name: "HEADERS on stream 0", script: func(c *client, e *env) { c.headerFrames(0, true, true, req("GET", "/")) },
			check: goAway("PROTOCOL_ERROR")},
		{name: "DATA on stream 0", script: func(c *client, e *env) { c.data(0, false, []byte("x")) },
			check: goAway("PROTOCOL_ERROR")},
		{name: "DATA on an idle stream", script: func(c *client, e *env) { c.data(3, true, []byte("x")) },
			check: goAway("PROTOCOL_ERROR")},
		{name: "DATA on a closed stream", script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/"))
			c.waitStream(1)
			c.data(1, true, []byte("x"))
		}, check: func(t *testing.T, tr transcript) {
			if st := tr.Streams[1]; (st == nil || st.RST != "STREAM_CLOSED") && tr.GoAway != "STREAM_CLOSED" {
				t.Errorf("want STREAM_CLOSED, got %v", tr)
			}
		}},
		{name: "DATA on a half-closed stream", handler: blockUntilRelease, script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/"))
			e.waitStarted(1)
			c.data(1, true, []byte("x"))
			c.waitStream(1)
		}, check: func(t *testing.T, tr transcript) {
			if st := tr.Streams[1]; (st == nil || st.RST != "STREAM_CLOSED") && tr.GoAway != "STREAM_CLOSED" {
				t.Errorf("want STREAM_CLOSED, got %v", tr)
			}
		}},
	})
}
