package h1server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"gatehouse/internal/h1guard"
)

// Parking with the poller (conn.parkIdle): a parked connection holds no
// goroutine and no buffer, and whoever takes it out of parked owns it.

// serveOn serves echoPath behind a Server on ln; setup may set its test
// hooks before it serves.
func serveOn(t *testing.T, ln net.Listener, setup func(*Server)) *Server {
	t.Helper()
	fb := &http.Server{Handler: http.HandlerFunc(echoPath), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
	s := New(fb, nil)
	if setup != nil {
		setup(s)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func echoPath(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok "+r.URL.Path) }

// client is one keep-alive client connection.
type client struct {
	net.Conn
	br *bufio.Reader
}

func dialClient(t *testing.T, l *pairListener) *client {
	t.Helper()
	c := l.dial(t)
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // a bound, not a wait
	return &client{Conn: c, br: bufio.NewReader(c)}
}

// get sends a GET for path and checks the answer.
func (c *client) get(t *testing.T, path string) {
	t.Helper()
	_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: t\r\n\r\n")
	c.answer(t, path)
}

// answer reads the answer to a GET for path.
func (c *client) answer(t *testing.T, path string) {
	t.Helper()
	if _, body := readResponse(t, c.br, "GET"); body != "ok "+path {
		t.Fatalf("GET %s: body %q", path, body)
	}
}

// closedQuietly checks that the server closed the connection without a
// byte.
func (c *client) closedQuietly(t *testing.T, why string) {
	t.Helper()
	if rest, err := io.ReadAll(c.br); err != nil || len(rest) != 0 {
		t.Fatalf("%s: read %q, %v; want the connection closed without an answer", why, rest, err)
	}
}

// waitParked waits until n of s's connections are parked with the
// poller, and no other.
func waitParked(t *testing.T, s *Server, n int) {
	t.Helper()
	if !waitFor(10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		k := 0
		for c := range s.conns {
			if c.park.Load() == parked {
				k++
			}
		}
		return k == n && s.poller.Waiting() == n
	}) {
		t.Fatalf("never %d connections parked with the poller", n)
	}
}

// waitUntracked waits until s tracks no connection: each was closed and
// untracked, by its goroutine or by the closer that took it parked.
func waitUntracked(t *testing.T, s *Server) {
	t.Helper()
	if !waitFor(10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.conns) == 0
	}) {
		t.Fatal("connections still tracked")
	}
}

// goroutinesRunning counts the goroutines whose stack has fn.
func goroutinesRunning(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	k := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			k++
		}
	}
	return k
}

// TestParkedConnectionsHoldNoGoroutine: n parked connections add no
// goroutine (the poller's one is there from the first), and each serves
// its next request and parks again. Not parallel: it counts goroutines.
func TestParkedConnectionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is implemented on Linux only")
	}
	l := newPairListener()
	s := serveOn(t, l, nil)
	first := dialClient(t, l)
	first.get(t, "/first")
	waitParked(t, s, 1)
	before := runtime.NumGoroutine()

	const n = 64
	clients := []*client{first}
	for range n - 1 {
		c := dialClient(t, l)
		c.get(t, "/")
		clients = append(clients, c)
	}
	waitParked(t, s, n)
	// +1: slack for a goroutine of the runtime's; one per connection
	// would be +63.
	if !waitFor(10*time.Second, func() bool { return runtime.NumGoroutine() <= before+1 }) {
		t.Fatalf("%d goroutines with %d connections parked, %d with one", runtime.NumGoroutine(), n, before)
	}
	// Waited for, not read once: a connection is counted as parked just
	// before the goroutine that parked it returns (a CI flake).
	if !waitFor(10*time.Second, func() bool { return goroutinesRunning("h1server.(*conn)") == 0 }) {
		t.Fatalf("%d goroutines of connections with every connection parked", goroutinesRunning("h1server.(*conn)"))
	}
	for _, c := range clients {
		c.get(t, "/again")
	}
	waitParked(t, s, n)
}

