package h2server_test

// Regression tests for defects found in review: each is a raw-frame
// exchange against both servers, like the attack and differential tests.

import (
	"io"
	"net/http"
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

// TestContinueAfterFinalHeaders: a request with "Expect: 100-continue"
// whose handler sends its final header before it reads the body. The
// first Read must not send "100 Continue" any more (net/http drops it,
// golang.org/issue/14030): a 1xx after the final header is a second
// header block without END_STREAM, a malformed response.
func TestContinueAfterFinalHeaders(t *testing.T) {
	runExchanges(t, false, []exchange{
		{name: "header flushed, then the body read", noRead: true, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "expect", "100-continue"))
			c.waitHeaders(1)
			c.body(1, []byte("hello"), true)
		}, handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		}},
	})
}
