package h2server_test

// Regression tests for defects found in review: each is a raw-frame
// exchange against both servers, like the attack and differential tests.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"gatehouse/internal/testutil"
)

// TestIdleTimeoutAfterMalformedHeaders: a client opens a connection and
// sends one HEADERS frame the server refuses before it makes a stream
// (here, a request without :path). net/http's server makes the stream
// anyway and re-arms its idle timer when it closes; h2server stopped its
// idle timer for the new stream ID and, with no stream made, never
// re-armed it, so the connection was held open forever: one such frame
// per connection defeated IdleTimeout.
func TestIdleTimeoutAfterMalformedHeaders(t *testing.T) {
	lim := defaultLimits
	lim.IdleTimeout = 200 * time.Millisecond
	runExchanges(t, true, []exchange{
		{name: "request without :path", lim: &lim, script: func(c *client, e *env) {
			c.headers(1, true, fields(":method", "GET", ":scheme", "https", ":authority", authority))
			c.waitStream(1)
			c.waitGoAway()
		}, check: func(t *testing.T, tr transcript) {
			if tr.GoAway != "NO_ERROR" || !tr.Closed {
				t.Errorf("want GOAWAY NO_ERROR after IdleTimeout and the connection closed, got %v", tr)
			}
		}},
	})
}

// TestContinueAfterFinalHeaders: a request with "Expect: 100-continue"
// whose handler sends its final header before it reads the body. The
// first Read must not send "100 Continue" any more (net/http drops it,
// golang.org/issue/14030): a 1xx after the final header is a second
// header block without END_STREAM, a malformed response.
func TestContinueAfterFinalHeaders(t *testing.T) {
	runExchanges(t, false, []exchange{
		{name: "header flushed, then the body read", noRead: true, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "expect", "100-continue"))
			c.waitHeaders(1)
			c.body(1, []byte("hello"), true)
		}, handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		}},
	})
}

// TestRequestBodyMemoryBounded: a client uploads a long body to a
// handler that reads it in pieces, and keeps its flow-control windows
// full, so that the handler never finds the buffer empty. What the
// server buffers must stay bounded by the windows it announced (1 MiB),
// not grow with the upload: h2server appended each DATA frame to one
// slice and only rewound it when a read emptied it, so the bytes already
// read stayed in front and were copied along at every growth, and the
// slice held the whole body (a 1 GiB upload through a proxy: 1 GiB).
func TestRequestBodyMemoryBounded(t *testing.T) {
	const (
		half   = 512 << 10
		rounds = 40 // 21 MiB in all
		bound  = 8 << 20
	)
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			e := newEnv()
			read, sent := make(chan struct{}), make(chan struct{})
			grew := make(chan int64, 1)
			var heap0 uint64
			srv := startServer(t, kind, defaultLimits, e.handler(func(e *env, w http.ResponseWriter, r *http.Request) {
				buf := make([]byte, half)
				var peak int64
				for range rounds {
					if _, err := io.ReadFull(r.Body, buf); err != nil {
						t.Errorf("read: %v", err)
						break
					}
					// Half of what the client sent is still unread here.
					if g := int64(heapAlloc()) - int64(heap0); g > peak {
						peak = g
					}
					select {
					case read <- struct{}{}:
					case <-r.Context().Done():
						return
					}
					select {
					case <-sent:
					case <-r.Context().Done():
						return
					}
				}
				grew <- peak
				io.Copy(io.Discard, r.Body)
			}, true))
			base := runtime.NumGoroutine()
			c := mustDial(t, srv, false)
			c.waitSettings()
			heap0 = heapAlloc()
			p := pattern(half)
			c.headers(1, false, req("POST", "/upload"))
			// Fill the windows (1 MiB each, on both servers), then keep
			// them full: each time the handler has read half, send half.
			c.body(1, p, false)
			c.body(1, p, false)
			for range rounds {
				select {
				case <-read:
				case <-time.After(waitTimeout):
					t.Fatalf("the handler did not read: %v", c.snapshot())
				}
				if err := c.body(1, p, false); err != nil {
					t.Fatal(err)
				}
				c.barrier() // the server has it before the handler reads on
				sent <- struct{}{}
			}
			c.data(1, true, nil)
			peak := <-grew
			c.waitStream(1)
			t.Logf("%s: %d MiB uploaded; heap grew by at most %d KiB", kind, (rounds+2)*half>>20, peak>>10)
			if peak > bound {
				t.Errorf("heap grew by %d MiB while the handler read a %d MiB body with 1 MiB windows",
					peak>>20, (rounds+2)*half>>20)
			}
			afterAttack(t, srv, c, base)
		})
	}
}

