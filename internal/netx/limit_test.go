package netx

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// A limitedConn hid the TCP connection's CloseWrite, so net/http closed a
// connection with unread request bytes without half-closing it first:
// the client got an RST (ECONNRESET) where the FIN after the 413 should
// have been, and could lose the answer itself.
func TestLimitListenerLetsNetHTTPHalfClose(t *testing.T) {
	testutil.CheckGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := NewLimitListener(ln, Limits{Total: 10, PerIP: 10})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1024)); err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		}
	})}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lim) }()
	t.Cleanup(func() { srv.Close(); <-served })

	c, err := net.Dial("tcp", lim.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second)) // a bound, not a wait
	// The client is still sending: it declares more than it has sent, and
	// more than net/http reads after a handler (256 KiB), so bytes stay
	// unread when the server closes. The part sent fits the socket
	// buffers, and no write is pending while it reads (a pending write
	// would take the RST's error in place of the read).
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 8<<20)
	if _, err := c.Write(make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}

	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "too large") {
		t.Fatalf("got %d %q, %v; want the whole 413", resp.StatusCode, body, err)
	}
	// The server half-closes after the answer, then closes (net/http's
	// closeWriteAndWait): a FIN, read as EOF, before any RST.
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the response: %d bytes, %v; want EOF (the half-close), not a reset", n, err)
	}
}

// stubConn is a net.Conn without CloseWrite or ReadFrom; the stubs below
// add them and record their calls.
type stubConn struct{ net.Conn }

func (stubConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (stubConn) Close() error         { return nil }

type stubCloseWriter struct {
	stubConn
	calls *[]string
}

func (c stubCloseWriter) CloseWrite() error { *c.calls = append(*c.calls, "CloseWrite"); return nil }

type stubReaderFrom struct {
	stubConn
	calls *[]string
}

func (c stubReaderFrom) ReadFrom(io.Reader) (int64, error) {
	*c.calls = append(*c.calls, "ReadFrom")
	return 0, nil
}

type stubBoth struct {
	stubConn
	calls *[]string
}

func (c stubBoth) CloseWrite() error { *c.calls = append(*c.calls, "CloseWrite"); return nil }
func (c stubBoth) ReadFrom(io.Reader) (int64, error) {
	*c.calls = append(*c.calls, "ReadFrom")
	return 0, nil
}

type oneConnListener struct {
	net.Listener
	c net.Conn
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if l.c == nil {
		return nil, net.ErrClosed
	}
	c := l.c
	l.c = nil
	return c, nil
}

// The wrapper offers CloseWrite and ReadFrom exactly when the connection
// it wraps does, and forwards them to it.
func TestLimitedConnForwardsCloseWriteAndReadFrom(t *testing.T) {
	t.Parallel()
	var calls []string
	tests := []struct {
		name   string
		inner  net.Conn
		cw, rf bool
	}{
		{name: "neither", inner: stubConn{}},
		{name: "close-write", inner: stubCloseWriter{calls: &calls}, cw: true},
		{name: "read-from", inner: stubReaderFrom{calls: &calls}, rf: true},
		{name: "both", inner: stubBoth{calls: &calls}, cw: true, rf: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls = nil
			lim := NewLimitListener(&oneConnListener{c: tt.inner}, Limits{Total: 1, PerIP: 1})
			c, err := lim.Accept()
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			cw, ok := c.(closeWriter)
			if ok != tt.cw {
				t.Errorf("CloseWrite offered: %v, want %v", ok, tt.cw)
			}
			if ok {
				cw.CloseWrite()
				want = append(want, "CloseWrite")
			}
			rf, ok := c.(io.ReaderFrom)
			if ok != tt.rf {
				t.Errorf("ReadFrom offered: %v, want %v", ok, tt.rf)
			}
			if ok {
				rf.ReadFrom(strings.NewReader("x"))
				want = append(want, "ReadFrom")
			}
			if fmt.Sprint(calls) != fmt.Sprint(want) {
				t.Errorf("calls reaching the wrapped conn: %v, want %v", calls, want)
			}
			c.Close()
			if n := lim.counts.total.Load(); n != 0 {
				t.Errorf("count after close: %d", n)
			}
			if _, held := lim.counts.perIP[netip.MustParseAddr("127.0.0.1")]; held {
				t.Error("per-IP count held after close")
			}
		})
	}
}

