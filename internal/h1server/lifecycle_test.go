package h1server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"
)

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

// serveFast runs h behind a Server on a pairListener; configure may set
// the http.Server's timeouts.
func serveFast(t *testing.T, h http.HandlerFunc, configure func(*http.Server)) (*Server, *pairListener, chan error) {
	t.Helper()
	fb := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	if configure != nil {
		configure(fb)
	}
	s := New(fb, nil)
	l := newPairListener()
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() { s.Close() })
	return s, l, served
}

func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestShutdownFinishesInFlightAndClosesIdle(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s, l, served := serveFast(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}, nil)

	idle := l.dial(t)
	defer idle.Close()
	idleBR := bufio.NewReader(idle)
	_, _ = io.WriteString(idle, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
	readResponse(t, idleBR, "GET")

	busy := l.dial(t)
	defer busy.Close()
	_, _ = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	<-started

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection at shutdown: %v, want EOF", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	resp, body := readResponse(t, bufio.NewReader(busy), "GET")
	if body != "done" || !resp.Close {
		t.Fatalf("in-flight request at shutdown: %q, close=%v; want its body and Connection: close", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
}

// TestClientGoneCancelsLongHandler: as net/http's background read does, a
// client that leaves cancels the request of a handler that runs long.
func TestClientGoneCancelsLongHandler(t *testing.T) {
	t.Parallel()
	canceled := make(chan struct{})
	_, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(30 * time.Second):
		}
	}, nil)
	c := l.dial(t)
	_, _ = io.WriteString(c, "GET /long-poll HTTP/1.1\r\nHost: t\r\n\r\n")
	c.Close()
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the request of a client that left was never canceled")
	}
}

// TestNextRequestReadByTheWatcher: the byte a watcher reads while a long
// handler runs starts the next request, which is served whole.
// anyWatching reports whether a watcher runs on any of s's connections.
func anyWatching(s *Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for cn := range s.conns {
		cn.mu.Lock()
		w := cn.watching
		cn.mu.Unlock()
		if w {
			return true
		}
	}
	return false
}

func TestNextRequestReadByTheWatcher(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path)
	}, nil)
	c := l.dial(t)
	defer c.Close()
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	watching := func() bool { return anyWatching(s) }
	if !waitFor(5*time.Second, watching) {
		t.Fatal("no watcher started under a long handler")
	}
	_, _ = io.WriteString(c, "GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
	if !waitFor(5*time.Second, func() bool { return !watching() }) {
		t.Fatal("the watcher did not return with the next request's first byte")
	}
	// Two more sweeps under the same handler: no second watcher may read
	// over the byte the first one kept (regression: one byte of the next
	// request was lost per sweep).
	sweeps := s.sweeps.Load()
	if !waitFor(5*time.Second, func() bool { return s.sweeps.Load() >= sweeps+2 }) {
		t.Fatal("no sweeps")
	}
	close(release)
	br := bufio.NewReader(c)
	if _, body := readResponse(t, br, "GET"); body != "GET /slow" {
		t.Fatalf("first: %q", body)
	}
	if _, body := readResponse(t, br, "GET"); body != "GET /next" {
		t.Fatalf("second: %q", body)
	}
}

// TestIdleDeadlineAfterAWatcher: a busy connection keeps its idle
// deadline across requests (within the slack), but a watcher clears it;
// the next wait must set it again. Regression guard: a client that sent
// the watcher one byte of its next head and then nothing held the
// connection with no deadline at all.
func TestIdleDeadlineAfterAWatcher(t *testing.T) {
	t.Parallel()
	const idle = 4 * time.Second // slack 0.5s: longer than the slow handler
	release := make(chan struct{})
	s, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}, func(s *http.Server) { s.ReadHeaderTimeout, s.IdleTimeout = 0, idle })
	c := l.dial(t)
	defer c.Close()
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readResponse(t, br, "GET")
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	watching := func() bool { return anyWatching(s) }
	if !waitFor(5*time.Second, watching) {
		t.Fatal("no watcher started under a long handler")
	}
	_, _ = io.WriteString(c, "G") // the watcher keeps it; then nothing more
	if !waitFor(5*time.Second, func() bool { return !watching() }) {
		t.Fatal("the watcher did not return with the byte")
	}
	close(release)
	readResponse(t, br, "GET")
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(idle + 6*time.Second))
	rest, err := io.ReadAll(br)
	if err != nil || len(rest) != 0 {
		t.Fatalf("want the connection closed by the idle timeout, got %q, %v after %v", rest, err, time.Since(start))
	}
}

