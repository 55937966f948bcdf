package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"gatehouse/internal/netx"
)

// drain stops serving within grace, in two steps, at SIGTERM and SIGINT
// as after a zero-downtime upgrade (the process cannot tell them apart,
// and both gain):
//
//  1. Stop accepting: this process's listeners close (after an upgrade
//     the new process holds its own copies of the sockets, so no
//     connection attempt is refused), and every server disables
//     keep-alives: idle connections close now, and every response from
//     now on says "Connection: close". A connection accepted just before
//     the listener closed still has its request served: no server is
//     shutting down yet (net/http and h1server close a request read
//     during shutdown unanswered; see docs/operations.md, "Zero-downtime
//     upgrade"). Event streams end and WebSockets are closed (1001) by
//     engine.Drain meanwhile.
//  2. Wait until every connection accepted on the public and TLS
//     listeners has closed, HTTP/2 ones aside (netx.Multiplexed: they
//     end with Shutdown's GOAWAY), or grace passes. A connection that
//     never sends a request is closed by read_header_timeout at the
//     latest.
//
// Then the servers shut down as a plain Shutdown would, for whatever
// remains, within what is left of grace, and the remaining hijacked
// connections (WebSockets) get the rest of it too.
func (a *App) drain(servers []server, lns []net.Listener, lims []*netx.LimitListener, adminLn net.Listener, grace time.Duration) {
	a.events.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()

	a.draining.Store(true)
	for _, ln := range lns {
		_ = ln.Close() // the serve loops end without error (stoppedServing)
	}
	if adminLn != nil {
		_ = adminLn.Close()
	}
	for _, srv := range servers {
		srv.SetKeepAlivesEnabled(false)
	}
	var wg sync.WaitGroup
	// Event streams end cleanly now and WebSockets are closed (1001),
	// not cut at the deadline; net/http does not wait for the latter.
	wg.Go(func() { a.engine.Drain(sctx) })

	for _, l := range lims {
		if err := l.WaitDrained(sctx); err != nil {
			var open int64
			for _, l := range lims {
				open += l.Pending()
			}
			a.events.Warn("grace period over with connections still open", "open", open)
			break
		}
	}

	for _, srv := range servers {
		wg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				a.events.Warn("grace period over; closing remaining connections", "err", err.Error())
				srv.Close()
			}
		})
	}
	wg.Wait()
	if n := a.waitHandlers(sctx); n > 0 {
		a.events.Warn("grace period over; closing the remaining WebSocket and tunnel connections", "open", n)
	}
}

// stoppedServing reports whether err, returned by a server's Serve, means
// it stopped as asked: by Shutdown or Close, or by its listener closing
// for a drain.
func (a *App) stoppedServing(err error) bool {
	return errors.Is(err, http.ErrServerClosed) || a.draining.Load() && errors.Is(err, net.ErrClosed)
}

// onceCloseListener closes its listener once: the drain closes it, then
// http.Server.Shutdown may close it again, which must not be an error.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
