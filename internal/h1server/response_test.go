package h1server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// scripts are handlers exercising what a ResponseWriter decides: length
// or chunking, sniffing, trailers, Connection, 1xx, bad fields, and
// handlers that break the rules.
var scripts = map[string]http.HandlerFunc{
	"short": func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") },
	"html": func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<!DOCTYPE html><html><body>hi</body></html>")
	},
	"nothing": func(w http.ResponseWriter, r *http.Request) {},
	"proxied": func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", "5")
		h.Set("X-Request-Id", "abc")
		h["X-Content-Type-Options"] = []string{"nosniff"}
		w.WriteHeader(200)
		_, _ = w.Write([]byte("hello"))
		h.Set("X-After", "ignored")
	},
	// A proxy handing over its upstream's header map (AdoptHeader); under
	// net/http the same fields go through Header.
	"adopted": func(w http.ResponseWriter, r *http.Request) {
		h := http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"5"}, "X-Up": {"1", "2"}}
		if a, ok := w.(interface{ AdoptHeader(http.Header) bool }); !ok || !a.AdoptHeader(h) {
			for k, vv := range h {
				w.Header()[k] = vv
			}
			h = w.Header()
		}
		h.Set("X-Request-Id", "abc") // a response filter's edit
		w.WriteHeader(200)
		_, _ = w.Write([]byte("hello"))
		h.Set("X-After", "ignored")
	},
	// A proxy reading its upstream's fields straight into the
	// response's own map (EmptyHeader); under net/http, through Header.
	"lent": func(w http.ResponseWriter, r *http.Request) {
		var h http.Header
		if l, ok := w.(interface{ EmptyHeader() http.Header }); ok {
			h = l.EmptyHeader()
		} else {
			h = w.Header()
		}
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{"5"}
		h["X-Up"] = []string{"1", "2"}
		h.Set("X-Request-Id", "abc")
		w.WriteHeader(200)
		_, _ = w.Write([]byte("hello"))
		h.Set("X-After", "ignored")
	},
	// Too late to adopt once Header was called: the map the handler
	// already holds stays the response's.
	"adopt-refused": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Early", "kept")
		adopted := false
		if a, ok := w.(interface{ AdoptHeader(http.Header) bool }); ok {
			adopted = a.AdoptHeader(http.Header{"X-Adopted": {"1"}})
		}
		_, _ = fmt.Fprintf(w, "adopted=%v", adopted)
	},
	"proxied-large": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", "100000")
		for i := range 10 {
			_, _ = w.Write([]byte(strings.Repeat(string(rune('a'+i)), 10000)))
		}
	},
	"length-no-type": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "6")
		_, _ = io.WriteString(w, "%PDF-1")
	},
	"encoded-no-type": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", "3")
		_, _ = io.WriteString(w, "\x1f\x8b\x08")
	},
	"chunked-large": func(w http.ResponseWriter, r *http.Request) {
		for range 3 {
			_, _ = io.WriteString(w, strings.Repeat("x", 1500))
		}
	},
	"flushed": func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "one ")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "two")
	},
	"controller-flush": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_ = http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, "data: 1\n\n")
		_ = http.NewResponseController(w).Flush()
	},
	"no-content": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Transfer-Encoding", "chunked")
		w.WriteHeader(204)
		_, err := io.WriteString(w, "body")
		w.Header().Set("X-Err", fmt.Sprint(err))
	},
	"not-modified": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "5")
		w.Header().Set("Etag", `"x"`)
		w.WriteHeader(304)
	},
	"untouched-header-204": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) },
	"trailers": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum, Content-Length, X-Other")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "data")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "7")
	},
	"trailer-prefix-only": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(http.TrailerPrefix+"X-Early", "1")
		_, _ = io.WriteString(w, "data")
	},
	"bad-fields": func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Bad Name"] = []string{"x"}
		h["X-Split"] = []string{"a\r\nSet-Cookie: evil=1", " padded\t", "\xff\xfe\rx\n"}
		h["X-Empty"] = nil
		_, _ = io.WriteString(w, "ok")
	},
	"handler-close": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	},
	"handler-close-token": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive, close")
		_, _ = io.WriteString(w, "bye")
	},
	"early-hints": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.Header().Set("Content-Length", "9")
		w.WriteHeader(103)
		w.WriteHeader(100)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "ok")
	},
	"superfluous": func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.WriteHeader(500)
		_, _ = io.WriteString(w, "x")
	},
	"too-much": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		w.Header().Set("Content-Type", "text/plain")
		_, err := io.WriteString(w, "abcdef")
		_, _ = io.WriteString(w, fmt.Sprint(err)[:0])
	},
	"too-little": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "abc")
	},
	"identity": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "identity")
		_, _ = io.WriteString(w, "until close")
	},
	"te-chunked": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked")
		_, _ = io.WriteString(w, "abc")
	},
	"te-and-length": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked")
		w.Header().Set("Content-Length", "3")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "abc")
	},
	"invalid-length": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "abc")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "abc")
	},
	"invalid-length-204": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "-1")
		w.WriteHeader(204)
	},
	"odd-status": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(799) },
	"status-418": func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(418)
		_, _ = io.WriteString(w, "teapot")
	},
	"header-after-writeheader": func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.Header().Set("X-Late", "1")
		_, _ = io.WriteString(w, "x")
	},
	"header-touched-then-changed": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-A", "1")
		w.WriteHeader(202)
		w.Header().Set("X-A", "2")
		w.Header().Set("Content-Type", "text/x")
		_, _ = io.WriteString(w, "x")
	},
	"write-string": func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.(io.StringWriter).WriteString("via WriteString")
	},
	"date-set": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", "Thu, 01 Jan 1970 00:00:00 GMT")
		_, _ = io.WriteString(w, "x")
	},
	"switching-without-upgrade": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "x")
		w.WriteHeader(101)
	},
	"panic": func(w http.ResponseWriter, r *http.Request) { panic("boom") },
	"abort": func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) },
	// As the engine does when the upstream's body breaks off.
	"abort-after-head": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, "0123456789")
		panic(http.ErrAbortHandler)
	},
}

