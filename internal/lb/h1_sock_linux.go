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

// writeAndAwait writes p, the end of a request head, and waits for the
// socket to become readable, in one RawConn.Read; the response is then
// read by the connection's bufio.Reader as before.
//
// A write followed by a read, the usual way, costs a read that fails
// with EAGAIN on nearly every request (the response cannot be there
// yet) before the poller waits: a system call per request for nothing.
// Waiting without that read is safe here because RawConn.Read resets
// the socket's readiness before its first callback, and that callback
// writes the request: any readiness after it is the response's (or the
// connection's end), and nothing was left to read before it (idleClean
// checked the socket just before; the reader's buffer is empty).
//
// A write that would block, is short or fails leaves the rest to
// Conn.Write, so errors and write deadlines are net.Conn's. A wait that
// ends in an error (the response header timeout, a close on
// cancellation) is left to the read that follows, which meets the same
// error and reports it as it always has.
func (pc *h1Conn) writeAndAwait(p []byte) (int, error) {
	pc.sendBuf, pc.sendN, pc.sendDone = p, 0, false
	_ = pc.raw.Read(pc.sendFn)
	n := pc.sendN
	pc.sendBuf = nil
	if n == len(p) {
		return n, nil
	}
	m, err := pc.nc.Write(p[n:])
	return n + m, err
}

// writeWait is writeAndAwait's callback, bound once per connection so
// that it costs no allocation. Its first call writes; it returns false
// (wait for readability) only when everything was written. Its second
// call is the wake-up: it returns true without reading.
func (pc *h1Conn) writeWait(fd uintptr) bool {
	if pc.sendDone {
		return true
	}
	for pc.sendN < len(pc.sendBuf) {
		rest := pc.sendBuf[pc.sendN:]
		n, _, errno := syscall.Syscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 || n == 0 {
			return true // EAGAIN or an error: Conn.Write takes over
		}
		pc.sendN += int(n)
	}
	pc.sendDone = true
	return false
}
