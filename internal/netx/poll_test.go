package netx

import (
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// chanWaiter reports each Readable on its channel.
type chanWaiter chan struct{}

func (w chanWaiter) Readable() { w <- struct{}{} }

func newChanWaiter() chanWaiter { return make(chanWaiter, 2) }

func (w chanWaiter) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-w:
	case <-time.After(10 * time.Second): // a bound, not a wait
		t.Fatalf("%s: never reported readable", what)
	}
}

// notYet fails if w was reported readable. Nothing is waited for: a
// later report is caught by whatever the test waits for next.
func (w chanWaiter) notYet(t *testing.T, what string) {
	t.Helper()
	select {
	case <-w:
		t.Fatalf("%s: reported readable", what)
	default:
	}
}

func skipUnlessLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is implemented on Linux only")
	}
}

// TestPollerReportsReadable: a registration is reported once bytes come,
// or at once when they came before it, or when the peer closes; it reads
// nothing; and a connection can wait again after its report.
func TestPollerReportsReadable(t *testing.T) {
	skipUnlessLinux(t)
	testutil.CheckGoroutines(t)
	var p Poller
	defer p.Close()
	client, server := testutil.SocketPair(t)
	defer client.Close()
	defer server.Close()

	// A limited connection is looked through.
	lim := &limitedConn{Conn: server}
	w := newChanWaiter()
	if _, err := p.Wait(lim, w); err != nil {
		t.Fatal(err)
	}
	if p.Waiting() != 1 {
		t.Fatalf("%d waiting, want 1", p.Waiting())
	}
	w.notYet(t, "nothing sent")
	if _, err := io.WriteString(client, "hello"); err != nil {
		t.Fatal(err)
	}
	w.wait(t, "bytes sent after the wait began")
	if p.Waiting() != 0 {
		t.Fatalf("%d waiting after the report, want 0", p.Waiting())
	}
	// The bytes are still there (nothing read): a second wait on the same
	// socket (the registration rearmed) is reported at once.
	if _, err := p.Wait(server, w); err != nil {
		t.Fatal(err)
	}
	w.wait(t, "bytes there before the wait began")
	buf := make([]byte, 16)
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v: want every byte", buf[:n], err)
	}
	if _, err := p.Wait(server, w); err != nil {
		t.Fatal(err)
	}
	client.Close()
	w.wait(t, "the peer closed")
}

// TestPollerTokensOutliveDescriptors: a registration forgotten, or left
// on a connection that was closed, is never reported, even for a new
// socket that got the old one's descriptor number.
func TestPollerTokensOutliveDescriptors(t *testing.T) {
	skipUnlessLinux(t)
	testutil.CheckGoroutines(t)
	var p Poller
	defer p.Close()

	c1, s1 := testutil.SocketPair(t)
	defer c1.Close()
	old := newChanWaiter()
	tok, err := p.Wait(s1, old)
	if err != nil {
		t.Fatal(err)
	}
	s1.Close() // the kernel drops its registration; the token stays
	c2, s2 := testutil.SocketPair(t)
	defer c2.Close()
	defer s2.Close()
	w := newChanWaiter()
	tok2, err := p.Wait(s2, w)
	if err != nil {
		t.Fatal(err)
	}
	if tok2 == tok {
		t.Fatal("a token was reused")
	}
	_, _ = io.WriteString(c2, "x")
	w.wait(t, "the new socket")
	old.notYet(t, "the closed socket's registration")
	if !p.Forget(tok) || p.Forget(tok) {
		t.Fatal("Forget: want true for the closed socket's waiting registration, then false")
	}

	// Forgotten first, then readable: never reported.
	_, _ = io.ReadFull(s2, make([]byte, 1))
	tok3, err := p.Wait(s2, old)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Forget(tok3) {
		t.Fatal("Forget: the registration was not waiting")
	}
	_, _ = io.WriteString(c2, "y")
	if _, err := p.Wait(s2, w); err != nil { // rearmed under a new token
		t.Fatal(err)
	}
	w.wait(t, "rearmed")
	old.notYet(t, "forgotten")
}

// pendingConn holds bytes of its own, as the framing guard may.
type pendingConn struct {
	net.Conn
	pending bool
}

func (c *pendingConn) ReadPending() bool { return c.pending }
func (c *pendingConn) NetConn() net.Conn { return c.Conn }

// TestPollerWaitRefusals: bytes a wrapper holds are readable already;
// connections with no socket cannot be waited on; a closed connection or
// poller refuses.
func TestPollerWaitRefusals(t *testing.T) {
	skipUnlessLinux(t)
	testutil.CheckGoroutines(t)
	var p Poller
	client, server := testutil.SocketPair(t)
	defer client.Close()
	w := newChanWaiter()

	if _, err := p.Wait(&pendingConn{Conn: server, pending: true}, w); !errors.Is(err, ErrReadable) {
		t.Fatalf("a wrapper holding bytes: got %v, want ErrReadable", err)
	}
	if _, err := p.Wait(&pendingConn{Conn: server}, w); err != nil {
		t.Fatalf("a wrapper holding nothing: %v", err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := p.Wait(a, w); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("net.Pipe: got %v, want errors.ErrUnsupported", err)
	}
	server.Close()
	if _, err := p.Wait(server, w); err == nil {
		t.Fatal("a closed connection was registered")
	}
	if p.Waiting() != 1 {
		t.Fatalf("%d waiting, want the one registration (its socket closed since)", p.Waiting())
	}

	// Closed with a registration waiting: the goroutine ends (the leak
	// check), the registration is dropped, and Wait refuses.
	p.Close()
	p.Close()
	if p.Waiting() != 0 {
		t.Fatalf("%d waiting after Close", p.Waiting())
	}
	c2, s2 := testutil.SocketPair(t)
	defer c2.Close()
	defer s2.Close()
	if _, err := p.Wait(s2, w); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: got %v, want net.ErrClosed", err)
	}
	w.notYet(t, "dropped by Close")
}

// TestPollerManyConnections: more connections than one epoll_wait takes
// become readable at once; each is reported once, by one goroutine.
func TestPollerManyConnections(t *testing.T) {
	skipUnlessLinux(t)
	testutil.CheckGoroutines(t)
	var p Poller
	defer p.Close()
	const n = 3*pollBatch + 5
	w := make(chanWaiter, n)
	clients := make([]net.Conn, 0, n)
	for range n {
		c, s := testutil.SocketPair(t)
		defer c.Close()
		defer s.Close()
		clients = append(clients, c)
		if _, err := p.Wait(s, w); err != nil {
			t.Fatal(err)
		}
	}
	before := runtime.NumGoroutine()
	for _, c := range clients {
		_, _ = io.WriteString(c, "x")
	}
	for i := range n {
		select {
		case <-w:
		case <-time.After(10 * time.Second): // a bound, not a wait
			t.Fatalf("%d of %d reported", i, n)
		}
	}
	if p.Waiting() != 0 || runtime.NumGoroutine() > before {
		t.Fatalf("%d waiting, %d goroutines (from %d)", p.Waiting(), runtime.NumGoroutine(), before)
	}
}