// TestReadBodiesNotRetained: a client sends, stream after stream, a
// 1 MiB body that the server buffers whole before its handler reads it;
// each handler reads its body and then waits (a proxy waiting for a slow
// upstream's answer, say). The buffers read must not stay allocated per
// stream: h2server rewound a stream's emptied buffer and kept it until
// the stream ended, 1 MiB for each such stream, 250 MiB per connection
// at the default MaxConcurrentStreams.
func TestReadBodiesNotRetained(t *testing.T) {
	const (
		streams = 40
		size    = 1 << 20
		bound   = 16 << 20
	)
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			e := newEnv()
			readNow, done := make(chan struct{}), make(chan struct{})
			srv := startServer(t, kind, defaultLimits, e.handler(func(e *env, w http.ResponseWriter, r *http.Request) {
				select {
				case <-readNow:
				case <-r.Context().Done():
					return
				}
				n, _ := io.Copy(io.Discard, r.Body)
				if n != size {
					t.Errorf("read %d bytes, want %d", n, size)
				}
				done <- struct{}{}
				blockUntilRelease(e, w, r)
			}, true))
			base := runtime.NumGoroutine()
			c := mustDial(t, srv, false)
			c.waitSettings()
			heap0 := heapAlloc()
			p := pattern(size)
			for i := range streams {
				id := uint32(2*i + 1)
				c.headers(id, false, req("POST", "/"))
				if err := c.body(id, p, true); err != nil {
					t.Fatal(err)
				}
				c.barrier() // all of it is buffered before the handler reads
				select {
				case readNow <- struct{}{}:
				case <-time.After(waitTimeout):
					t.Fatalf("handler %d did not start", i)
				}
				select {
				case <-done:
				case <-time.After(waitTimeout):
					t.Fatalf("handler %d did not read its body", i)
				}
			}
			grew := int64(heapAlloc()) - int64(heap0)
			t.Logf("%s: %d handlers have read %d MiB each; heap +%d KiB", kind, streams, size>>20, grew>>10)
			if grew > bound {
				t.Errorf("heap grew by %d MiB with %d bodies read and their handlers waiting", grew>>20, streams)
			}
			e.releaseAll()
			c.waitAll()
			afterAttack(t, srv, c, base)
		})
	}
}

// gate wraps the server's side of a raw connection: while shut, the
// server's writes to the socket block (a client that does not read,
// made exact); it counts the server's reads, so that a test knows when
// the server has taken in what was sent (a read has returned, and it is
// reading again).
type gate struct {
	mu      sync.Mutex
	cond    sync.Cond
	shut    bool
	blocked int // writes waiting at the gate
	reads   int // reads returned
	reading bool
}

func newGate() *gate {
	g := &gate{}
	g.cond.L = &g.mu
	return g
}

func (g *gate) wrap(c net.Conn) net.Conn { return &gatedConn{Conn: c, g: g} }

func (g *gate) set(shut bool) {
	g.mu.Lock()
	g.shut = shut
	g.cond.Broadcast()
	g.mu.Unlock()
}

