//go:build linux

package lb

import (
	"syscall"
	"unsafe"
)

// idleClean reports whether an idle connection can be reused: nothing has
// arrived on it since its last response, and the server has not closed
// it. Bytes arriving on an idle connection are a response to no request
// (an upstream bug, or a second response smuggled into the first); reading
// them as the next request's response would hand one client's answer to
// another, so such a connection is closed (Pingora watches its idle
// connections for the same reason; http.Transport's read loop does it with
// a goroutine per connection). One non-blocking MSG_PEEK, no data copied.
func (pc *h1Conn) idleClean() bool {
	if pc.raw == nil {
		return true // not a socket (tests over net.Pipe)
	}
	pc.peekClean = false
	if err := pc.raw.Read(pc.peekFn); err != nil {
		return false
	}
	return pc.peekClean
}

// peek is the RawConn callback of idleClean, bound once per connection so
// that checking costs no allocation. It never waits: it returns true.
func (pc *h1Conn) peek(fd uintptr) bool {
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&pc.peekBuf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	pc.peekClean = errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK
	return true
}