// TestResponsesMatchNetHTTP: for each script, as a GET and as a HEAD,
// alone and followed by a second request on the connection, both servers
// send the same bytes (Date values aside) and both keep or close the
// connection alike.
func TestResponsesMatchNetHTTP(t *testing.T) {
	t.Parallel()
	p := newPair(t, func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if h, ok := scripts[name]; ok {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, "next")
	}, nil)
	for name := range scripts {
		for _, method := range []string{"GET", "HEAD"} {
			for _, variant := range []struct{ suffix, extra string }{
				{"", ""},
				{"+next", "GET /next HTTP/1.1\r\nHost: t\r\n\r\n"},
				{"+client-close", ""},
			} {
				t.Run(method+" "+name+variant.suffix, func(t *testing.T) {
					conn := ""
					if variant.suffix == "+client-close" {
						conn = "Connection: close\r\n"
					}
					raw := fmt.Sprintf("%s /%s HTTP/1.1\r\nHost: t\r\n%s\r\n%s", method, name, conn, variant.extra)
					before := p.fastServed.Load()
					want := exchange(t, p.ref, []byte(raw))
					got := exchange(t, p.fast, []byte(raw))
					if got != want {
						t.Fatalf("responses differ\nnet/http: %q\nh1server: %q", want, got)
					}
					if p.fastServed.Load()-before == 0 {
						t.Fatal("not served by h1server")
					}
				})
			}
		}
	}
}

// FuzzWriteFieldsMatchesWriteSubset holds writeFields to net/http's
// Header.WriteSubset, which net/http's server writes a response head
// with: the same bytes for any map, excluded names and all. Each input
// line is one "name:value" field; names that start with "Ex" are
// excluded.
func FuzzWriteFieldsMatchesWriteSubset(f *testing.F) {
	f.Add("Content-Type:text/plain\nContent-Length:5\nX-B: b \nX-A:a\r\nb\nExclude:1")
	f.Add("bad name:1\nX:\nX: two\nZ\x00:1\nA:\x7f")
	var many strings.Builder
	for i := 40; i > 0; i-- {
		fmt.Fprintf(&many, "X-%02d:%d\nEx-%d:1\n", i, i, i)
	}
	f.Add(many.String())
	f.Fuzz(func(t *testing.T, in string) {
		h := http.Header{}
		exclude := map[string]bool{}
		for _, line := range strings.Split(in, "\n") {
			name, value, _ := strings.Cut(line, ":")
			h[name] = append(h[name], value)
			if strings.HasPrefix(name, "Ex") {
				exclude[name] = true
			}
		}
		var want strings.Builder
		if err := h.WriteSubset(&want, exclude); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		bw := bufio.NewWriter(&got)
		writeFields(bw, h, exclude)
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("fields differ for %q\nWriteSubset: %q\nwriteFields: %q", in, want.String(), got.String())
		}
	})
}
