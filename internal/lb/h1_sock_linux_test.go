package lb

import (
	"bytes"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// socketPair returns the two ends of a connected Unix stream socket pair:
// real sockets with a poller, no port.
func socketPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return conn(fds[0]), conn(fds[1])
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
