// Package netx holds listener-level defences: limits on concurrent
// connections, in total and per client address. A connection over a limit
// is closed at accept, before any byte of it is read, and counted.
//
// A LimitListener also tells a draining server when the connections it
// accepted are gone (WaitDrained): every one closed, or marked as
// multiplexed (HTTP/2, which ends with a GOAWAY rather than a close).
//
// For idle connections it waits for readability without reading
// (WaitReadable, on the caller's goroutine) and, on Linux, for many at
// once on one goroutine (Poller, an epoll instance of its own), looking
// through its own wrapper and through those that say what they hold
// (the framing guard's ReadPending).
package netx

import (
	"context"
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

// Counts are the open connections that Limits cap, shared by every
// listener made with Listen: max_connections and max_connections_per_ip
// hold for the process, not for each address it listens on.
type Counts struct {
	limits Limits
	total  atomic.Int64

	mu    sync.Mutex // guards the following field
	perIP map[netip.Addr]int
}

// NewCounts returns counts capped by lim.
func NewCounts(lim Limits) *Counts {
	return &Counts{limits: lim, perIP: map[netip.Addr]int{}}
}

// Listen wraps l, its connections counted in c with those of c's other
// listeners.
func (c *Counts) Listen(l net.Listener) *LimitListener {
	return &LimitListener{Listener: l, counts: c}
}

// admit counts a connection from ip, or reports which limit refuses it.
func (c *Counts) admit(ip netip.Addr) (refused string) {
	if c.limits.PerIP > 0 {
		c.mu.Lock()
		if c.perIP[ip] >= c.limits.PerIP {
			c.mu.Unlock()
			return "per_ip"
		}
		c.perIP[ip]++
		c.mu.Unlock()
	}
	// Reserved, then checked: listeners accepting at once cannot both
	// take the last place.
	if n := c.total.Add(1); c.limits.Total > 0 && n > int64(c.limits.Total) {
		c.release(ip)
		return "total"
	}
	return ""
}

// release uncounts a connection from ip.
func (c *Counts) release(ip netip.Addr) {
	c.total.Add(-1)
	if c.limits.PerIP > 0 {
		c.mu.Lock()
		if c.perIP[ip]--; c.perIP[ip] <= 0 {
			delete(c.perIP, ip)
		}
		c.mu.Unlock()
	}
}

// LimitListener wraps a listener with the Limits of its Counts.
type LimitListener struct {
	net.Listener
	counts  *Counts
	Refused atomic.Int64 // connections closed at accept
	// OnRefuse, if set, is called for each refused connection ("total" or
	// "per_ip").
	OnRefuse func(reason string)

	// pending counts the open connections not marked multiplexed
	// (WaitDrained waits for 0).
	pending atomic.Int64

	closeOnce sync.Once
	closeErr  error

	mu   sync.Mutex    // guards the following field
	zero chan struct{} // closed when pending reaches 0; nil when no one waits
}

// NewLimitListener wraps l with counts of its own.
func NewLimitListener(l net.Listener, lim Limits) *LimitListener {
	return NewCounts(lim).Listen(l)
}

// Accept returns the next connection within the limits; connections over
// a limit are closed and the wait continues.
func (l *LimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrOf(c)
		if reason := l.counts.admit(ip); reason != "" {
			l.refuse(c, reason)
			continue
		}
		l.pending.Add(1)
		return wrap(c, l, ip), nil
	}
}

// Close closes the listener. Only the first call closes it; later ones
// return what the first returned (a drain closes a listener before the
// server's Shutdown closes it again, which must not report an error).
func (l *LimitListener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

// WaitDrained waits until every connection accepted so far is closed or
// marked multiplexed (Multiplexed), or ctx ends (then it returns ctx's
// error). Call it once the listener no longer accepts: otherwise new
// connections may keep it waiting.
func (l *LimitListener) WaitDrained(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.pending.Load() <= 0 {
			l.mu.Unlock()
			return nil
		}
		if l.zero == nil {
			l.zero = make(chan struct{})
		}
		zero := l.zero
		l.mu.Unlock()
		select {
		case <-zero:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Pending is the number of open connections not marked multiplexed.
func (l *LimitListener) Pending() int64 { return l.pending.Load() }

// settle takes one connection off pending, and wakes WaitDrained at 0.
func (l *LimitListener) settle() {
	if l.pending.Add(-1) > 0 {
		return
	}
	l.mu.Lock()
	if l.zero != nil {
		close(l.zero)
		l.zero = nil
	}
	l.mu.Unlock()
}

// Multiplexed marks c, a connection accepted by a LimitListener (or one
// wrapping it and offering NetConn, such as a *tls.Conn), as carrying
// HTTP/2: WaitDrained no longer waits for it, since it does not close
// when keep-alives are disabled but ends with the GOAWAY of the server's
// Shutdown. It does nothing for any other connection, or one marked
// already.
func Multiplexed(c net.Conn) {
	for i := 0; c != nil && i < 8; i++ {
		if lc, ok := c.(interface{ limited() *limitedConn }); ok {
			lc.limited().markMultiplexed()
			return
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		c = u.NetConn()
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

// States of a limitedConn, for pending.
const (
	connOpen int32 = iota
	connMultiplexed
	connClosed
)

type limitedConn struct {
	net.Conn
	l     *LimitListener
	ip    netip.Addr
	once  sync.Once
	state atomic.Int32 // connOpen, connMultiplexed or connClosed
}

func (c *limitedConn) limited() *limitedConn { return c }

func (c *limitedConn) markMultiplexed() {
	if c.state.CompareAndSwap(connOpen, connMultiplexed) {
		c.l.settle()
	}
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		if c.state.Swap(connClosed) == connOpen {
			defer c.l.settle() // after the counts below: a drain may end at 0
		}
		c.l.counts.release(c.ip)
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