// state returns the gate's counters.
func (g *gate) state() (blocked, reads int, reading bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.blocked, g.reads, g.reading
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c *gatedConn) Write(p []byte) (int, error) {
	g := c.g
	g.mu.Lock()
	for g.shut {
		g.blocked++
		g.cond.Wait()
		g.blocked--
	}
	g.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *gatedConn) Read(p []byte) (int, error) {
	g := c.g
	g.mu.Lock()
	g.reading = true
	g.mu.Unlock()
	n, err := c.Conn.Read(p)
	g.mu.Lock()
	g.reading = false
	g.reads++
	g.mu.Unlock()
	return n, err
}

func (c *gatedConn) Close() error {
	c.g.set(false) // a write blocked at the gate returns (and fails)
	return c.Conn.Close()
}

// readFrames reads frames on a client made with noRead until stop says
// so, or the deadline.
func readFrames(c *client, stop func(f http2.Frame) bool) error {
	c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		if stop(f) {
			return nil
		}
	}
}

// TestWindowUpdateDuringWrite: the client's WINDOW_UPDATE arrives while
// the handler, its stream window spent, is writing what it buffered to
// the socket (the client is slow to read). h2server's writeData flushed
// (releasing the lock for the write) and then waited for a window update
// without looking at the window again: the update had come during the
// write, its wakeup was lost, and the response hung until some other
// frame happened to wake the handler (a quiet client: forever).
func TestWindowUpdateDuringWrite(t *testing.T) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			e := newEnv()
			g := newGate()
			body := pattern(3000)
			s, err := newServerWrapped(kind, defaultLimits, e.handler(func(e *env, w http.ResponseWriter, r *http.Request) {
				w.Write(body)
			}, false), g.wrap)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.close)
			base := runtime.NumGoroutine()
			// A 1000-byte stream window; this client reads by hand and
			// grants no credit but the one below.
			c := mustDial(t, s, true, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
			c.write(c.fr.WriteSettingsAck)
			if err := readFrames(c, func(f http2.Frame) bool {
				sf, ok := f.(*http2.SettingsFrame)
				return ok && sf.IsAck()
			}); err != nil {
				t.Fatalf("no SETTINGS ACK: %v", err)
			}
			g.set(true)
			c.headers(1, true, req("GET", "/"))
			// The response's first write waits at the gate: the stream
			// window (1000 bytes) is spent by then.
			if !testutil.WaitFor(waitTimeout, func() bool { b, _, _ := g.state(); return b > 0 }) {
				t.Fatal("the server did not write the response")
			}
			_, r0, _ := g.state()
			c.windowUpdate(1, 2000)
			if !testutil.WaitFor(waitTimeout, func() bool { _, r, reading := g.state(); return r > r0 && reading }) {
				t.Fatal("the server did not read the WINDOW_UPDATE")
			}
			g.set(false)
			got, end := 0, false
			err = readFrames(c, func(f http2.Frame) bool {
				switch f := f.(type) {
				case *http2.DataFrame:
					if f.StreamID == 1 {
						got += len(f.Data())
						end = f.StreamEnded()
						return end
					}
				case *http2.RSTStreamFrame:
					return f.StreamID == 1
				}
				return false
			})
			t.Logf("%s: %d of %d bytes, END_STREAM %v (%v)", kind, got, len(body), end, err)
			if got != len(body) || !end {
				t.Errorf("got %d of the %d bytes the windows allow, END_STREAM %v; read: %v", got, len(body), end, err)
			}
			afterAttack(t, s, c, base)
		})
	}
}