// TestIdleTimeoutShorterThanHeaderTimeout: the first wait for a next
// request is bounded by IdleTimeout, not by the longer ReadHeaderTimeout
// set at accept (review finding: the kept deadline was the later one).
func TestIdleTimeoutShorterThanHeaderTimeout(t *testing.T) {
	t.Parallel()
	_, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
		func(s *http.Server) { s.ReadHeaderTimeout, s.IdleTimeout = 30*time.Second, 300*time.Millisecond })
	c := l.dial(t)
	defer c.Close()
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readResponse(t, br, "GET")
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(10 * time.Second))
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("want the connection closed, got %q, %v", rest, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v: the header timeout's deadline, not the idle one", d)
	}
}

// TestIdleConnectionKeepsNoRequest: once answered, a request (its
// response, context and header maps) is not kept alive by the idle
// connection it came on (review finding: the context's pointer was).
func TestIdleConnectionKeepsNoRequest(t *testing.T) {
	t.Parallel()
	seen := make(chan weak.Pointer[http.Request], 1)
	_, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- weak.Make(r)
		_, _ = io.WriteString(w, "ok")
	}, nil)
	c := l.dial(t)
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readResponse(t, bufio.NewReader(c), "GET")
	wp := <-seen
	// Within serveFast's 5s idle timeout, which frees the connection.
	if !waitFor(2*time.Second, func() bool { runtime.GC(); return wp.Value() == nil }) {
		t.Fatal("the request is still reachable from its idle connection")
	}
}

// deadlineCounter counts a connection's SetReadDeadline calls.
type deadlineCounter struct {
	net.Conn
	n *atomic.Int64
}

func (c deadlineCounter) SetReadDeadline(t time.Time) error {
	c.n.Add(1)
	return c.Conn.SetReadDeadline(t)
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return deadlineCounter{c, l.n}, nil
}

// TestBusyConnectionKeepsItsIdleDeadline: requests in quick succession
// on one connection do not each move the idle deadline (a timer update
// per request); the deadline kept is at most the slack short.
func TestBusyConnectionKeepsItsIdleDeadline(t *testing.T) {
	t.Parallel()
	fb := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
		IdleTimeout: time.Minute}
	s := New(fb, nil)
	l := newPairListener()
	var n atomic.Int64
	go func() { _ = s.Serve(countingListener{l, &n}) }()
	t.Cleanup(func() { s.Close() })
	c := l.dial(t)
	defer c.Close()
	br := bufio.NewReader(c)
	const requests = 50
	for range requests {
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		readResponse(t, br, "GET")
	}
	if got := n.Load(); got > 5 {
		t.Fatalf("%d requests set the read deadline %d times", requests, got)
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	_, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
		func(s *http.Server) { s.ReadHeaderTimeout, s.IdleTimeout = 150*time.Millisecond, 150*time.Millisecond })
	for _, tt := range []struct{ name, first, then string }{
		{"idle after a response", "GET / HTTP/1.1\r\nHost: t\r\n\r\n", ""},
		{"a head never finished", "", "GET / HTTP/1.1\r\nHost: t\r\n"},
		{"the next head never finished", "GET / HTTP/1.1\r\nHost: t\r\n\r\n", "GET / HTTP/1.1\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := l.dial(t)
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			if tt.first != "" {
				_, _ = io.WriteString(c, tt.first)
				readResponse(t, br, "GET")
			}
			_, _ = io.WriteString(c, tt.then)
			rest, err := io.ReadAll(br)
			if err != nil || len(rest) != 0 {
				t.Fatalf("want the connection closed without an answer (as net/http), got %q, %v", rest, err)
			}
		})
	}
}