// Over TCP, ReadFrom is the TCPConn's (sendfile from a file): the bytes
// arrive whole.
func TestLimitedTCPConnReadFrom(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := NewLimitListener(ln, Limits{})
	defer lim.Close()
	client, err := net.Dial("tcp", lim.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := lim.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rf, ok := c.(io.ReaderFrom)
	if !ok {
		t.Fatalf("%T over a TCP connection has no ReadFrom", c)
	}
	if _, ok := c.(closeWriter); !ok {
		t.Fatalf("%T over a TCP connection has no CloseWrite", c)
	}
	want := strings.Repeat("sendfile ", 10000)
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte(want), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(client); got <- string(b) }()
	if n, err := rf.ReadFrom(f); err != nil || n != int64(len(want)) {
		t.Fatalf("ReadFrom: %d, %v", n, err)
	}
	c.(closeWriter).CloseWrite()
	if g := <-got; g != want {
		t.Fatalf("client read %d bytes, want %d", len(g), len(want))
	}
}

// netConnWrapper is a connection wrapping another, as a *tls.Conn does.
type netConnWrapper struct{ net.Conn }

func (w netConnWrapper) NetConn() net.Conn { return w.Conn }

// A draining server waits on WaitDrained for the connections it accepted
// to close: it returns at once with none open, waits while one is open
// and not marked multiplexed, and returns when the last one closes or is
// marked (through a wrapper), or when its context ends.
func TestWaitDrained(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := NewLimitListener(ln, Limits{Total: 10})
	ctx := t.Context()
	if err := lim.WaitDrained(ctx); err != nil {
		t.Fatalf("WaitDrained with nothing open: %v", err)
	}
	var accepted []net.Conn
	for range 2 {
		client, err := net.Dial("tcp", lim.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		c, err := lim.Accept()
		if err != nil {
			t.Fatal(err)
		}
		accepted = append(accepted, c)
	}
	if err := lim.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lim.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}

	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := lim.WaitDrained(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitDrained with 2 open and ctx done: %v, want context.Canceled", err)
	}

	drained := make(chan error, 1)
	go func() { drained <- lim.WaitDrained(ctx) }()
	accepted[0].Close()
	accepted[0].Close() // counted once
	Multiplexed(netConnWrapper{accepted[1]})
	if err := <-drained; err != nil {
		t.Fatalf("WaitDrained: %v", err)
	}
	if n := lim.Pending(); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
	// The multiplexed connection still counts against the limits until
	// it closes, and closing it does not count it off twice.
	if n := lim.counts.total.Load(); n != 1 {
		t.Errorf("open connections = %d, want 1", n)
	}
	accepted[1].Close()
	if n, p := lim.counts.total.Load(), lim.Pending(); n != 0 || p != 0 {
		t.Errorf("after closing all: open %d, pending %d, want 0 and 0", n, p)
	}
}

// TestCountsSharedByListeners: max_connections and max_connections_per_ip
// hold across every listener of the process (plain and HTTPS, several
// addresses), not for each: a client could otherwise hold the per-IP
// limit on each address, and a flood the total on each.
func TestCountsSharedByListeners(t *testing.T) {
	t.Parallel()
	counts := NewCounts(Limits{Total: 2, PerIP: 1})
	var lns [2]*LimitListener
	accepted := make(chan net.Conn, 8)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = counts.Listen(ln)
		t.Cleanup(func() { lns[i].Close() })
		go func() {
			for {
				c, err := lns[i].Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
	}
	// dial connects from src to listener i and reports whether the
	// connection was kept (refused ones are closed at once: EOF).
	dial := func(src string, i int) (net.Conn, bool) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", lns[i].Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		closed := make(chan struct{})
		go func() {
			if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
				close(closed) // refused: closed at accept, before any byte
			}
		}()
		select {
		case s := <-accepted:
			t.Cleanup(func() { s.Close() })
			return c, true
		case <-closed:
			return c, false
		case <-time.After(10 * time.Second): // a bound, not a wait
			t.Fatalf("%s → %d: neither accepted nor closed", src, i)
			return nil, false
		}
	}
	if _, ok := dial("127.0.0.1", 0); !ok {
		t.Fatal("first connection refused")
	}
	if _, ok := dial("127.0.0.1", 1); ok {
		t.Fatal("the same address on the other listener: accepted, want refused (per-IP limit shared)")
	}
	if _, ok := dial("127.0.0.2", 1); !ok {
		t.Fatal("a second address refused")
	}
	if _, ok := dial("127.0.0.3", 0); ok {
		t.Fatal("a third connection on the first listener: accepted, want refused (total shared)")
	}
	if r0, r1 := lns[0].Refused.Load(), lns[1].Refused.Load(); r0 != 1 || r1 != 1 {
		t.Fatalf("refused %d and %d, want 1 and 1", r0, r1)
	}
}
