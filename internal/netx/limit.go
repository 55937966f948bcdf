// Package netx holds listener-level defences: limits on concurrent
// connections, in total and per client address. A connection over a limit
// is closed at accept, before any byte of it is read, and counted.
package netx

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Limits caps concurrent connections; 0 means no cap.
type Limits struct {
	Total int
	PerIP int
}

// LimitListener wraps a listener with Limits.
type LimitListener struct {
	net.Listener
	limits  Limits
	total   atomic.Int64
	Refused atomic.Int64 // connections closed at accept
	// OnRefuse, if set, is called for each refused connection ("total" or
	// "per_ip").
	OnRefuse func(reason string)

	mu    sync.Mutex // guards perIP
	perIP map[netip.Addr]int
}

// NewLimitListener wraps l.
func NewLimitListener(l net.Listener, lim Limits) *LimitListener {
	return &LimitListener{Listener: l, limits: lim, perIP: map[netip.Addr]int{}}
}

// Accept returns the next connection within the limits; connections over
// a limit are closed and the wait continues.
func (l *LimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.limits.Total > 0 && l.total.Load() >= int64(l.limits.Total) {
			l.refuse(c, "total")
			continue
		}
		ip := addrOf(c)
		if l.limits.PerIP > 0 {
			l.mu.Lock()
			if l.perIP[ip] >= l.limits.PerIP {
				l.mu.Unlock()
				l.refuse(c, "per_ip")
				continue
			}
			l.perIP[ip]++
			l.mu.Unlock()
		}
		l.total.Add(1)
		return wrap(c, l, ip), nil
	}
}

func (l *LimitListener) refuse(c net.Conn, reason string) {
	c.Close()
	l.Refused.Add(1)
	if l.OnRefuse != nil {
		l.OnRefuse(reason)
	}
}

func addrOf(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// closeWriter is what net/http's server looks for to half-close a
// connection before closing it (conn.closeWriteAndWait), so that a client
// still sending reads the 413/431/408 answer before the RST that unread
// bytes cause at close.
type closeWriter interface{ CloseWrite() error }

// wrap returns c counted against l, with the CloseWrite and ReadFrom of
// c and only those of them c has: net/http half-closes (see closeWriter)
// and copies a response body with sendfile/splice (response.ReadFrom)
// only when the connection itself offers the method; a wrapper must not
// offer one c lacks, since it could only pretend.
func wrap(c net.Conn, l *LimitListener, ip netip.Addr) net.Conn {
	_, cw := c.(closeWriter)
	_, rf := c.(io.ReaderFrom)
	switch {
	case cw && rf: // *net.TCPConn, *net.UnixConn
		return &limitedStreamConn{limitedConn{Conn: c, l: l, ip: ip}}
	case cw:
		return &limitedCloseWriteConn{limitedConn{Conn: c, l: l, ip: ip}}
	case rf:
		return &limitedReadFromConn{limitedConn{Conn: c, l: l, ip: ip}}
	}
	return &limitedConn{Conn: c, l: l, ip: ip}
}

type limitedConn struct {
	net.Conn
	l    *LimitListener
	ip   netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.total.Add(-1)
		if c.l.limits.PerIP > 0 {
			c.l.mu.Lock()
			if c.l.perIP[c.ip]--; c.l.perIP[c.ip] <= 0 {
				delete(c.l.perIP, c.ip)
			}
			c.l.mu.Unlock()
		}
	})
	return c.Conn.Close()
}

// limitedStreamConn is a limitedConn over a conn with both CloseWrite and
// ReadFrom (a TCP connection).
type limitedStreamConn struct{ limitedConn }

func (c *limitedStreamConn) CloseWrite() error { return c.Conn.(closeWriter).CloseWrite() }

func (c *limitedStreamConn) ReadFrom(r io.Reader) (int64, error) {
	return c.Conn.(io.ReaderFrom).ReadFrom(r)
}

type limitedCloseWriteConn struct{ limitedConn }

func (c *limitedCloseWriteConn) CloseWrite() error { return c.Conn.(closeWriter).CloseWrite() }

type limitedReadFromConn struct{ limitedConn }

func (c *limitedReadFromConn) ReadFrom(r io.Reader) (int64, error) {
	return c.Conn.(io.ReaderFrom).ReadFrom(r)
}
