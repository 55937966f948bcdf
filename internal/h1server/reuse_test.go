package h1server

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seenRequest is what a handler saw of one request: its header, a copy
// made while it ran, and the map itself, kept (only to be told apart from
// the others: a map no longer referenced could be freed and another made
// at its address).
type seenRequest struct {
	header http.Header
	m      http.Header
}

func sameMap(a, b http.Header) bool {
	return reflect.ValueOf(a).Pointer() == reflect.ValueOf(b).Pointer()
}

// TestReusedHeaderMapCarriesNothingOver: with ReuseRequestHeaders, each
// request on a keep-alive connection, one after the other or pipelined,
// gets exactly the header net/http would have read from its own head,
// nothing of the request before (whose handler added fields, or replaced
// Request.Header with a map of its own), and the map is in fact reused.
// Without it, no map is reused.
func TestReusedHeaderMapCarriesNothingOver(t *testing.T) {
	t.Parallel()
	heads := []string{
		"GET /1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer one\r\nCookie: s=1\r\nX-A: 1\r\nx-a: 2\r\nX-Only-First: yes\r\n\r\n",
		"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /3?q=3 HTTP/1.1\r\nHost: b\r\nX-A: 3\r\nUser-Agent: three\r\n\r\n",
		"GET /replace HTTP/1.1\r\nHost: a\r\nX-R: r\r\n\r\n",
		"GET /5 HTTP/1.1\r\nHost: a\r\nX-B: 5\r\n\r\n",
		// Pipelined: both heads in one write.
		"GET /6 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer six\r\n\r\nGET /7 HTTP/1.1\r\nHost: a\r\nX-C: 7\r\n\r\n",
		"GET /8 HTTP/1.1\r\nHost: a\r\n\r\n",
	}
	for _, reuse := range []bool{true, false} {
		t.Run(fmt.Sprintf("reuse=%v", reuse), func(t *testing.T) {
			t.Parallel()
			seen, replaced := serveHeads(t, reuse, heads)
			var want []http.Header
			for _, h := range heads {
				for _, one := range strings.SplitAfter(h, "\r\n\r\n") {
					if one == "" {
						continue
					}
					req, err := readLikeNetHTTP([]byte(one))
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, req.Header)
				}
			}
			if len(seen) != len(want) {
				t.Fatalf("%d requests served, want %d", len(seen), len(want))
			}
			reused := 0
			for i, s := range seen {
				if d := cmp.Diff(want[i], s.header); d != "" {
					t.Errorf("request %d saw a header that is not its own (-want +got):\n%s", i+1, d)
				}
				if sameMap(s.m, replaced) {
					t.Errorf("request %d got the map a handler put in Request.Header", i+1)
				}
				if i > 0 && sameMap(s.m, seen[i-1].m) {
					reused++
				}
			}
			if reuse && reused != len(seen)-1 || !reuse && reused > 0 {
				t.Errorf("the map was reused %d times in %d requests (reuse=%v)", reused, len(seen), reuse)
			}
		})
	}
}

// serveHeads sends heads on one connection to a server whose handler
// records what it saw, adds a field to Request.Header, and for /replace
// puts a map of its own there (replaced).
func serveHeads(t *testing.T, reuse bool, heads []string) (seen []seenRequest, replaced http.Header) {
	t.Helper()
	var mu sync.Mutex
	h := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, seenRequest{header: r.Header.Clone(), m: r.Header})
		mu.Unlock()
		r.Header["X-Added-By-Handler"] = []string{r.URL.Path}
		if r.URL.Path == "/replace" {
			r.Header = http.Header{"X-Handler-Owned": {"1"}}
			mu.Lock()
			replaced = r.Header
			mu.Unlock()
		}
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "ok")
	}
	l := newPairListener()
	srv := New(&http.Server{Handler: http.HandlerFunc(h), ReadHeaderTimeout: 5 * time.Second}, nil)
	srv.ReuseRequestHeaders(reuse)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-served
	}()
	c := l.dial(t)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, head := range heads {
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		for range strings.Count(head, "\r\n\r\n") {
			method, _, _ := strings.Cut(head, " ")
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return seen, replaced
}
