package h1server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
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

// TestPooledResponseHeaderCarriesNothingOver: response header maps go
// back to the server's pool once their response is written (Header,
// releaseHeader), so that a proxy's response costs no map (EmptyHeader).
// Nothing of one response, header or trailer, may show in a later one,
// on the same connection or another, whatever the handler did with its
// map: fields set after WriteHeader, trailers, a map grown past
// maxPooledFields, one handed over (AdoptHeader), a panic.
func TestPooledResponseHeaderCarriesNothingOver(t *testing.T) {
	t.Parallel()
	h := func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if n%5 == 4 {
			// The proxy's use: fields read straight into the lent map.
			lent := w.(interface{ EmptyHeader() http.Header }).EmptyHeader()
			if lent == nil || len(lent) != 0 {
				panic(fmt.Sprintf("EmptyHeader gave %v for a fresh response", lent))
			}
			lent.Set("X-Lent", strconv.Itoa(n))
			if w.(interface{ EmptyHeader() http.Header }).EmptyHeader() != nil {
				panic("EmptyHeader lent a map that has fields")
			}
		}
		if n%5 == 3 {
			w.(interface{ AdoptHeader(http.Header) bool }).AdoptHeader(http.Header{"X-Adopted": {"1"}})
		}
		hdr := w.Header()
		hdr.Set("X-N", strconv.Itoa(n))
		switch n % 5 {
		case 1:
			hdr.Set("Trailer", "X-Odd-Trailer")
		case 2:
			for i := range maxPooledFields + 1 {
				hdr.Set(fmt.Sprintf("X-Many-%d", i), "1")
			}
		}
		if r.URL.Path == "/panic" {
			hdr.Set("X-Panicked", "1")
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(http.StatusOK)
		hdr.Set("X-After-Writeheader", "not sent")
		_, _ = io.WriteString(w, "body")
		if n%5 == 1 {
			hdr.Set("X-Odd-Trailer", "t")
		}
		if w.(interface{ EmptyHeader() http.Header }).EmptyHeader() != nil {
			panic("EmptyHeader lent a map after WriteHeader")
		}
	}
	l := newPairListener()
	srv := New(&http.Server{Handler: http.HandlerFunc(h), ReadHeaderTimeout: 5 * time.Second}, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-served
	}()
	get := func(br *bufio.Reader, c net.Conn, path string) (*http.Response, error) {
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	for conn := range 3 {
		c := l.dial(t)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		for i := range 20 {
			n := conn*20 + i
			resp, err := get(br, c, "/?n="+strconv.Itoa(n))
			if err != nil {
				t.Fatal(err)
			}
			want := http.Header{"X-N": {strconv.Itoa(n)}, "Content-Length": {"4"}}
			switch n % 5 {
			case 1:
				want = http.Header{"X-N": {strconv.Itoa(n)}, "Transfer-Encoding": nil} // Trailer goes to resp.Trailer
			case 2:
				for i := range maxPooledFields + 1 {
					want.Set(fmt.Sprintf("X-Many-%d", i), "1")
				}
			case 3:
				want.Set("X-Adopted", "1")
			case 4:
				want.Set("X-Lent", strconv.Itoa(n))
			}
			got := resp.Header.Clone()
			delete(got, "Date")
			delete(got, "Content-Type")
			if _, chunked := want["Transfer-Encoding"]; chunked {
				delete(want, "Transfer-Encoding")
				want.Del("Content-Length")
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("response %d: header (-want +got):\n%s", n, d)
			}
			if wantT := map[bool]string{true: "t", false: ""}[n%5 == 1]; resp.Trailer.Get("X-Odd-Trailer") != wantT {
				t.Errorf("response %d: trailer %v", n, resp.Trailer)
			}
		}
		if conn == 1 {
			// A panicking handler's map is not pooled: the connection
			// ends, and the next one's responses carry nothing of it.
			if _, err := get(br, c, "/panic?n=0"); err == nil {
				t.Error("a response came from a handler that panicked")
			}
		}
		c.Close()
	}
}
