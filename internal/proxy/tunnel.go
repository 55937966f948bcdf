package proxy

import (
	"net"
	"time"
)

// tunnelLinger bounds how long a tunnel (a WebSocket, any protocol
// switch) stays open once the upstream has closed its side: the client
// gets a FIN at once, and then this long to close its own side before
// both connections are closed. net/http gives a client the same 500 ms
// after a half-close (rstAvoidanceDelay), so that the close does not
// come as an RST ahead of the last bytes.
const tunnelLinger = 500 * time.Millisecond

// tunnelConn is the client's connection once a protocol switch hands it
// over (respWriter.Hijack): httputil.ReverseProxy relays bytes both ways
// through it until one way fails, or until both have ended.
//
// When the upstream closes (EOF on its side), ReverseProxy half-closes
// the client's connection and keeps relaying the client's bytes,
// waiting for the client to close too: a client that does not held its
// connection and the upstream's (in CLOSE-WAIT) for as long as it
// wanted. CloseWrite bounds that wait by tunnelLinger (issue 14).
type tunnelConn struct {
	net.Conn
}

// CloseWrite runs when the upstream side has ended (ReverseProxy's
// copyFromBackend): it half-closes the client's connection when it can,
// and ends the relay of the client's bytes after tunnelLinger, after
// which ReverseProxy closes both connections.
func (c *tunnelConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	return c.Conn.SetReadDeadline(time.Now().Add(tunnelLinger))
}

type closeWriter interface{ CloseWrite() error }
