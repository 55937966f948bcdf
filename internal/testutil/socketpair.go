//go:build unix

package testutil

import (
	"net"
	"os"
	"syscall"
	"testing"
)

// SocketPair returns the two ends of a connected Unix stream socket pair:
// real sockets with the runtime's poller behind them, no port, no
// TIME_WAIT. The caller closes both.
func SocketPair(tb testing.TB) (a, b *net.UnixConn) {
	tb.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			tb.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}
