package h1server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkServe: one keep-alive connection, GET after GET, to a handler
// that answers the way a proxied response does (Content-Type and
// Content-Length set, 100 bytes), behind this server (with and without
// ReuseRequestHeaders, which the plain listeners turn on) and behind
// net/http's. The client's work is in all. The handler's own allocations
// (three value slices and the response header map) are 5 of each count.
func BenchmarkServe(b *testing.B) {
	benchServe(b, nil, "GET /kline/api/candles?symbol=BTC HTTP/1.1\r\nHost: 127.0.0.1:6188\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
}

// BenchmarkServePOST is BenchmarkServe with a POST of a 1 KiB body
// (Content-Length) that the handler reads to its end before it answers,
// as a proxy sends a body upstream first.
func BenchmarkServePOST(b *testing.B) {
	readBody := func(r *http.Request) {
		if n, err := io.Copy(io.Discard, r.Body); n != 1024 || err != nil {
			panic(fmt.Sprint("body: ", n, err))
		}
	}
	benchServe(b, readBody, "POST /kline/api/orders HTTP/1.1\r\nHost: 127.0.0.1:6188\r\nUser-Agent: bench\r\nAccept: */*\r\n"+
		"Content-Type: application/json\r\nContent-Length: 1024\r\n\r\n"+strings.Repeat("x", 1024))
}

// benchServe sends request, again and again on one keep-alive connection,
// to a handler that first calls read (if set) and then answers the way a
// proxied response does, behind this server (with and without reused
// header maps) and behind net/http's.
func benchServe(b *testing.B, read func(*http.Request), request string) {
	body := make([]byte, 100)
	h := func(w http.ResponseWriter, r *http.Request) {
		if read != nil {
			read(r)
		}
		hd := w.Header()
		hd["Content-Type"] = []string{"text/plain"}
		hd["Content-Length"] = []string{"100"}
		hd["X-Request-Id"] = []string{"0123456789abcdef"}
		w.WriteHeader(200)
		_, _ = w.Write(body)
	}
	p := newPair(b, h, nil)
	reuse := newPairWith(b, h, nil, func(s *Server) { s.ReuseRequestHeaders(true) })
	req := []byte(request)
	for _, srv := range []struct {
		name string
		l    *pairListener
	}{{"h1server", p.fast}, {"h1server-reuse", reuse.fast}, {"net-http", p.ref}} {
		b.Run(srv.name, func(b *testing.B) {
			c := srv.l.dial(b)
			defer c.Close()
			br := bufio.NewReaderSize(c, 4096)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				// The head, then exactly its 100-byte body.
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						b.Fatal(err)
					}
					if len(line) == 2 {
						break
					}
				}
				if _, err := io.ReadFull(br, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
