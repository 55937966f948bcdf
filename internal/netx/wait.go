package netx

import (
	"errors"
	"net"
	"syscall"
)

// WaitReadable waits, without reading, until a Read of c would find
// something: bytes, the end of the stream or an error. A server waits so
// for the next request on an idle connection without holding a read
// buffer (h1server). It returns the wait's error (a deadline passed, the
// connection closed), which the Read that follows meets again, and
// errors.ErrUnsupported for a connection it cannot wait on.
//
// It looks through the connections it knows hold no bytes of their own
// (this package's), and through those that may and say whether they do
// (a bufferingConn: the framing guard); any other wrapper is not looked
// through, since bytes it buffered would not be seen.
func WaitReadable(c net.Conn) error {
	rc, pending, err := socketOf(c)
	if err != nil || pending {
		return err
	}
	return waitRaw(rc)
}

// bufferingConn is a wrapper that may hold bytes read from the
// connection under it (the framing guard, h1guard.Conn).
type bufferingConn interface {
	// ReadPending reports whether a Read would return at once, without
	// reading the connection under it (bytes or an error held). Like
	// Read, it belongs to the goroutine reading the connection.
	ReadPending() bool
	// NetConn returns the connection under the wrapper.
	NetConn() net.Conn
}

// socketOf returns the socket under c to wait on, or pending when a
// wrapper above it holds bytes (or an error) for the next Read: there is
// nothing to wait for then. It returns errors.ErrUnsupported when c is no
// socket, or a wrapper it cannot look through.
func socketOf(c net.Conn) (rc syscall.RawConn, pending bool, err error) {
	for range 8 {
		switch cc := c.(type) {
		case bufferingConn:
			if cc.ReadPending() {
				return nil, true, nil
			}
			c = cc.NetConn()
		case interface{ limited() *limitedConn }:
			c = cc.limited().Conn
		case syscall.Conn:
			rc, err := cc.SyscallConn()
			return rc, false, err
		default:
			return nil, false, errors.ErrUnsupported
		}
	}
	return nil, false, errors.ErrUnsupported
}
