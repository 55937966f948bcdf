package h2server_test

// Differential probes written in review: state-machine corners and
// request forms, each compared with net/http's HTTP/2 server. Both
// servers agree on all of them (a request whose :method has a space
// reaches the handler on both: the handler must not trust it).

import (
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
)

func TestReviewDiff(t *testing.T) {
	echo := func(e *env, w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		w.Header().Set("X-Err", errClass(err))
		w.Write(b)
	}
	runExchanges(t, false, []exchange{
		{name: "client GOAWAY, then a new stream", script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/one"))
			c.waitStream(1)
			c.write(func() error { return c.fr.WriteGoAway(0, http2.ErrCodeNo, nil) })
			c.waitGoAway()
			c.headers(3, true, req("GET", "/two"))
		}},
		{name: "WINDOW_UPDATE on a closed stream", script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/"))
			c.waitStream(1)
			c.windowUpdate(1, 100)
			c.headers(3, true, req("GET", "/after"))
		}},
		{name: "PRIORITY on an idle stream, then HEADERS on it", script: func(c *client, e *env) {
			c.write(func() error { return c.fr.WritePriority(5, http2.PriorityParam{StreamDep: 0, Weight: 10}) })
			c.headers(5, true, req("GET", "/"))
		}},
		{name: "PRIORITY on a closed stream", script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/"))
			c.waitStream(1)
			c.write(func() error { return c.fr.WritePriority(1, http2.PriorityParam{StreamDep: 3, Weight: 10}) })
			c.headers(3, true, req("GET", "/after"))
		}},
		{name: "content-length 0 then empty DATA END_STREAM", handler: echo, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "content-length", "0"))
			c.data(1, true, nil)
		}},
		{name: "100-continue with END_STREAM on HEADERS", handler: echo, script: send(req("POST", "/", "expect", "100-continue"))},
		{name: "100-continue, body read", handler: echo, noRead: true, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "expect", "100-continue", "content-length", "5"))
			c.waitFor("100", func() bool { st := c.tr.Streams[1]; return st != nil && len(st.Info) > 0 })
			c.data(1, true, []byte("hello"))
		}},
		// The DATA goes after the response: sent while the handler runs,
		// its STREAM_CLOSED reset races the handler's answer on either
		// server (which one wins is timing, and both are right).
		{name: "DATA after trailers", handler: echo, noRead: true, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "trailer", "x-t"))
			c.data(1, false, []byte("a"))
			c.headers(1, true, fields("x-t", "v"))
			c.waitStream(1)
			c.data(1, true, []byte("b"))
			c.barrier()
		}},
		{name: "trailers without END_STREAM", handler: echo, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "trailer", "x-t"))
			c.data(1, false, []byte("a"))
			e.waitStarted(1) // the malformed trailers reset the stream: let the handler be in it first
			c.headerFrames(1, false, true, fields("x-t", "v"))
		}},
		{name: "trailers with a pseudo-header", handler: echo, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "trailer", "x-t"))
			c.data(1, false, []byte("a"))
			e.waitStarted(1) // the malformed trailers reset the stream: let the handler be in it first
			c.headerFrames(1, true, true, fields(":path", "/x", "x-t", "v"))
		}},
		{name: "trailers over MaxHeaderBytes", handler: echo, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "trailer", "x-fill-0000"))
			c.data(1, false, []byte("a"))
			e.waitStarted(1) // the malformed trailers reset the stream: let the handler be in it first
			c.headerFrames(1, true, true, fillFields(0, 14), fillFields(14, 6))
		}},
		{name: "trailers with a connection field", handler: echo, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "trailer", "connection, x-t"))
			c.data(1, false, []byte("a"))
			e.waitStarted(1)
			c.headers(1, true, fields("connection", "close", "x-t", "v"))
		}},
		{name: ":path with a space", script: send(req("GET", "/a b")), // see TestDiffRequests' "space in :path's query"
			netHTTPWrong: "it serves it, r.URL.Path \"/a b\"",
			want:         refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		{name: ":path with a tab", script: send(req("GET", "/a\tb"))},
		{name: ":path with #", script: send(req("GET", "/a#b?c"))},
		{name: ":path with %00", script: send(req("GET", "/a%00b"))},
		{name: ":method with a space", script: send(req("GET /x", "/"))},
		{name: ":method lower case", script: send(req("get", "/"))},
		{name: ":authority with a port and trailing dot", script: send(fields(":method", "GET", ":scheme", "https", ":authority", "example.com.:8443", ":path", "/"))},
		{name: "header value with surrounding spaces", script: send(req("GET", "/", "x-a", " v "))},
		{name: "te: trailers, deflate", script: send(req("GET", "/", "te", "trailers, deflate"))},
		{name: "two te fields", script: send(req("GET", "/", "te", "trailers", "te", "trailers"))},
		{name: "cookie fields with empty", script: send(req("GET", "/", "cookie", "a=1", "cookie", "", "cookie", "b=2"))},
		{name: "content-length with leading zeros", handler: echo, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "content-length", "005"))
			c.data(1, true, []byte("hello"))
		}},
		{name: "CONNECT echo", handler: echo, script: func(c *client, e *env) {
			c.headers(1, false, fields(":method", "CONNECT", ":authority", "example.com:443"))
			c.data(1, true, []byte("tunnel"))
		}},
		{name: "padding-only DATA frames", handler: echo, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/"))
			for range 300 {
				c.dataPadded(1, false, nil, make([]byte, 255))
			}
			c.data(1, true, []byte("x"))
		}},
	})
}
