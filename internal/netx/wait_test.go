package netx

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestWaitReadable: the wait reads nothing, returns once bytes are there
// (also when they came before it began), meets deadlines, and looks
// through a limited connection only.
func TestWaitReadable(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("a readability wait is implemented on Linux only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := NewLimitListener(ln, Limits{Total: 10})
	defer lim.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := lim.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	_ = server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := WaitReadable(server); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("nothing sent: got %v, want a deadline error", err)
	}
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(client, "hello"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second wait begins with the bytes there already
		if err := WaitReadable(server); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 16)
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v after the waits: want every byte", buf[:n], err)
	}
	client.Close()
	if err := WaitReadable(server); err != nil {
		t.Fatalf("at the end of the stream: %v", err)
	}

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := WaitReadable(a); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("net.Pipe: got %v, want errors.ErrUnsupported", err)
	}
}