// TestHandedOverConnectionsKeepNetHTTPFeatures: HTTP/2 with prior
// knowledge and a hijacked upgrade work, because net/http serves them.
func TestHandedOverConnectionsKeepNetHTTPFeatures(t *testing.T) {
	t.Parallel()
	var fast atomic.Int64
	_, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*response); ok {
			fast.Add(1)
		}
		if r.Header.Get("Upgrade") == "echo" {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
			line, _ := brw.ReadString('\n')
			_, _ = io.WriteString(c, strings.ToUpper(line))
			return
		}
		_, _ = io.WriteString(w, r.Proto)
	}, func(s *http.Server) {
		s.Protocols = new(http.Protocols)
		s.Protocols.SetHTTP1(true)
		s.Protocols.SetUnencryptedHTTP2(true)
	})

	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return l.dial(t), nil }}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://t/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0" {
		t.Fatalf("h2c with prior knowledge: %q", b)
	}

	c := l.dial(t)
	defer c.Close()
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello\n")
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if line, _ := br.ReadString('\n'); line != "HELLO\n" {
		t.Fatalf("after the upgrade: %q", line)
	}
	if fast.Load() != 0 {
		t.Fatalf("%d of these requests were taken here", fast.Load())
	}
}

func TestPanicsAreLoggedAndCloseTheConnection(t *testing.T) {
	t.Parallel()
	p := newPair(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			panic(http.ErrAbortHandler)
		}
	}, nil)
	for _, path := range []string{"/panic", "/abort"} {
		raw := "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n"
		if got := exchange(t, p.fast, []byte(raw)); got != "" {
			t.Fatalf("%s: got %q, want the connection closed with nothing written", path, got)
		}
	}
	p.errorLogMu.Lock()
	logged := p.errorLog.String()
	p.errorLogMu.Unlock()
	if strings.Count(logged, "panic serving") != 1 || !strings.Contains(logged, "boom") {
		t.Fatalf("error log: %q; want the one panic with its value (ErrAbortHandler is not logged)", logged)
	}
}

// TestPipelinedBytesAfterALongHandler: 1-3 bytes of the next request
// buffered behind one whose handler outlived ReadHeaderTimeout are read
// on under a fresh deadline. Regression: the past deadline of the first
// head was still in force, and the connection closed unanswered.
func TestPipelinedBytesAfterALongHandler(t *testing.T) {
	t.Parallel()
	const rht = 100 * time.Millisecond
	_, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-time.After(3 * rht) // the head's deadline passes meanwhile
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}, func(s *http.Server) { s.ReadHeaderTimeout = rht })
	c := l.dial(t)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\nGE")
	br := bufio.NewReader(c)
	if _, body := readResponse(t, br, "GET"); body != "/slow" {
		t.Fatalf("first: %q", body)
	}
	_, _ = io.WriteString(c, "T /b HTTP/1.1\r\nHost: t\r\n\r\n")
	if _, body := readResponse(t, br, "GET"); body != "/b" {
		t.Fatalf("second: %q", body)
	}
}

// TestCompleteHeadsAnsweredAtOnce: a whole head is answered without
// waiting for more bytes or a timeout, whatever its line ends.
// Regression: heads ending in a bare-LF blank line waited for
// ReadHeaderTimeout (the client's EOF hid it from the other tests).
func TestCompleteHeadsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	_, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") },
		func(s *http.Server) { s.ReadHeaderTimeout = time.Minute })
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET / HTTP/1.1\nHost: t\n\n",
		"GET / HTTP/1.1\r\nHost: t\r\n\n",
		"GET / HTTP/1.1\nHost: t\n\r\n",
	} {
		c := l.dial(t)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%q: %v, %v", raw, resp, err)
		}
	}
}

// TestIdleConnectionsKeepNoWriteBuffer: between requests a connection
// holds its reader only; its 4 KiB writer goes back to the pool (idle
// memory per keep-alive connection, docs/performance.md).
func TestIdleConnectionsKeepNoWriteBuffer(t *testing.T) {
	t.Parallel()
	s, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }, nil)
	c := l.dial(t)
	defer c.Close()
	br := bufio.NewReader(c)
	for range 2 {
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		if _, body := readResponse(t, br, "GET"); body != "ok" {
			t.Fatalf("body %q", body)
		}
		var idle *conn
		if !waitFor(5*time.Second, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			for cn := range s.conns {
				if cn.state.Load() == stateIdle {
					idle = cn
				}
			}
			return idle != nil
		}) {
			t.Fatal("the connection never went idle")
		}
		if idle.bw != nil { // written before the state went idle
			t.Fatal("an idle connection holds its write buffer")
		}
	}
}