// TestParkedConnectionServesBytesThatCameAsItParked: a request whose
// bytes arrive while its connection parks (after the read that woke, before
// the poller's registration) is served: the registration reports a
// socket readable already. Through the framing guard too.
func TestParkedConnectionServesBytesThatCameAsItParked(t *testing.T) {
	t.Parallel()
	for _, guarded := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "guarded"}[guarded], func(t *testing.T) {
			t.Parallel()
			l := newPairListener()
			var ln net.Listener = l
			if guarded {
				ln = h1guard.NewListener(l, h1guard.Limits{})
			}
			var (
				mu    sync.Mutex
				cl    *client
				parks int
			)
			s := serveOn(t, ln, func(s *Server) {
				s.beforePark = func(*conn) {
					mu.Lock()
					defer mu.Unlock()
					if parks++; parks == 1 {
						// Written whole into the socket before Write returns.
						_, _ = io.WriteString(cl, "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
					}
				}
			})
			mu.Lock()
			cl = dialClient(t, l)
			mu.Unlock()
			cl.get(t, "/1")
			cl.answer(t, "/2") // sent by the hook as the connection parked
			waitParked(t, s, 1)
			cl.get(t, "/3")
		})
	}
}

// TestGuardHoldingAnIncompleteHeadParks: a connection whose guard holds
// the start of a head parks all the same (the rest must come from the
// socket), and serves the request once the rest comes.
func TestGuardHoldingAnIncompleteHeadParks(t *testing.T) {
	t.Parallel()
	l := newPairListener()
	parkedAgain := make(chan struct{})
	var parks int // the connection's goroutine's
	s := serveOn(t, h1guard.NewListener(l, h1guard.Limits{}), func(s *Server) {
		s.beforePark = func(c *conn) {
			if parks++; parks == 2 {
				if h1guard.Of(c.nc).ReadPending() {
					t.Error("an incomplete head held is pending")
				}
				close(parkedAgain)
			}
		}
	})
	cl := dialClient(t, l)
	cl.get(t, "/1")
	waitParked(t, s, 1)
	// The poller resumes the connection; the guard holds this, waits for
	// the rest, and the connection parks again.
	_, _ = io.WriteString(cl, "GET /2 HTTP/1.1\r\nHo")
	<-parkedAgain
	waitParked(t, s, 1)
	_, _ = io.WriteString(cl, "st: t\r\n\r\n")
	cl.answer(t, "/2")
}

// heldConn holds bytes of its own above the socket, as the guard may: a
// parking connection must not wait on the socket for them.
type heldConn struct {
	net.Conn
	held []byte
}

func (c *heldConn) Read(p []byte) (int, error) {
	if len(c.held) > 0 {
		n := copy(p, c.held)
		c.held = c.held[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *heldConn) ReadPending() bool { return len(c.held) > 0 }
func (c *heldConn) NetConn() net.Conn { return c.Conn }

type heldListener struct{ net.Listener }

func (l heldListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &heldConn{Conn: c}, nil
}

// TestBytesHeldAboveTheSocketAreServedAtOnce: bytes a wrapper holds as
// the connection parks are a request to read now, not a wait on the
// socket (which would never report them).
func TestBytesHeldAboveTheSocketAreServedAtOnce(t *testing.T) {
	t.Parallel()
	l := newPairListener()
	var parks int // the connection's goroutine's
	serveOn(t, heldListener{l}, func(s *Server) {
		s.beforePark = func(c *conn) {
			if parks++; parks == 1 {
				c.nc.(*heldConn).held = []byte("GET /held HTTP/1.1\r\nHost: t\r\n\r\n")
			}
		}
	})
	cl := dialClient(t, l)
	cl.get(t, "/1")
	cl.answer(t, "/held")
	cl.get(t, "/3")
}

// TestParkedConnectionClosedAtItsIdleDeadline: the sweep closes a parked
// connection, silently, once its idle deadline has passed (here set in
// the past; TestIdleConnectionsKeepNoReadBuffer waits for a real one).
func TestParkedConnectionClosedAtItsIdleDeadline(t *testing.T) {
	t.Parallel()
	l := newPairListener()
	s := serveOn(t, l, nil)
	cl := dialClient(t, l)
	cl.get(t, "/1")
	waitParked(t, s, 1)
	s.mu.Lock()
	for c := range s.conns {
		if c.park.Load() != parked || c.idleUntil == 0 {
			t.Errorf("park state %d, idle deadline %d: want parked with a deadline", c.park.Load(), c.idleUntil)
		}
		c.idleUntil = 1 // long past
	}
	s.mu.Unlock()
	cl.closedQuietly(t, "past the idle deadline")
	waitUntracked(t, s)
	if k := s.poller.Waiting(); k != 0 {
		t.Fatalf("%d registrations left with the poller", k)
	}
}

// TestParkedConnectionsAtShutdownAndClose: Shutdown, Close and
// SetKeepAlivesEnabled(false) close parked connections at once and
// untrack them; Shutdown and Close stop the poller's goroutine. Not
// parallel: it looks for that goroutine.
func TestParkedConnectionsAtShutdownAndClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(*Server) error
	}{
		{"Shutdown", func(s *Server) error { return s.Shutdown(context.Background()) }},
		{"Close", (*Server).Close},
		{"SetKeepAlivesEnabled(false)", func(s *Server) error { s.SetKeepAlivesEnabled(false); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newPairListener()
			s := serveOn(t, l, nil)
			var clients []*client
			for range 8 {
				c := dialClient(t, l)
				c.get(t, "/")
				clients = append(clients, c)
			}
			waitParked(t, s, len(clients))
			if err := tc.end(s); err != nil {
				t.Fatal(err)
			}
			for _, c := range clients {
				c.closedQuietly(t, tc.name)
			}
			waitUntracked(t, s)
			if k := s.poller.Waiting(); k != 0 {
				t.Fatalf("%d registrations left with the poller", k)
			}
			if tc.name != "SetKeepAlivesEnabled(false)" && runtime.GOOS == "linux" {
				if k := goroutinesRunning("netx.(*Poller).run"); k != 0 {
					t.Fatalf("%d poller goroutines after %s", k, tc.name)
				}
			}
		})
	}
}

