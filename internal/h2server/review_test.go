package h2server_test

// Regression tests for defects found in review: each is a raw-frame
// exchange against both servers, like the attack and differential tests.

import (
	"testing"
	"time"
)

// TestIdleTimeoutAfterMalformedHeaders: a client opens a connection and
// sends one HEADERS frame the server refuses before it makes a stream
// (here, a request without :path). net/http's server makes the stream
// anyway and re-arms its idle timer when it closes; h2server stopped its
// idle timer for the new stream ID and, with no stream made, never
// re-armed it, so the connection was held open forever: one such frame
// per connection defeated IdleTimeout.
func TestIdleTimeoutAfterMalformedHeaders(t *testing.T) {
	lim := defaultLimits
	lim.IdleTimeout = 200 * time.Millisecond
	runExchanges(t, true, []exchange{
		{name: "request without :path", lim: &lim, script: func(c *client, e *env) {
			c.headers(1, true, fields(":method", "GET", ":scheme", "https", ":authority", authority))
			c.waitStream(1)
			c.waitGoAway()
		}, check: func(t *testing.T, tr transcript) {
			if tr.GoAway != "NO_ERROR" || !tr.Closed {
				t.Errorf("want GOAWAY NO_ERROR after IdleTimeout and the connection closed, got %v", tr)
			}
		}},
	})
}
