package h2server_test

// Differential tests: one scripted client exchange against net/http's
// HTTP/2 server and against Gatehouse's; the two transcripts (what the
// client received, stream by stream, and what the handler saw) must be
// equal. The "nethttp" subtests check the scripts against the reference;
// the "gatehouse" ones run both and diff them (-nethttp +gatehouse).

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"gatehouse/internal/testutil"
)

// get is the script of a plain GET of path on stream 1.
func get(path string) func(c *client, e *env) {
	return func(c *client, e *env) { c.headers(1, true, req("GET", path)) }
}

// send is a script that sends hf on stream 1 with END_STREAM.
func send(hf []hpack.HeaderField) func(c *client, e *env) {
	return func(c *client, e *env) { c.headers(1, true, hf) }
}

// waitStarted waits for n handlers to have started.
func (e *env) waitStarted(n int64) bool {
	return testutil.WaitFor(waitTimeout, func() bool { return e.started.Load() >= n })
}

func TestDiffRequests(t *testing.T) {
	runExchanges(t, false, []exchange{
		{name: "GET", script: get("/a")},
		{name: "GET with query", script: get("/a/b?c=d&e=%20f&g")},
		{name: "OPTIONS /", script: send(req("OPTIONS", "/"))},
		{name: "HEAD", script: send(req("HEAD", "/h"))},
		{name: "HEAD, handler writes a body", script: send(req("HEAD", "/h")),
			handler: func(e *env, w http.ResponseWriter, r *http.Request) { w.Write(pattern(100)) }},
		{name: "POST Content-Length in 1 DATA", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/p", "content-length", "5"))
			c.data(1, true, []byte("hello"))
		}},
		{name: "POST Content-Length in 3 DATA", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/p", "content-length", "11", "content-type", "text/plain"))
			c.data(1, false, []byte("hel"))
			c.data(1, false, []byte("lo "))
			c.data(1, true, []byte("world"))
		}},
		{name: "POST without Content-Length", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/p"))
			c.data(1, false, []byte("hello "))
			c.data(1, true, []byte("world"))
		}},
		{name: "POST empty END_STREAM DATA", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/p"))
			c.data(1, false, []byte("hello"))
			c.data(1, true, nil)
		}},
		{name: "POST with padding", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/p", "content-length", "5"))
			c.dataPadded(1, false, []byte("he"), make([]byte, 7))
			c.dataPadded(1, true, []byte("llo"), make([]byte, 200))
		}},
		{name: "POST 300 KiB body, read", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/p", "content-length", "307200"))
			c.body(1, pattern(300<<10), true)
		}},
		{name: "request trailers", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/t", "trailer", "x-t, x-u", "content-length", "5"))
			c.data(1, false, []byte("hello"))
			c.headers(1, true, fields("x-t", "v1", "x-u", "v2"))
		}},
		{name: "request trailers, undeclared", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/t"))
			c.data(1, false, []byte("hello"))
			c.headers(1, true, fields("x-t", "v1"))
		}},
		{name: "two cookie fields", script: send(req("GET", "/", "cookie", "a=1", "cookie", "b=2", "cookie", "c=3"))},
		{name: "repeated regular field", script: send(req("GET", "/", "x-a", "1", "x-a", "2", "accept", "text/html"))},
		// The host field is the authority, not a header the handler
		// sees: HTTP/1 net/http removes Host from r.Header, and so does
		// x/net's newer HTTP/2 server; Go 1.26's copy keeps it.
		{name: "host instead of :authority", script: send(fields(":method", "GET", ":scheme", "https", ":path", "/", "host", "example.org")),
			netHTTPWrong: "Host stays in r.Header", want: hostNotInHeader, normalize: dropHostHeader},
		{name: ":authority and the same host", script: send(req("GET", "/", "host", authority)),
			netHTTPWrong: "Host stays in r.Header", want: hostNotInHeader, normalize: dropHostHeader},
		// RFC 9113 §8.3.1: a host that differs from :authority makes the
		// request malformed. Two names for the target is host confusion
		// (routed by one, authorized or forwarded by the other); newer
		// x/net/http2 rejects it (authority_host_mismatch), as HTTP/1
		// net/http rejects two Host fields.
		{name: ":authority and another host", script: send(req("GET", "/", "host", "example.org")),
			netHTTPWrong: "it serves it, r.Host from :authority and Header Host the other name",
			want:         refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		{name: "two host fields", script: send(fields(":method", "GET", ":scheme", "https", ":path", "/", "host", "example.org", "host", authority)),
			netHTTPWrong: "it serves it, r.Host the first",
			want:         refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		{name: ":authority not a valid host", script: send(fields(":method", "GET", ":scheme", "https", ":authority", "example.com/../x y", ":path", "/")),
			netHTTPWrong: "it serves it, r.Host \"example.com/../x y\" (HTTP/1 net/http answers 400 to such a Host)",
			want:         refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		{name: "no :authority nor host", script: send(fields(":method", "GET", ":scheme", "https", ":path", "/"))},
		// RFC 9113 §8.3.1: a present :authority is the target's, and
		// Host may not stand in for it; empty, the URI is invalid (RFC
		// 9110 §4.2.1).
		{name: "empty :authority and a host", script: send(fields(":method", "GET", ":scheme", "https", ":authority", "", ":path", "/", "host", "example.org")),
			netHTTPWrong: "it reads an empty :authority as absent and serves the request as example.org",
			want:         refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		{name: "empty :authority", script: send(fields(":method", "GET", ":scheme", "https", ":authority", "", ":path", "/")),
			netHTTPWrong: "it serves it, with an empty r.Host",
			want:         refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		{name: ":authority with userinfo", script: send(fields(":method", "GET", ":scheme", "https", ":authority", "u@example.com", ":path", "/"))},
		{name: "te: trailers", script: send(req("GET", "/", "te", "trailers"))},
		// RFC 9113 §8.3.1: :path is the origin-form (or "*"); an
		// absolute-form :path gives the handler an r.URL whose host is
		// not r.Host. Newer x/net/http2 rejects it (bad_path).
		{name: "absolute :path", script: send(req("GET", "https://other.example/x")),
			netHTTPWrong: "it serves it, r.URL.Host other.example and r.Host example.com",
			want:         refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		{name: "OPTIONS *", script: send(req("OPTIONS", "*"))},
		// RFC 9113 §8.3.1: :path is absolute-path ["?" query], which has
		// no space (RFC 3986 §3). A space in the path is escaped when it
		// goes upstream, but the query goes as it is, and over HTTP/1.1
		// "GET /x?a b HTTP/1.1" is a request line each parser splits its
		// own way.
		{name: "space in :path's query", script: send(req("GET", "/x?a /admin")),
			netHTTPWrong: "it serves it, r.URL.RawQuery \"a /admin\", which ReverseProxy writes upstream as it is",
			want:         refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		{name: ":scheme http", script: send(fields(":method", "GET", ":scheme", "http", ":authority", authority, ":path", "/"))},
		{name: "extended CONNECT", script: func(c *client, e *env) {
			c.headers(1, false, fields(":method", "CONNECT", ":protocol", "websocket", ":scheme", "https",
				":authority", authority, ":path", "/ws", "sec-websocket-version", "13"))
			c.data(1, true, []byte("x"))
		}},
		{name: "CONNECT", script: func(c *client, e *env) {
			c.headers(1, false, fields(":method", "CONNECT", ":authority", "example.com:443"))
			c.data(1, true, []byte("x"))
		}},
		{name: "two streams", script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/one"))
			c.headers(3, true, req("GET", "/two"))
		}},
		// Credentials sent never indexed, as nghttp2 and browsers do:
		// the server decodes a repeated one from its cache (headers.go).
		{name: "a token repeated, changed, repeated", script: func(c *client, e *env) {
			a, c2 := "Bearer "+strings.Repeat("a", 600), "Bearer "+strings.Repeat("c", 600)
			for i, tok := range []string{a, a, c2, a} {
				id := uint32(2*i + 1)
				c.headers(id, true, append(req("GET", "/"), hpack.HeaderField{Name: "authorization", Value: tok, Sensitive: true}))
				c.waitStream(id)
			}
		}},
	})
}

func TestDiffResponses(t *testing.T) {
	write := func(b []byte) handlerFunc {
		return func(e *env, w http.ResponseWriter, r *http.Request) { w.Write(b) }
	}
	header := func(kv ...string) handlerFunc {
		return func(e *env, w http.ResponseWriter, r *http.Request) {
			for i := 0; i < len(kv); i += 2 {
				w.Header().Add(kv[i], kv[i+1])
			}
			io.WriteString(w, "ok")
		}
	}
	runExchanges(t, false, []exchange{
		{name: "nothing written", script: get("/"), handler: func(*env, http.ResponseWriter, *http.Request) {}},
		{name: "100 bytes", script: get("/"), handler: write(pattern(100))},
		{name: "10 KiB", script: get("/"), handler: write(pattern(10 << 10))},
		{name: "200 KiB", script: get("/"), handler: write(pattern(200 << 10))},
		{name: "sniffed HTML", script: get("/"), handler: write([]byte("<!DOCTYPE html><html><body>hi"))},
		{name: "sniffed binary", script: get("/"), handler: write([]byte{0, 1, 2, 3, 0xff})},
		{name: "Content-Type set", script: get("/"), handler: header("Content-Type", "application/json")},
		{name: "Content-Type empty", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "<html>")
		}},
		{name: "Content-Length set", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}},
		{name: "Content-Length set, short write", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "hello")
		},
			// A response shorter than its content-length is malformed
			// (RFC 9113 §8.1.1): ending it cleanly passes a truncated body
			// off as whole. net/http/1 closes the connection instead.
			netHTTPWrong: "it ends the stream cleanly after 5 of 10 declared bytes",
			want: func(tr transcript) error {
				if st := tr.Streams[1]; st == nil || st.RST == "" || st.EndStream {
					return fmt.Errorf("want RST_STREAM and no END_STREAM after the 5 bytes; got %v", tr)
				}
				return nil
			},
			normalize: func(tr *transcript) {
				if st := tr.Streams[1]; st != nil {
					st.EndStream, st.RST = false, ""
				}
			}},
		{name: "Content-Length set, long write", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "3")
			_, err := io.WriteString(w, "hello")
			e.note("write: " + errClass(err))
		},
			// net/http/1 refuses the write (ErrContentLength) and sends no
			// more than declared; an HTTP/2 response whose DATA exceeds its
			// content-length is malformed (RFC 9113 §8.1.1), and an
			// intermediary that downgrades it to HTTP/1.1 frames the excess
			// as the start of the next response: response splitting.
			netHTTPWrong: "it sends 5 bytes of DATA under content-length: 3, and the Write succeeds",
			want: func(tr transcript) error {
				st := tr.Streams[1]
				if st == nil || len(st.body) > 3 || len(st.body) < 3 && st.RST == "" {
					return fmt.Errorf("want at most the 3 declared bytes, and RST_STREAM if fewer; got %v", tr)
				}
				if len(tr.Wrote) != 1 || tr.Wrote[0] != "write: error" {
					return fmt.Errorf("want the Write beyond Content-Length to fail; the handler noted %q", tr.Wrote)
				}
				return nil
			},
			normalize: func(tr *transcript) {
				if st := tr.Streams[1]; st != nil {
					st.Body, st.EndStream, st.RST = "", false, ""
					delete(st.Headers, "content-type")
				}
				tr.Wrote = nil
			}},
		// The header as WriteHeader found it (headerList), and the fields
		// the server itself reads from it.
		{name: "Content-Length nil", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Length"] = nil
			io.WriteString(w, "hello")
		}},
		{name: "Content-Length empty", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Length"] = []string{""}
			io.WriteString(w, "hello")
		}},
		{name: "Content-Length not a number", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5x")
			io.WriteString(w, "hello")
		}},
		{name: "Date nil", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header()["Date"] = nil
			io.WriteString(w, "ok")
		}},
		{name: "Date set", script: get("/"), handler: header("Date", "Mon, 02 Jan 2006 15:04:05 GMT")},
		{name: "Content-Encoding without a type", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, "<html>")
		}},
		{name: "header changed after WriteHeader", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-A", "before")
			w.Header().Add("X-M", "1")
			w.Header().Set("Content-Type", "text/x-before")
			w.WriteHeader(http.StatusAccepted)
			w.Header().Set("X-A", "after")
			w.Header()["X-M"][0] = "changed in place"
			w.Header().Add("X-M", "2")
			w.Header().Set("X-B", "after")
			w.Header().Del("Content-Type")
			w.Header().Set("Connection", "close")
			io.WriteString(w, "<html>")
		}},
		// A proxy handing over its upstream's header map (AdoptHeader, as
		// h1server's); net/http's writer has no such method and the
		// fields go through Header.
		{name: "adopted header", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			h := http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"5"}, "X-Up": {"1", "2"}}
			if a, ok := w.(interface{ AdoptHeader(http.Header) bool }); !ok || !a.AdoptHeader(h) {
				for k, vv := range h {
					w.Header()[k] = vv
				}
				h = w.Header()
			}
			h.Set("X-Request-Id", "abc") // a response filter's edit
			w.WriteHeader(200)
			io.WriteString(w, "hello")
			h.Set("X-After", "not sent")
		}},
		{name: "adopt after Header", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Early", "kept")
			if a, ok := w.(interface{ AdoptHeader(http.Header) bool }); ok && a.AdoptHeader(http.Header{"X-Adopted": {"1"}}) {
				e.note("adopted a map after Header")
			}
			io.WriteString(w, "ok")
		}},
		{name: "many fields", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			for i := range 40 {
				w.Header().Add(fmt.Sprintf("X-F%d", i%20), strconv.Itoa(i))
			}
			io.WriteString(w, "ok")
		}},
		{name: "204", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
			io.WriteString(w, "body not allowed")
		}},
		{name: "304", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"x"`)
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusNotModified)
		}},
		{name: "404 from http.NotFound", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }},
		{name: "WriteHeader twice", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(201)
			w.WriteHeader(202)
		}},
		{name: "Flush then write", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		}},
		{name: "Flush before writing", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-A", "1")
			w.(http.Flusher).Flush()
			w.Header().Set("X-B", "ignored")
		}},
		{name: "declared trailers", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-T, X-Unset")
			io.WriteString(w, "body")
			w.Header().Set("X-T", "v")
		}},
		{name: "declared trailers, no body", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-T")
			w.Header().Set("X-T", "v")
		}},
		{name: "TrailerPrefix trailers", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"X-U", "u")
			w.Header().Set(http.TrailerPrefix+"Content-Length", "forbidden as a trailer")
		}},
		{name: "103 then 200", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</s.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Link", "</t.js>; rel=preload; as=script")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "ok")
		}},
		{name: "panic", script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/"))
			c.waitStream(1)
			e.waitLog("panic")
		}, handler: func(*env, http.ResponseWriter, *http.Request) { panic("boom") }},
		{name: "panic after a flushed write", script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/"))
			c.waitStream(1)
			e.waitLog("panic")
		}, handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic("boom")
		}},
		{name: "panic ErrAbortHandler", script: get("/"),
			handler: func(*env, http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }},
		{name: "read the body then answer", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/"))
			c.body(1, pattern(100<<10), true)
		}, handler: func(e *env, w http.ResponseWriter, r *http.Request) { io.WriteString(w, "read") }},
		{name: "answer without reading a 1 MiB body", noRead: true, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "content-length", "1048576"))
			c.data(1, false, pattern(16<<10))
			c.barrier() // the server has the first part; the handler answers now
			e.releaseAll()
			c.waitStream(1)
		}, handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			<-e.release
			io.WriteString(w, "not read")
		}},
		{name: "Connection: close", script: get("/"), handler: header("Connection", "close")},
		{name: "Connection and Transfer-Encoding headers", script: get("/"),
			handler: header("Connection", "keep-alive", "Transfer-Encoding", "chunked")},
		{name: "other connection-specific headers", script: get("/"),
			handler: header("Keep-Alive", "timeout=5", "Upgrade", "h2c", "Proxy-Connection", "keep-alive", "TE", "trailers"),
			// RFC 9113 §8.2.2: an endpoint MUST NOT generate them, and a
			// message with them is malformed (strict clients reject the
			// response). A proxy must not let an upstream's hop-by-hop
			// Upgrade or Keep-Alive through to the client's hop.
			netHTTPWrong: "it strips Connection and Transfer-Encoding only, and sends keep-alive, upgrade, proxy-connection and te",
			want: func(tr transcript) error {
				if st := tr.Streams[1]; st != nil {
					for _, k := range connectionSpecific {
						if v, ok := st.Headers[k]; ok {
							return fmt.Errorf("response has %s: %q", k, v)
						}
					}
				}
				return nil
			},
			normalize: func(tr *transcript) {
				if st := tr.Streams[1]; st != nil {
					for _, k := range connectionSpecific {
						delete(st.Headers, k)
					}
				}
			}},
		{name: "invalid header field", script: get("/"), handler: header("X-Bad", "a\r\nInjected: 1", "X Space", "v", "X-Good", "v")},
		{name: "two Set-Cookie", script: get("/"), handler: header("Set-Cookie", "a=1", "Set-Cookie", "b=2")},
		{name: "uppercase and odd header names", script: get("/"), handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.Header()["X-MiXeD"] = []string{"1"}
			w.Header()["lower"] = []string{"2"}
			io.WriteString(w, "ok")
		}},
		{name: "Write error after client RST", script: func(c *client, e *env) {
			c.headers(1, true, req("GET", "/"))
			c.waitHeaders(1)
			c.rst(1, http2.ErrCodeCancel)
			e.releaseAll()
		}, handler: func(e *env, w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			<-e.release
			<-r.Context().Done()
			var err error
			for i := 0; err == nil && i < 10<<10; i++ {
				_, err = w.Write(pattern(1 << 10))
			}
			e.note("write after RST: " + errClass(err))
		}},
	})
}

// wantRefused checks that the malformed request on stream 1 did not
// reach the handler as a good one: either it was refused before the
// handler (RST_STREAM or GOAWAY PROTOCOL_ERROR, or, as net/http does for
// connection-specific fields, a 4xx answer), or the handler was told by
// its body read's error.
func wantRefused(t *testing.T, tr transcript) {
	t.Helper()
	st := tr.Streams[1]
	refused := tr.GoAway == "PROTOCOL_ERROR" ||
		st != nil && (st.RST == "PROTOCOL_ERROR" || strings.HasPrefix(tr.status(1), "4"))
	switch {
	case len(tr.Saw) == 0 && refused:
	case len(tr.Saw) == 1 && tr.Saw[0].BodyErr != "":
	default:
		t.Errorf("the malformed request was served: %v\nthe handler saw %+v", tr, tr.Saw)
	}
}

// refusedBeforeHandler requires stream 1 refused with PROTOCOL_ERROR (by
// RST_STREAM or GOAWAY) and the handler never called.
func hostNotInHeader(tr transcript) error {
	for _, v := range tr.Saw {
		if _, ok := v.Header["Host"]; ok {
			return fmt.Errorf("the handler saw Host in its Header: %+v", v.Header)
		}
	}
	return nil
}

func dropHostHeader(tr *transcript) {
	for i := range tr.Saw {
		delete(tr.Saw[i].Header, "Host")
		if len(tr.Saw[i].Header) == 0 {
			tr.Saw[i].Header = nil
		}
	}
}

func refusedBeforeHandler(tr transcript) error {
	st := tr.Streams[1]
	if (st == nil || st.RST != "PROTOCOL_ERROR") && tr.GoAway != "PROTOCOL_ERROR" || len(tr.Saw) != 0 {
		return fmt.Errorf("want RST_STREAM or GOAWAY PROTOCOL_ERROR before any handler; got %v, the handler saw %+v", tr, tr.Saw)
	}
	return nil
}

// connectionSpecific are the response header fields RFC 9113 §8.2.2
// forbids (te is allowed in requests only, as "trailers").
var connectionSpecific = []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}

func TestDiffMalformed(t *testing.T) {
	bad := func(name string, hf []hpack.HeaderField) exchange {
		return exchange{name: name, script: send(hf), check: wantRefused}
	}
	badBody := func(name, cl string, parts ...string) exchange {
		return exchange{name: name, check: wantRefused, script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "content-length", cl))
			e.waitStarted(1)
			for i, p := range parts {
				c.data(1, i == len(parts)-1, []byte(p))
			}
		}}
	}
	runExchanges(t, false, []exchange{
		bad("missing :method", fields(":scheme", "https", ":authority", authority, ":path", "/")),
		bad("missing :path", fields(":method", "GET", ":scheme", "https", ":authority", authority)),
		bad("missing :scheme", fields(":method", "GET", ":authority", authority, ":path", "/")),
		bad(":path without a leading slash", req("GET", "x/y")),
		bad("empty :path", fields(":method", "GET", ":scheme", "https", ":authority", authority, ":path", "")),
		bad("bad :scheme", fields(":method", "GET", ":scheme", "ftp", ":authority", authority, ":path", "/")),
		bad("duplicate :path", req("GET", "/", ":path", "/again")),
		bad("duplicate :method", req("GET", "/", ":method", "POST")),
		bad("CONNECT with :path", fields(":method", "CONNECT", ":authority", authority, ":path", "/")),
		bad("CONNECT without :authority", fields(":method", "CONNECT")),
		bad("connection field", req("GET", "/", "connection", "keep-alive")),
		bad("keep-alive field", req("GET", "/", "keep-alive", "timeout=5")),
		bad("proxy-connection field", req("GET", "/", "proxy-connection", "keep-alive")),
		bad("transfer-encoding field", req("POST", "/", "transfer-encoding", "chunked")),
		bad("upgrade field", req("GET", "/", "upgrade", "websocket")),
		bad("te: gzip", req("GET", "/", "te", "gzip")),
		bad("uppercase header name", req("GET", "/", "X-Upper", "1")),
		bad("header name with a space", req("GET", "/", "x a", "1")),
		bad("empty header name", req("GET", "/", "", "1")),
		bad("header value with LF", req("GET", "/", "x-a", "a\nb")),
		bad("header value with NUL", req("GET", "/", "x-a", "a\x00b")),
		bad("pseudo header after regular", fields(":method", "GET", ":scheme", "https", "x-a", "1", ":authority", authority, ":path", "/")),
		bad("pseudo header after regular, the request complete before it", req("GET", "/", "x-a", "1", ":path", "/other")),
		// The size of what follows an invalid field is no longer
		// counted: any CONTINUATION after one ends the connection.
		{name: "CONTINUATION after an invalid field", check: wantRefused, script: func(c *client, e *env) {
			c.headerFrames(1, true, true, req("GET", "/", "x-a", "a\nb"), fields("x-b", "2"))
		}},
		bad("unknown pseudo header", req("GET", "/", ":foo", "bar")),
		bad(":status in a request", req("GET", "/", ":status", "200")),
		bad(":protocol on GET", req("GET", "/", ":protocol", "websocket")),
		badBody("DATA beyond Content-Length", "3", "hello"),
		badBody("DATA beyond Content-Length across frames", "5", "abc", "def"),
		badBody("END_STREAM before Content-Length", "10", "hello"),
		badBody("END_STREAM with no DATA for Content-Length", "10", ""),
		{name: "Content-Length not a number", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "content-length", "five"))
			c.data(1, true, []byte("hello"))
		}, netHTTPWrong: "it serves the request with ContentLength 0 and Content-Length five in its Header",
			want: refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		// RFC 9113 §8.1.1 (content-length must equal the DATA's length)
		// and RFC 9110 §8.6 (differing values are unrecoverable): a
		// handler (a proxy) shown a Content-Length header that is not the
		// body's length is what request smuggling is made of; HTTP/1
		// net/http answers 400 to two values.
		{name: "two Content-Length values", script: func(c *client, e *env) {
			c.headers(1, false, req("POST", "/", "content-length", "5", "content-length", "6"))
			c.data(1, true, []byte("hello"))
		}, netHTTPWrong: "it serves the request, Content-Length [5 6] in the handler's Header",
			want: refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
		{name: "Content-Length on a GET with END_STREAM", script: send(req("GET", "/", "content-length", "5")),
			netHTTPWrong: "it serves the request, Header Content-Length 5 with ContentLength 0 and no body",
			want:         refusedBeforeHandler, normalize: func(tr *transcript) { *tr = transcript{} }},
	})
}