// TestParkedConnectionsRacingClose: connections resumed by the poller
// while Close takes the parked ones: each is closed once, by whoever took
// it, and nothing is left (race detector, leak check).
func TestParkedConnectionsRacingClose(t *testing.T) {
	t.Parallel()
	l := newPairListener()
	s := serveOn(t, l, nil)
	var clients []*client
	for range 32 {
		c := dialClient(t, l)
		c.get(t, "/")
		clients = append(clients, c)
	}
	waitParked(t, s, len(clients))
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { _, _ = io.WriteString(c, "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n") })
	}
	s.Close()
	wg.Wait()
	for _, c := range clients {
		// An answer, then the end; or the end at once.
		if resp, err := http.ReadResponse(c.br, nil); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
			t.Fatalf("read: %v", err)
		}
		if _, err := io.ReadAll(c.br); err != nil && !isReset(err) {
			t.Fatalf("read after: %v", err)
		}
	}
	waitUntracked(t, s)
}

// TestIdleConnectionStructsStaySmall: what an idle (parked) connection
// keeps of this server fits the size classes its memory budget was
// measured with (docs/performance.md, "Idle keep-alive connections").
func TestIdleConnectionStructsStaySmall(t *testing.T) {
	t.Parallel()
	if size := unsafe.Sizeof(conn{}); unsafe.Sizeof(uintptr(0)) == 8 && size > 208 {
		t.Errorf("conn is %d bytes: over the 208-byte size class", size)
	}
	if size := unsafe.Sizeof(localAddrCtx{}); unsafe.Sizeof(uintptr(0)) == 8 && size > 32 {
		t.Errorf("localAddrCtx is %d bytes: over the 32-byte size class", size)
	}
}

// deadlineConn records the last read deadline set.
type deadlineConn struct {
	net.Conn
	rd time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error { c.rd = t; return nil }

// TestSweepAsksIdleConnectionsToPark: a sweep asks a connection that has
// waited for parkAfter to park at once; one that began waiting less
// than parkAfter ago is asked at the next sweep; one that is not
// waiting, never (the sweep's time is injected).
func TestSweepAsksIdleConnectionsToPark(t *testing.T) {
	t.Parallel()
	now := time.Now().UnixNano()
	for _, tc := range []struct {
		name      string
		state     int32
		waited    time.Duration
		after     []int32 // the park state after each sweep
		wakesRead bool
	}{
		{"idle long enough", parkIdle, parkAfter, []int32{parkAsked}, true},
		{"idle for a moment", parkIdle, parkAfter - time.Millisecond, []int32{parkSeen, parkAsked}, true},
		{"busy", parkNone, time.Hour, []int32{parkNone, parkNone}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nc := &deadlineConn{}
			c := &conn{nc: nc}
			c.park.Store(tc.state)
			c.waitSince.Store(now - int64(tc.waited))
			for i, want := range tc.after {
				c.maybePark(now)
				if got := c.park.Load(); got != want {
					t.Fatalf("after sweep %d: park state %d, want %d", i+1, got, want)
				}
			}
			if woke := nc.rd.Equal(aLongTimeAgo); woke != tc.wakesRead {
				t.Fatalf("read woken: %v, want %v", woke, tc.wakesRead)
			}
		})
	}
}
