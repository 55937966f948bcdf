//go:build linux

package lb

import (
	"syscall"
	"unsafe"
)

// writeAndAwait writes p, the end of a request head, and waits for the
// response to arrive, in one RawConn.Read; the response is then read by
// the connection's bufio.Reader as before. Its callback (writeWait), in
// order:
//
//  1. Peeks, without waiting, at what is pending on the socket. Bytes
//     arriving on an idle connection are a response to no request (an
//     upstream bug, or a second response smuggled into the first);
//     reading them as the next request's response would hand one
//     client's answer to another. An end or a reset means the server
//     closed it while it sat idle. Either way nothing is written and
//     writeAndAwait returns errIdleUnclean: the caller takes another
//     connection (Pingora watches its idle connections for the same
//     reason; http.Transport's read loop does it with a goroutine per
//     connection). On a new connection, what is pending is left to the
//     usual write and read.
//  2. Writes the request.
//  3. Returns false, so that RawConn.Read waits for readability, and
//     true at the wake-up, without reading.
//
// A write followed by a read, the usual way, costs a read that fails
// with EAGAIN on nearly every request (the response cannot be there
// yet) before the poller waits. Waiting without that read is safe
// because RawConn.Read resets the socket's readiness before its first
// callback, and the peek then found nothing pending: everything that
// arrives afterwards, response, end or reset, raises a new readiness.
//
// A write that would block, is short or fails leaves the rest to
// Conn.Write, so errors and write deadlines are net.Conn's. A wait that
// ends in an error (the response header timeout, a close on
// cancellation) is left to the read that follows, which meets the same
// error and reports it as it always has. On a socket that is not a
// syscall.Conn (pc.raw nil), nothing of this runs: a plain write.
func (pc *h1Conn) writeAndAwait(p []byte) (int, error) {
	pc.sendBuf, pc.sendN, pc.sendDone, pc.peeked, pc.pending = p, 0, false, false, false
	_ = pc.raw.Read(pc.sendFn)
	pc.sendBuf = nil
	if pc.pending && pc.reused {
		return 0, errIdleUnclean
	}
	n := pc.sendN
	if n == len(p) {
		return n, nil
	}
	m, err := pc.nc.Write(p[n:])
	return n + m, err
}

// writeWait is writeAndAwait's callback, bound once per connection so
// that it costs no allocation.
func (pc *h1Conn) writeWait(fd uintptr) bool {
	if pc.sendDone {
		return true // the wake-up
	}
	if !pc.peeked {
		pc.peeked = true
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&pc.peekBuf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if errno != syscall.EAGAIN && errno != syscall.EWOULDBLOCK {
			pc.pending = true // bytes, an end, or an error
			return true
		}
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

// tcpPending reports whether the TCP socket under a TLS connection
// holds unread bytes or its end, without waiting (see tlsIdleUnclean).
func (pc *h1Conn) tcpPending() bool { return pc.socketPending(pc.tcp) }

// idlePending reports whether a plain connection's socket holds unread
// bytes or its end, without waiting: writeAndAwait's idle check, for a
// request whose head is flushed without waiting for the response (one
// with a body).
func (pc *h1Conn) idlePending() bool {
	if pc.raw == nil {
		return false
	}
	return pc.socketPending(pc.raw)
}

func (pc *h1Conn) socketPending(raw syscall.RawConn) bool {
	if pc.peekFn == nil {
		pc.peekFn = pc.peekFD
	}
	pc.pending = false
	_ = raw.Control(pc.peekFn)
	return pc.pending
}

func (pc *h1Conn) peekFD(fd uintptr) {
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&pc.peekBuf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	pc.pending = errno != syscall.EAGAIN && errno != syscall.EWOULDBLOCK // bytes, an end or an error
}