// onlyConn returns s's one connection once cond holds for it.
func onlyConn(t *testing.T, s *Server, cond func(*conn) bool) *conn {
	t.Helper()
	var found *conn
	if !waitFor(5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for cn := range s.conns {
			if cond(cn) {
				found = cn
			}
		}
		return found != nil
	}) {
		t.Fatal("no connection got there")
	}
	return found
}

// TestIdleConnectionsKeepNoReadBuffer: a connection idle across a sweep
// gives its 4 KiB reader back to the pool, and a new goroutine, on a new
// small stack, waits for its next request without one (idle memory per
// keep-alive connection, docs/performance.md); the next request is
// served as before, and the wait is bounded by the idle timeout and ends
// with Shutdown.
func TestIdleConnectionsKeepNoReadBuffer(t *testing.T) {
	t.Parallel()
	idle := 1500 * time.Millisecond
	s, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok "+r.URL.Path) },
		func(s *http.Server) { s.IdleTimeout = idle })
	c := l.dial(t)
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	cbr := bufio.NewReader(c)
	for _, path := range []string{"/1", "/2", "/3"} {
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n")
		if _, body := readResponse(t, cbr, "GET"); body != "ok "+path {
			t.Fatalf("body %q", body)
		}
		cn := onlyConn(t, s, func(cn *conn) bool { return cn.park.Load() == parked })
		cn.mu.Lock()
		br := cn.br
		cn.mu.Unlock()
		if br != nil {
			t.Fatal("an idle connection holds its read buffer")
		}
	}
	// Parked, the connection still closes at the idle timeout (less its
	// slack), silently, as net/http's.
	start := time.Now()
	rest, err := io.ReadAll(cbr)
	if err != nil || len(rest) != 0 {
		t.Fatalf("want the connection closed without an answer, got %q, %v", rest, err)
	}
	if d := time.Since(start); d > idle+5*time.Second { // not never (the client's deadline): slack for a loaded machine
		t.Fatalf("closed %v after the response: the idle timeout is %v", d, idle)
	}

	// Shutdown closes a parked connection at once.
	c2 := l.dial(t)
	defer c2.Close()
	_ = c2.SetReadDeadline(time.Now().Add(20 * time.Second))
	br2 := bufio.NewReader(c2)
	_, _ = io.WriteString(c2, "GET /4 HTTP/1.1\r\nHost: t\r\n\r\n")
	readResponse(t, br2, "GET")
	onlyConn(t, s, func(cn *conn) bool { return cn.park.Load() == parked })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br2); err != nil || len(rest) != 0 {
		t.Fatalf("want the parked connection closed by Shutdown, got %q, %v", rest, err)
	}
}

// TestConnectionsThatCannotWaitAreParkedOnce: a connection that offers
// no readability wait (net.Pipe) is parked once, finds it cannot wait
// without a buffer, and then keeps its buffer rather than being parked
// again at every other sweep.
func TestConnectionsThatCannotWaitAreParkedOnce(t *testing.T) {
	t.Parallel()
	s, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }, nil)
	c, server := net.Pipe()
	defer c.Close()
	l.ch <- server
	br := bufio.NewReader(c)
	get := func() {
		t.Helper()
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		if _, body := readResponse(t, br, "GET"); body != "ok" {
			t.Fatalf("body %q", body)
		}
	}
	sweeps := func(n int64) {
		t.Helper()
		from := s.sweeps.Load()
		if !waitFor(5*time.Second, func() bool { return s.sweeps.Load() >= from+n }) {
			t.Fatal("no sweeps")
		}
	}
	get()
	sweeps(4) // the one parking: asked at the first or second sweep that finds it idle
	cn := onlyConn(t, s, func(*conn) bool { return true })
	for range 3 {
		if st := cn.park.Load(); st != parkNone {
			t.Fatalf("park state %d: want %d (not parked again)", st, parkNone)
		}
		sweeps(1)
	}
	get()
}

