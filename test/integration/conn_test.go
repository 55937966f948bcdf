//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

func connGate(t *testing.T, server string) (*testutil.Proc, string) {
	t.Helper()
	up := startUpstream(t, "app")
	addr := testutil.FreePort(t)
	p := testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q], %s }
admin: { listen: "off" }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, addr, server, up.Addr), addr)
	return p, addr
}

// waitClosed reads from c until the server closes it, or fails after d.
func waitClosed(t *testing.T, c net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
	return time.Since(start)
}

// A slowloris client (headers a byte at a time) is cut at the header
// timeout while normal clients keep a 100 % success rate.
func TestSlowlorisIsCut(t *testing.T) {
	_, addr := connGate(t, "read_header_timeout: 300ms")
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 10000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := http.Get("http://" + addr + "/x")
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	go func() { // one header byte every 50ms, forever
		for _, b := range []byte(strings.Repeat("X-Slow: a\r\n", 100)) {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	took := waitClosed(t, c, 5*time.Second)
	close(stop)
	wg.Wait()
	t.Logf("slowloris cut after %v; %d normal requests ok, %d failed", took, ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("normal clients: %d ok, %d failed", ok.Load(), failed.Load())
	}
}

// A slow POST (body stalls) is cut at the body read timeout.
func TestSlowBodyIsCut(t *testing.T) {
	_, addr := connGate(t, "body_read_timeout: 300ms")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /up?do=upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	took := time.Since(start)
	t.Logf("stalled body answered %q after %v", strings.TrimSpace(line), took)
	if took > 3*time.Second || strings.Contains(line, " 200 ") {
		t.Fatalf("stalled body: %q after %v", line, took)
	}
}

// Connections over max_connections_per_ip are closed at accept; closing
// one makes room.
func TestConnectionsPerIP(t *testing.T) {
	_, addr := connGate(t, "max_connections_per_ip: 2")
	// Two held connections that both serve requests. The readiness probe's
	// connection may still count for a moment (its close is noticed
	// asynchronously), so the pair is retried until both are served.
	var held []net.Conn
	served := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		defer c.SetReadDeadline(time.Time{})
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	if !testutil.WaitFor(10*time.Second, func() bool {
		for _, c := range held {
			c.Close()
		}
		held = nil
		for i := 0; i < 2; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return false
			}
			held = append(held, c)
		}
		return served(held[0]) && served(held[1])
	}) {
		t.Fatal("two connections from one address were not both served")
	}
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	io.WriteString(third, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	if took := waitClosed(t, third, 3*time.Second); took > 2*time.Second {
		t.Fatalf("over-limit connection lived %v", took)
	}
	held[1].Close()
	if !testutil.WaitFor(5*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/x")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}) {
		t.Fatal("no room after a connection closed")
	}
	held[0].Close()
}

// A client that stops reading a response (slow read) is cut once a single
// write has waited write_timeout; the request ends and is logged, instead
// of holding a handler and an upstream connection for ever. Also when it
// is the second request on a keep-alive connection (the write deadline is
// kept per connection, and renewed or carried over between requests).
func TestSlowReaderIsCut(t *testing.T) {
	p, addr := connGate(t, "write_timeout: 1s")
	for _, first := range []bool{true, false} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		if !first {
			fmt.Fprintf(c, "GET /warmup HTTP/1.1\r\nHost: gw.test\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		const size = 256 << 20
		path := fmt.Sprintf("/slowread%v", first)
		fmt.Fprintf(c, "GET %s?do=download&n=%d HTTP/1.1\r\nHost: gw.test\r\n\r\n", path, size)
		start := time.Now()
		// Not reading: Gatehouse's writes block once the socket buffers fill.
		if !p.WaitLog(fmt.Sprintf(`"path":%q`, path), 20*time.Second) {
			t.Fatalf("first request %v: the slow reader's request was still running after 20s", first)
		}
		took := time.Since(start)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, br)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("first request %v: the connection stayed open after the write timeout (read %d bytes)", first, n)
		}
		if n >= size {
			t.Fatalf("first request %v: the whole %d-byte response was delivered", first, n)
		}
		t.Logf("first request %v: slow reader cut after %v, having received %d KiB of %d MiB", first, took.Round(100*time.Millisecond), n>>10, size>>20)
		c.Close()
	}
}
