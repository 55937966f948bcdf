package h1server

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"gatehouse/internal/h1guard"
)

// bodyHandlers do what handlers do with a request body: read it all,
// part of it, none of it, after the response, or close it; each writes
// what it saw, so that the answer shows it.
var bodyHandlers = map[string]http.HandlerFunc{
	"read": dump,
	"ignore": func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "not read")
	},
	"ignore-flush": func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "not read, flushed")
		w.(http.Flusher).Flush()
		b, err := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, " then %d bytes, %v", len(b), err)
	},
	"partial": func(w http.ResponseWriter, r *http.Request) {
		p := make([]byte, 3)
		n, err := io.ReadFull(r.Body, p)
		_, _ = fmt.Fprintf(w, "read %q %v", p[:n], err)
	},
	"close": func(w http.ResponseWriter, r *http.Request) {
		err := r.Body.Close()
		n, rerr := r.Body.Read(make([]byte, 4))
		_, _ = fmt.Fprintf(w, "closed %v; read %d %v", err, n, rerr)
	},
	// A proxied response: the body is sent upstream first, the head
	// has a length and a type (h1server writes it at WriteHeader, and
	// closes the body when net/http's 2048-byte buffer would flush).
	"proxied": func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "3100")
		w.WriteHeader(200)
		_, err1 := r.Body.Read(make([]byte, 1))
		_, _ = io.WriteString(w, strings.Repeat(".", 2100))
		_, err2 := r.Body.Read(make([]byte, 1))
		msg := fmt.Sprintf("%d bytes %v %q | %v | %v", len(b), err, r.Trailer, err1, err2)
		_, _ = io.WriteString(w, (msg + strings.Repeat(" ", 1000))[:1000])
	},
	// The same head, the body not read first.
	"proxied-unread": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(201)
		b, err := io.ReadAll(r.Body)
		w.Header().Set("X-Late", fmt.Sprint(len(b), err))
		_, _ = io.WriteString(w, "ok")
	},
	"answer-close": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "no")
	},
	"full-duplex": func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		_, _ = io.WriteString(w, "first ")
		w.(http.Flusher).Flush()
		b, err := io.ReadAll(r.Body)
		_, _ = fmt.Fprintf(w, "then %d bytes, %v", len(b), err)
	},
	"panic-unread": func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) },
	// A read error of the connection cancels the request at once (the
	// client cut the body, or a guard refused it); a body net/http's
	// chunked reader refuses does not.
	"ctx": func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		if err == nil {
			_, _ = io.WriteString(w, "read")
			return
		}
		_, _ = fmt.Fprintf(w, "%v; context: %v", err, r.Context().Err())
	},
}

// bodyRequests are request streams with bodies, each followed by another
// request, to show whether the connection goes on, and where.
var bodyRequests = map[string]string{
	"length":               "POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
	"length 0":             "POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
	"equal lengths":        "PUT /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"no length":            "POST /%s HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET with body":        "GET /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
	"HEAD with body":       "HEAD /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
	"chunked":              "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
	"trailer":              "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 5\r\nX-Extra: e\r\n\r\n",
	"undeclared trailer":   "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-U: u\r\n\r\n",
	"bad trailer":          "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nBad Name: u\r\n\r\n",
	"client close":         "POST /%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
	"client close chunked": "POST /%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"CRLF after a POST":    "POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\r\n",
	"CRLFs after a POST":   "POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\r\n\r\n\r\n",
	"CRLF after a PUT":     "PUT /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\r\n",
	"large":                "POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n" + strings.Repeat("l", 300000),
	"under 256 KiB":        "POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + strings.Repeat("u", 200000),
	"large chunked":        "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1000\r\n"+strings.Repeat("c", 0x1000)+"\r\n", 70) + "0\r\n\r\n",
}

// cutRequests end inside their body, or break its framing: nothing
// follows.
var cutRequests = map[string]string{
	"cut length":      "POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello",
	"cut chunk":       "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
	"cut chunk line":  "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
	"cut trailer":     "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-A: 1\r\n",
	"malformed size":  "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n",
	"malformed end":   "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n",
	"long chunk line": "POST /%s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;" + strings.Repeat("e", 5000) + "\r\nhello\r\n0\r\n\r\n",
	"cut large":       "POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n" + strings.Repeat("l", 1000),
}

// fullDuplexReadsOn: the requests after which net/http's server, when
// the handler enabled full duplex (so the body is not read at the head),
// reads on after the body's read error, and takes what follows in the
// body for a request. h1server closes the connection instead: stricter
// (see response.shouldReuseConnection).
var fullDuplexReadsOn = map[string]bool{
	"cut trailer": true, "long chunk line": true, "malformed end": true, "malformed size": true,
}