// A draining process disables keep-alives once it has stopped accepting:
// idle connections close at once, a request in flight and a request that
// arrives later on a connection accepted before (taken here, or handed
// over to net/http) are served, each with "Connection: close", and their
// connections then close. Shutdown would have closed the last two
// unanswered.
func TestKeepAlivesDisabled(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	fb := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			<-release
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "done")
	}), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	s := New(fb, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	})
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound, not a wait
		return c, bufio.NewReader(c)
	}
	wantClosed := func(name string, br *bufio.Reader) {
		t.Helper()
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("%s connection: read %v, want EOF", name, err)
		}
	}

	idle, idleBR := dial()
	_, _ = io.WriteString(idle, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n")
	if resp, _ := readResponse(t, idleBR, "GET"); resp.Close {
		t.Fatal("keep-alive response says Connection: close before keep-alives were disabled")
	}
	busy, busyBR := dial()
	_, _ = io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
	<-started
	later, laterBR := dial()
	post, postBR := dial()

	s.SetKeepAlivesEnabled(false)
	wantClosed("idle", idleBR)

	close(release)
	for _, tc := range []struct {
		name, req string
		c         net.Conn
		br        *bufio.Reader
	}{
		{name: "in-flight", c: busy, br: busyBR},
		{name: "later", req: "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n", c: later, br: laterBR},
		{name: "handed-over", req: "POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi", c: post, br: postBR},
	} {
		if tc.req != "" {
			_, _ = io.WriteString(tc.c, tc.req)
		}
		resp, body := readResponse(t, tc.br, "GET")
		if body != "done" || !resp.Close { // Close: the response said "Connection: close"
			t.Errorf("%s request: %q, close=%v; want its body and Connection: close", tc.name, body, resp.Close)
		}
		wantClosed(tc.name, tc.br)
	}
}

// TestServeH2C: a connection that opens with HTTP/2's preface goes to
// the ServeH2C function, with every byte the client sent, the
// connection's context (ConnContext applied) and the end of the read
// header timeout started at accept (the rest of the preface must come by
// then, not a whole timeout later); Shutdown runs the
// http.Server's shutdown hooks (where the HTTP/2 server registers its
// GOAWAY) and waits for the function to return. After an HTTP/1 request
// the same bytes are not HTTP/2.
func TestServeH2C(t *testing.T) {
	t.Parallel()
	type connKey struct{}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	fb := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		ReadHeaderTimeout: 5 * time.Second,
		Protocols:         &protos,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, "this connection's")
		},
	}
	s := New(fb, nil)
	const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	read := make(chan string, 2)
	release := make(chan struct{})
	accepted := time.Now()
	var prefaceBy time.Time
	s.ServeH2C(func(ctx context.Context, c net.Conn, by time.Time) {
		prefaceBy = by
		buf := make([]byte, len(preface)+len("frames"))
		_, err := io.ReadFull(c, buf)
		read <- fmt.Sprintf("%v: %q %v", ctx.Value(connKey{}), buf, err)
		<-release // the connection's streams, still in progress
		_, _ = io.WriteString(c, "GOAWAY")
	})
	hooks := make(chan struct{})
	fb.RegisterOnShutdown(func() { close(hooks) })
	l := newPairListener()
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	t.Cleanup(func() { s.Close() })

	// Sent in two writes: the HTTP/2 server reads what h1server did not.
	c := l.dial(t)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, preface[:18])
	time.Sleep(10 * time.Millisecond) // not needed for the outcome: lets the head arrive alone
	_, _ = io.WriteString(c, preface[18:]+"frames")
	select {
	case got := <-read:
		if want := fmt.Sprintf("this connection's: %q <nil>", preface+"frames"); got != want {
			t.Fatalf("ServeH2C read %s, want %s", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the preface never reached ServeH2C")
	}
	if prefaceBy.Before(accepted.Add(5*time.Second)) || prefaceBy.After(time.Now().Add(5*time.Second)) {
		t.Fatalf("preface due %v after accept, want the 5s read header timeout from accept", prefaceBy.Sub(accepted))
	}

	// After an HTTP/1 request, a preface is an HTTP/1 request that
	// net/http's HTTP/1-only twin answers (as the handler decides: the
	// engine refuses its "*" target), never given to ServeH2C.
	c2 := l.dial(t)
	_ = c2.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"+preface)
	br := bufio.NewReader(c2)
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	if _, err := http.ReadResponse(br, nil); err != nil {
		t.Fatalf("preface after a request: no HTTP/1 response: %v", err)
	}
	select {
	case got := <-read:
		t.Fatalf("ServeH2C got a connection after an HTTP/1 request: %s", got)
	default:
	}

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	<-hooks
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while ServeH2C still served", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if b, err := io.ReadAll(c); string(b) != "GOAWAY" {
		t.Fatalf("client read %q, %v", b, err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
}