// TestResetFloodNotRead: a client that never reads sends frames that
// each make the server queue a RST_STREAM (here PRIORITY frames that
// make a stream depend on itself, a stream error; DATA on a closed
// stream or malformed requests do the same). net/http counts those
// resets with its other control frames and disconnects a client that
// lets more than 10000 pile up; h2server did not count them, and
// buffered 13 bytes for every 14 the client sent, without bound.
func TestResetFloodNotRead(t *testing.T) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			srv := startServer(t, kind, defaultLimits, newEnv().handler(nil, false))
			base, heap0 := runtime.NumGoroutine(), heapAlloc()
			c := mustDial(t, srv, true) // never reads
			const max = 1 << 20
			sent := 0
			var err error
			for sent < max && err == nil {
				err = c.write(func() error {
					for range 4096 {
						if err := c.fr.WritePriority(1, http2.PriorityParam{StreamDep: 1}); err != nil {
							return err
						}
						sent++
					}
					return nil
				})
			}
			grew := int64(heapAlloc()) - int64(heap0)
			// What the server wrote before it stopped, then the end.
			c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
			n, rerr := io.Copy(io.Discard, c.conn)
			t.Logf("%s: %d PRIORITY frames (write: %v); heap +%d KiB; then read %d KiB and %v", kind, sent, err, grew>>10, n>>10, rerr)
			var ne net.Error
			if errors.As(rerr, &ne) && ne.Timeout() {
				t.Errorf("the server still holds the connection after %d resets it could not write", sent)
			}
			afterAttack(t, srv, c, base)
		})
	}
}

// TestNoResetAfterClientReset: a stream the client has reset gets no
// RST_STREAM back when its handler then panics (RFC 9113 §5.4.2: an
// endpoint must not answer RST_STREAM with RST_STREAM, lest two
// endpoints loop). net/http drops its panic reset for a closed stream;
// h2server queued one for the stream id anyway.
func TestNoResetAfterClientReset(t *testing.T) {
	runExchanges(t, false, []exchange{
		{name: "panic", noRead: true, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/"))
			e.waitStarted(1)
			c.rst(1, http2.ErrCodeCancel)
			e.waitLog("done")
		}, handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			e.log.Write([]byte("done"))
			panic(http.ErrAbortHandler)
		}},
	})
}

// TestStreamClosedAtEndStream: once both sides have sent END_STREAM the
// stream is closed (RFC 9113 §5.1), even if its handler still runs (a
// HEAD response ends at its header). A HEADERS frame that reuses its ID
// is then a connection error, as net/http answers it; h2server kept the
// stream until the handler returned and answered with a stream error,
// and so did it in the short gap after any response's last frame (which
// made the "stream ID reused" attack script flaky).
func TestStreamClosedAtEndStream(t *testing.T) {
	runExchanges(t, true, []exchange{
		{name: "HEAD answered, handler running, ID reused", script: func(c *client, e *env) {
			c.headers(1, true, req("HEAD", "/"))
			c.waitStream(1)
			c.headers(1, true, req("GET", "/again"))
			c.waitGoAway()
			e.releaseAll()
		}, handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			<-e.release
		}, check: func(t *testing.T, tr transcript) {
			if tr.GoAway != "PROTOCOL_ERROR" {
				t.Errorf("want GOAWAY PROTOCOL_ERROR, got %v", tr)
			}
		}},
	})
}

// blockedInBodyRead reports whether some goroutine waits in a request
// body's Read (either server's).
func blockedInBodyRead() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "sync.(*Cond).Wait") &&
			(strings.Contains(g, "h2server.(*requestBody).Read") || strings.Contains(g, "http.(*http2pipe).Read")) {
			return true
		}
	}
	return false
}

