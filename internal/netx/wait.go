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
// (this package's): a connection with a WaitReadable method (the framing
// guard, which may hold bytes) is asked itself, and any other wrapper
// is not looked through, since bytes it buffered would not be seen.
func WaitReadable(c net.Conn) error {
	for range 8 {
		switch cc := c.(type) {
		case interface{ WaitReadable() error }:
			return cc.WaitReadable()
		case interface{ limited() *limitedConn }:
			c = cc.limited().Conn
		case syscall.Conn:
			rc, err := cc.SyscallConn()
			if err != nil {
				return err
			}
			return waitRaw(rc)
		default:
			return errors.ErrUnsupported
		}
	}
	return errors.ErrUnsupported
}
