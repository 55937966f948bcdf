package proxy

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"gatehouse/internal/h1guard"
)

// connState is what the engine keeps per HTTP/1.x connection: when the
// connection's write deadline was last renewed. Requests on one HTTP/1.x
// connection run one after another, so it needs no lock.
//
// Why: renewing the deadline before every write (two per request) took
// about 1 % of Gatehouse's CPU in timer updates. Within a request the
// deadline is renewed only when it has come within renewSlack of
// expiring; every write is then bounded by between write_timeout −
// renewSlack and write_timeout. net/http clears the deadline after each
// response, so under it every request renews on its first write; a
// server that leaves it in place (kept, internal/h1server) lets the next
// request on the connection go on with it.
//
// It also keeps the last forwarding values computed on the connection,
// which its next request almost always repeats: the peer formatted, and
// the Forwarded element for a host and scheme.
//
// port is the listener's port (X-Forwarded-Port), formatted when the
// connection is accepted and never written again: HTTP/2 requests of the
// connection, which run concurrently, read it too.
type connState struct {
	conn    net.Conn
	guard   *h1guard.Conn // the connection's framing guard; nil on HTTPS
	port    string
	renewAt time.Time // the deadline needs no renewal before this
	kept    bool      // the server leaves the write deadline between requests
	// routeDeadline: a route timeout set the write deadline, which a kept
	// deadline must not pass on to the next request.
	routeDeadline bool

	peer    netip.Addr
	peerStr string
	fwdKey  [3]string // peer, host, proto of fwd
	fwd     string

	// memo is the same for the connection's HTTP/2 requests, which run
	// concurrently: a value never changed once stored, replaced whole.
	memo atomic.Pointer[connMemo]
}

// connMemo is what an HTTP/2 connection's requests formatted last:
// formatting the peer and the Forwarded element was two allocations per
// HTTP/2 request.
type connMemo struct {
	peer    netip.Addr
	peerStr string
	fwdKey  [3]string
	fwd     string
}

// sharedPeer returns peer formatted, from the connection's memo when it
// holds it. Safe for concurrent use.
func (cs *connState) sharedPeer(peer netip.Addr) string {
	m := cs.memo.Load()
	if m != nil && m.peerStr != "" && m.peer == peer {
		return m.peerStr
	}
	n := &connMemo{peer: peer, peerStr: peer.String()}
	if m != nil {
		n.fwdKey, n.fwd = m.fwdKey, m.fwd
	}
	cs.memo.Store(n)
	return n.peerStr
}

// sharedForwarded is forwarded for concurrent requests (sharedPeer's
// memo).
func (cs *connState) sharedForwarded(peer, host, proto string) string {
	k := [3]string{peer, host, proto}
	m := cs.memo.Load()
	if m != nil && m.fwd != "" && m.fwdKey == k {
		return m.fwd
	}
	n := &connMemo{fwdKey: k, fwd: forwardedElem(peer, host, proto)}
	if m != nil {
		n.peer, n.peerStr = m.peer, m.peerStr
	}
	cs.memo.Store(n)
	return n.fwd
}

// forwarded returns forwardedElem(peer, host, proto), formatted once per
// connection while they stay the same. cs may be nil.
func (cs *connState) forwarded(peer, host, proto string) string {
	if cs == nil {
		return forwardedElem(peer, host, proto)
	}
	if k := [3]string{peer, host, proto}; cs.fwd == "" || cs.fwdKey != k {
		cs.fwdKey, cs.fwd = k, forwardedElem(peer, host, proto)
	}
	return cs.fwd
}

type connKey struct{}

// connCtx is a connection's context: its parent with the connState as
// the value of connKey, in one allocation rather than a context.WithValue
// and a connState (an idle keep-alive connection keeps it:
// docs/performance.md).
type connCtx struct {
	context.Context
	cs connState
}

func (c *connCtx) Value(key any) any {
	if key == (connKey{}) {
		return &c.cs
	}
	return c.Context.Value(key)
}

func (c *connCtx) String() string { return "proxy.connCtx" }

func newConnCtx(ctx context.Context, c net.Conn, kept bool) context.Context {
	return &connCtx{Context: ctx, cs: connState{conn: c, port: localPort(c), kept: kept, guard: h1guard.Of(c)}}
}

// ConnContext is http.Server.ConnContext for the servers the engine runs
// behind: it gives each connection its connState.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return newConnCtx(ctx, c, false)
}

// Conn returns the connection ctx's request came in on, as ConnContext
// recorded it; nil when none did.
func Conn(ctx context.Context) net.Conn {
	if cs, ok := ctx.Value(connKey{}).(*connState); ok {
		return cs.conn
	}
	return nil
}

// ConnContextKeepingDeadlines is ConnContext for a server that leaves a
// connection's write deadline in place between requests
// (internal/h1server), unlike net/http, which clears it after each one.
func ConnContextKeepingDeadlines(ctx context.Context, c net.Conn) context.Context {
	return newConnCtx(ctx, c, true)
}

// localPort is the port of c's local address ("" if it has none): the
// port the client connected to.
func localPort(c net.Conn) string {
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		return strconv.Itoa(a.Port)
	}
	return ""
}

// listenerPort returns the port of the listener in came in on, as the
// connection's state recorded it; without one (a server that does not
// use ConnContext), the scheme's default port.
func (st *state) listenerPort(in *http.Request) string {
	cs := st.w.cs // HTTP/1.x
	if cs == nil {
		cs = st.h2cs
	}
	if cs != nil && cs.port != "" {
		return cs.port
	}
	if in.TLS != nil {
		return "443"
	}
	return "80"
}

// renewSlack is how much of the write timeout may pass before the
// deadline is renewed: an eighth of it, at most a second.
func renewSlack(timeout time.Duration) time.Duration {
	return min(timeout/8, time.Second)
}