// TestReadDeadlineMovedDuringRead: a handler's body Read waits, with a
// read deadline a minute away, for a client that sends nothing; another
// goroutine moves the deadline to 100 ms from now (what a proxy does to
// give up on a slow upload). The Read must fail then. h2server armed one
// timer per Read for the deadline it started with and never re-armed it:
// a nearer deadline was met only when the old one came, a later one (the
// old timer having fired) never.
func TestReadDeadlineMovedDuringRead(t *testing.T) {
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			e := newEnv()
			type result struct {
				err  error
				took time.Duration
			}
			res := make(chan result, 1)
			srv := startServer(t, kind, defaultLimits, e.handler(func(e *env, w http.ResponseWriter, r *http.Request) {
				rc := http.NewResponseController(w)
				rc.SetReadDeadline(time.Now().Add(time.Minute))
				moved := make(chan struct{})
				go func() {
					defer close(moved)
					if testutil.WaitFor(waitTimeout, blockedInBodyRead) {
						rc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
					}
				}()
				start := time.Now()
				_, err := r.Body.Read(make([]byte, 10))
				took := time.Since(start)
				<-moved
				res <- result{err, took}
			}, true))
			base := runtime.NumGoroutine()
			c := mustDial(t, srv, false)
			c.headers(1, false, req("POST", "/"))
			got := false
			select {
			case r := <-res:
				got = true
				t.Logf("%s: Read returned after %v: %v", kind, r.took, r.err)
				if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.took > 2*time.Second {
					t.Errorf("Read returned %v after %v; want the deadline, 100 ms after it was moved", r.err, r.took)
				}
			case <-time.After(3 * time.Second):
				t.Errorf("Read still waiting 3 s after its deadline was moved to 100 ms")
			}
			c.close() // ends a Read still waiting
			if !got {
				<-res
			}
			afterAttack(t, srv, c, base)
		})
	}
}

// TestQueuedStreamBodiesFreed: every handler slot is held by a handler
// that does not watch its context (its client reset its stream; it
// waits on something else, an upstream with no deadline, say), so new
// streams queue for a slot. The client fills each queued stream's window
// with a body and resets the stream: its connection window comes back,
// and it moves on to the next. The bodies of streams reset before their
// handler started can never be read, and must not be kept: both servers
// kept them until the queue drained, a window (1 MiB) per queued stream,
// 4 x MaxConcurrentStreams of them (1000 MiB per connection at the
// default 250). net/http's server does the same; the nethttp subtest
// only logs it.
func TestQueuedStreamBodiesFreed(t *testing.T) {
	const (
		slots  = 10
		queued = 40 // 4 x slots: as many as both servers queue
		size   = 1 << 20
		bound  = 16 << 20
	)
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			lim := defaultLimits
			lim.MaxConcurrentStreams = slots
			e := newEnv()
			srv := startServer(t, kind, lim, e.handler(func(e *env, w http.ResponseWriter, r *http.Request) {
				<-e.release // deaf to its context
			}, true))
			base := runtime.NumGoroutine()
			c := mustDial(t, srv, false)
			c.waitSettings()
			heap0 := heapAlloc()
			id := uint32(1)
			for range slots {
				c.headers(id, true, req("GET", "/"))
				id += 2
			}
			if !e.waitStarted(slots) {
				t.Fatal("the handlers did not start")
			}
			for i := uint32(1); i < id; i += 2 {
				c.rst(i, http2.ErrCodeCancel)
			}
			p := pattern(size)
			for range queued {
				c.headers(id, false, req("POST", "/"))
				if err := c.body(id, p, false); err != nil {
					t.Fatal(err)
				}
				c.barrier()
				c.rst(id, http2.ErrCodeCancel)
				id += 2
			}
			c.barrier()
			grew := int64(heapAlloc()) - int64(heap0)
			tr := c.snapshot()
			t.Logf("%s: %d streams queued, filled and reset; heap +%d KiB; %d handlers started; %v", kind, queued, grew>>10, e.started.Load(), tr)
			if tr.GoAway != "" || tr.Closed {
				t.Errorf("the connection ended: %v", tr)
			}
			if grew > bound {
				if kind == "nethttp" {
					t.Logf("known net/http defect: heap grew by %d MiB", grew>>20)
				} else {
					t.Errorf("heap grew by %d MiB for %d streams reset before their handler started", grew>>20, queued)
				}
			}
			e.releaseAll()
			afterAttack(t, srv, c, base)
		})
	}
}

