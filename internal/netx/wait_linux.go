//go:build linux

package netx

import (
	"syscall"
	"unsafe"
)

// waitRaw waits for rc to be readable in one RawConn.Read that reads
// nothing. RawConn.Read resets the socket's readiness before its first
// call of the callback, so a readiness that came before would be lost:
// the first call peeks, without waiting, at what is pending, and waits
// only when nothing is (then whatever arrives raises a new readiness).
func waitRaw(rc syscall.RawConn) error {
	woke := false
	return rc.Read(func(fd uintptr) bool {
		if woke {
			return true
		}
		woke = true
		var b [1]byte
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return errno != syscall.EAGAIN && errno != syscall.EWOULDBLOCK // bytes, an end or an error
	})
}
