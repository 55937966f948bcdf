package lb

import (
	"bytes"
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// socketPair is testutil.SocketPair, both ends closed with the test.
func socketPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	x, y := testutil.SocketPair(t)
	t.Cleanup(func() { x.Close(); y.Close() })
	return x, y
}

// socketPending reports whether bytes, an end or an error are pending on
// pc's socket, without reading them.
func socketPending(t *testing.T, pc *h1Conn) bool {
	t.Helper()
	var pending bool
	raw := pc.raw
	if raw == nil {
		raw = pc.tcp // under TLS
	}
	err := raw.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		pending = err != syscall.EAGAIN
	})
	if err != nil {
		t.Fatal(err)
	}
	return pending
}

// writeAndAwait returns once the response has arrived, not before, and
// leaves it for the reader.
func TestWriteAndAwaitWaitsForTheResponse(t *testing.T) {
	t.Parallel()
	client, upstream := socketPair(t)
	pc := newH1Conn(client, "pair")
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	returned := make(chan error, 1)
	go func() {
		n, err := pc.writeAndAwait(req)
		if err == nil && n != len(req) {
			err = io.ErrShortWrite
		}
		returned <- err
	}()
	got := make([]byte, len(req))
	if _, err := io.ReadFull(upstream, got); err != nil || !bytes.Equal(got, req) {
		t.Fatalf("upstream read %q, %v", got, err)
	}
	select {
	case err := <-returned:
		t.Fatalf("returned (%v) before any response was sent", err)
	case <-time.After(100 * time.Millisecond):
	}
	const resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	if _, err := io.WriteString(upstream, resp); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not return after the response arrived")
	}
	b := make([]byte, len(resp))
	if _, err := io.ReadFull(pc.br, b); err != nil || string(b) != resp {
		t.Fatalf("reader got %q, %v", b, err)
	}
}

// A write the socket cannot take whole goes on through Conn.Write, in
// order, and the callback never waits for a response to a request not
// yet written.
func TestWriteAndAwaitFallsBackOnAFullSocket(t *testing.T) {
	t.Parallel()
	client, upstream := socketPair(t)
	pc := newH1Conn(client, "pair")
	req := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB: more than the socket holds
	// The callback alone, the upstream not reading: it writes what fits
	// and hands over, without waiting.
	pc.sendBuf, pc.sendN, pc.sendDone = req, 0, false
	var wait bool
	if err := pc.raw.Control(func(fd uintptr) { wait = !pc.writeWait(fd) }); err != nil {
		t.Fatal(err)
	}
	if wait || pc.sendDone || pc.sendN == 0 || pc.sendN >= len(req) {
		t.Fatalf("wait %v, done %v, wrote %d of %d: want part written, no wait", wait, pc.sendDone, pc.sendN, len(req))
	}
	first := pc.sendN

	// The whole call: what the callback wrote, then Conn.Write for the
	// rest, all in order.
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(upstream, int64(first+len(req))))
		got <- b
	}()
	n, err := pc.writeAndAwait(req)
	if err != nil || n != len(req) {
		t.Fatalf("wrote %d, %v", n, err)
	}
	var b []byte
	select {
	case b = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream did not get the whole request")
	}
	if len(b) != first+len(req) || !bytes.Equal(b[:first], req[:first]) || !bytes.Equal(b[first:], req) {
		t.Fatal("the upstream got the bytes out of order")
	}
}

// An upstream that half-closes (FIN, still reading) before the request
// is written on a new connection: the request fails at once, as with a
// plain write and read, not after the response header timeout (review
// finding: the FIN's readiness, reset by RawConn.Read, was lost). The idle
// connection's case is in TestH1SkipsIdleConnectionClosedByServer.
func TestHalfClosedNewConnectionFailsAtOnce(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t, func(c net.Conn) {
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
	// The dial returns once the FIN is there: before the request.
	d := &net.Dialer{Timeout: time.Second}
	c := newH1Client(func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		pc := newH1Conn(nc, addr)
		for deadline := time.Now().Add(5 * time.Second); !socketPending(t, pc); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Error("the upstream's FIN never arrived")
				break
			}
		}
		return nc, nil
	}, Settings{ResponseHeaderTimeout: 10 * time.Second, IdleConnTimeout: 4 * time.Second})
	defer c.CloseIdleConnections()
	start := time.Now()
	_, _, err := get(t, c, u.addr(), "/")
	if err == nil {
		t.Fatal("a response from a closed upstream")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failed after %v (%v): the header timeout, not the close", d, err)
	}
}