// exchangeBody is exchange for a request stream with a large body: it
// is written on a goroutine of its own (the server may answer, and
// close, before reading it all; a write error is no failure), then the
// connection half-closed.
func exchangeBody(t *testing.T, l *pairListener, raw string) string {
	t.Helper()
	c := l.dial(t)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := io.WriteString(c, raw); err == nil {
			_ = c.CloseWrite()
		}
	}()
	b, err := io.ReadAll(c)
	<-wrote
	if err != nil && !isReset(err) && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("reading the answer: %v (got %q)", err, b)
	}
	return dateLine.ReplaceAllString(string(b), "Date: (date)\r")
}

// TestBodiesMatchNetHTTP: a request with a body, whatever the handler
// does with it, gets the same answer from both servers (what the handler
// saw of it included), and the connection goes on, or ends, alike: after
// a body read to its end, after one left unread (read and discarded up to
// 256 KiB, or a close), after one cut short or malformed, with h1guard in
// front or not. The requests with a body are taken here.
func TestBodiesMatchNetHTTP(t *testing.T) {
	t.Parallel()
	for _, guarded := range []bool{false, true} {
		t.Run(fmt.Sprintf("guard=%v", guarded), func(t *testing.T) {
			t.Parallel()
			var wrap func(net.Listener) net.Listener
			if guarded {
				wrap = func(l net.Listener) net.Listener { return h1guard.NewListener(l, h1guard.Limits{}) }
			}
			p := newPairOn(t, func(w http.ResponseWriter, r *http.Request) {
				if h, ok := bodyHandlers[strings.TrimPrefix(r.URL.Path, "/")]; ok {
					h(w, r)
					return
				}
				dump(w, r)
			}, nil, nil, wrap)
			for _, hname := range slices.Sorted(maps.Keys(bodyHandlers)) {
				for _, set := range []map[string]string{bodyRequests, cutRequests} {
					for _, rname := range slices.Sorted(maps.Keys(set)) {
						raw := fmt.Sprintf(set[rname], hname)
						if set[rname] == bodyRequests[rname] {
							raw += "GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
						}
						t.Run(hname+" "+rname, func(t *testing.T) {
							before := p.fastServed.Load()
							want := exchangeBody(t, p.ref, raw)
							if p.fastServed.Load() != before {
								t.Fatal("net/http's server got this server's ResponseWriter")
							}
							got := exchangeBody(t, p.fast, raw)
							if hname == "full-duplex" && fullDuplexReadsOn[rname] {
								// Where net/http goes on after a body it
								// could not read, and answers what follows
								// as a request (400), h1server closes.
								if i := strings.Index(want, "HTTP/1.1 400 Bad Request"); i > 0 {
									want = want[:i]
								}
							}
							if got != want {
								t.Fatalf("answers differ\nnet/http: %q\nh1server: %q", want, got)
							}
							if p.fastServed.Load() == before {
								t.Fatal("not served by h1server")
							}
						})
					}
				}
			}
		})
	}
}

// TestWatcherLeavesTheBodyAlone: a handler that runs across sweeps
// before it reads the request body gets no watcher reading ahead (it
// would take the body's first byte); once the body is read, it does, and
// a client that leaves then cancels the request, as with net/http's
// background read, which starts at the body's end.
func TestWatcherLeavesTheBodyAlone(t *testing.T) {
	t.Parallel()
	var s *Server
	got := make(chan string, 1)
	canceled := make(chan struct{})
	started := make(chan struct{})
	s, l, _ := serveFast(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		sweeps := s.sweeps.Load()
		if !waitFor(5*time.Second, func() bool { return s.sweeps.Load() >= sweeps+3 }) {
			got <- "no sweeps"
			return
		}
		b, err := io.ReadAll(r.Body)
		got <- fmt.Sprintf("%s %v", b, err)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(30 * time.Second):
		}
	}, nil)
	c := l.dial(t)
	defer c.Close()
	// The body comes after the head was read: in the socket, where a
	// watcher would read.
	_, _ = io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n")
	<-started
	_, _ = io.WriteString(c, "hello")
	if b := <-got; b != "hello <nil>" {
		t.Fatalf("the handler read %q", b)
	}
	if !waitFor(5*time.Second, func() bool { return anyWatching(s) }) {
		t.Fatal("no watcher once the body was read")
	}
	c.Close()
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the request of a client that left after its body was never canceled")
	}
}

// TestResponseFitsItsSizeClass: a request's one allocation (its
// response, with the request, its context, its parts and its body in it)
// stays in the 1024-byte size class: 1016 bytes, and the 8-byte header
// the runtime puts before an object over 512 bytes that holds pointers.
func TestResponseFitsItsSizeClass(t *testing.T) {
	t.Parallel()
	if size := unsafe.Sizeof(response{}); unsafe.Sizeof(uintptr(0)) == 8 && size > 1016 {
		t.Errorf("response is %d bytes: over the 1024-byte size class with its malloc header", size)
	}
}
