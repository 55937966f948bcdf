package h1server

import (
	"io"
	"net"
	"strings"
	"testing"
)

// readFromConn records ReadFrom calls.
type readFromConn struct {
	net.Conn
	got strings.Builder
	rf  int
}

func (c *readFromConn) ReadFrom(r io.Reader) (int64, error) {
	c.rf++
	return io.Copy(&c.got, r)
}

func (c *readFromConn) Write(p []byte) (int, error) { return c.got.Write(p) }

// A handed-over connection keeps the connection's ReadFrom (sendfile
// for net/http's static file responses) and CloseWrite.
func TestPrefixConnForwardsReadFrom(t *testing.T) {
	t.Parallel()
	inner := &readFromConn{}
	var c net.Conn = &prefixConn{Conn: inner}
	rf, ok := c.(io.ReaderFrom)
	if !ok {
		t.Fatal("prefixConn hides ReadFrom")
	}
	if n, err := rf.ReadFrom(strings.NewReader("file body")); n != 9 || err != nil {
		t.Fatalf("ReadFrom: %d, %v", n, err)
	}
	if inner.rf != 1 || inner.got.String() != "file body" {
		t.Fatalf("inner ReadFrom calls %d, got %q", inner.rf, inner.got.String())
	}
	// Without one inside, it copies through Write.
	plain := &writeOnlyConn{}
	if n, err := (&prefixConn{Conn: plain}).ReadFrom(strings.NewReader("abc")); n != 3 || err != nil || plain.got.String() != "abc" {
		t.Fatalf("fallback: %d, %v, %q", n, err, plain.got.String())
	}
}

type writeOnlyConn struct {
	net.Conn
	got strings.Builder
}

func (c *writeOnlyConn) Write(p []byte) (int, error) { return c.got.Write(p) }
