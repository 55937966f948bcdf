package proxy

import (
	"context"
	"net"
	"time"
)

// connState is what the engine keeps per HTTP/1.x connection: when the
// connection's write deadline was last renewed. Requests on one HTTP/1.x
// connection run one after another, so it needs no lock.
//
// Why: renewing the deadline before every write (two per request) took
// about 1 % of Gatehouse's CPU in timer updates. A deadline set by an
// earlier request on the connection is still in force, so it is renewed
// only when it has come within renewSlack of expiring; every write is
// then bounded by between write_timeout − renewSlack and write_timeout.
type connState struct {
	conn    net.Conn
	renewAt time.Time // the deadline needs no renewal before this
}

type connKey struct{}

// ConnContext is http.Server.ConnContext for the servers the engine runs
// behind: it gives each connection its connState.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{conn: c})
}

// renewSlack is how much of the write timeout may pass before the
// deadline is renewed: an eighth of it, at most a second.
func renewSlack(timeout time.Duration) time.Duration {
	return min(timeout/8, time.Second)
}