// TestWriterBlockedOnWindow: a handler's Write waits for flow-control
// window the client never grants (SETTINGS_INITIAL_WINDOW_SIZE 0); then
// the client resets the stream, closes the connection, or sends GOAWAY
// and closes. The Write must fail and the handler end, each time; and a
// window raised from 0 mid-response lets the response complete.
func TestWriterBlockedOnWindow(t *testing.T) {
	cases := []struct {
		name     string
		then     func(c *client)
		complete bool
	}{
		{"client RST_STREAM", func(c *client) { c.rst(1, http2.ErrCodeCancel) }, false},
		{"client closes", func(c *client) { c.conn.Close() }, false},
		{"client GOAWAY then closes", func(c *client) {
			c.write(func() error { return c.fr.WriteGoAway(1, http2.ErrCodeNo, nil) })
			c.barrier()
			c.conn.Close()
		}, false},
		{"window raised from 0", func(c *client) {
			c.write(func() error {
				return c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
			})
			c.waitStream(1)
		}, true},
	}
	for _, kind := range servers {
		t.Run(kind, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					e := newEnv()
					writing, wrote := make(chan struct{}), make(chan error, 1)
					srv := startServer(t, kind, defaultLimits, e.handler(func(e *env, w http.ResponseWriter, r *http.Request) {
						w.WriteHeader(200)
						w.(http.Flusher).Flush()
						close(writing)
						_, err := w.Write(pattern(200 << 10))
						if err == nil {
							err = http.NewResponseController(w).Flush()
						}
						wrote <- err
					}, true))
					base := runtime.NumGoroutine()
					c := mustDial(t, srv, false, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
					c.waitSettings()
					c.headers(1, true, req("GET", "/"))
					select {
					case <-writing:
					case <-time.After(waitTimeout):
						t.Fatal("the handler did not start")
					}
					c.barrier()
					tc.then(c)
					select {
					case err := <-wrote:
						if (err == nil) != tc.complete {
							t.Errorf("the handler's Write returned %v", err)
						}
					case <-time.After(waitTimeout):
						t.Fatal("the handler's Write is still waiting")
					}
					if tc.complete {
						tr := c.snapshot()
						if st := tr.Streams[1]; st == nil || len(st.body) != 200<<10 || !st.EndStream {
							t.Errorf("the response did not complete: %v", tr)
						}
					}
					afterAttack(t, srv, c, base)
				})
			}
		})
	}
}

// TestTrailersAfterEarlyAnswer: a handler answers without reading the
// body (an early 413 or 401), so the server ends the stream with
// RST_STREAM(NO_ERROR) while the client is still sending; the client's
// trailers (and DATA) cross that reset. RFC 9113 §5.1 asks that they be
// ignored; net/http takes the trailers for HEADERS on a long-closed
// stream and ends the connection with GOAWAY PROTOCOL_ERROR, other
// streams and all.
func TestTrailersAfterEarlyAnswer(t *testing.T) {
	runExchanges(t, false, []exchange{
		{name: "trailers and DATA after the reset", noRead: true, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/early", "trailer", "x-t"))
			c.data(1, false, []byte("part"))
			c.waitStream(1)
			c.data(1, false, []byte("more"))
			c.headers(1, true, fields("x-t", "v"))
			c.headers(3, true, req("GET", "/next"))
			c.waitStream(3)
		}, handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/early" {
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				return
			}
			io.WriteString(w, "next")
		},
			netHTTPWrong: "it answers the trailers with GOAWAY PROTOCOL_ERROR and never serves stream 3",
			want: func(tr transcript) error {
				if tr.GoAway != "" || tr.status(3) != "200" {
					return fmt.Errorf("want stream 3 served and no GOAWAY; got %v", tr)
				}
				return nil
			},
			noDiff: "net/http ends the connection"},
	})
}
