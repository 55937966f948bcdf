package testutil

import (
	"net"
	"sync/atomic"
	"testing"
)

// RawServer is a loopback TCP server that hands each accepted connection
// to serve, in its own goroutine, and closes it when serve returns: the
// upstream of tests that script the bytes on the wire.
type RawServer struct {
	Addr     string       // "127.0.0.1:N"
	Accepted atomic.Int32 // connections accepted so far
	ln       net.Listener
}

// ServeRaw starts a RawServer, closed at the end of the test.
func ServeRaw(tb testing.TB, serve func(c net.Conn)) *RawServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &RawServer{Addr: ln.Addr().String(), ln: ln}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.Accepted.Add(1)
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return s
}
