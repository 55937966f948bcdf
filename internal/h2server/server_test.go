package h2server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"golang.org/x/net/http2"
)

// newTestServer serves h over TLS with h2server as its HTTP/2 server.
func newTestServer(t *testing.T, cfg Config, h http.Handler) (string, *http.Client) {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.EnableHTTP2 = true
	New(cfg).Configure(ts.Config)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return ts.URL, &http.Client{Transport: tr}
}

func TestRoundTrips(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	url, client := newTestServer(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "hello "+r.Proto)
		case "/echo":
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("read body: %v", err)
			}
			w.Header().Set("X-Len", strconv.Itoa(len(b)))
			w.Write(b)
		case "/big":
			w.Write(big)
		case "/trailers":
			w.Header().Set("Trailer", "X-T")
			io.WriteString(w, "body")
			w.Header().Set("X-T", "tv")
		}
	}))
	get := func(t *testing.T, method, path string, body []byte) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, bytes.NewReader(body))
		if body == nil {
			req.Body = nil
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.ProtoMajor != 2 {
			t.Fatalf("proto %s", res.Proto)
		}
		return res, b
	}
	t.Run("small", func(t *testing.T) {
		res, b := get(t, "GET", "/small", nil)
		if string(b) != "hello HTTP/2.0" || res.ContentLength != 14 || res.Header.Get("Content-Type") == "" || res.Header.Get("Date") == "" {
			t.Fatalf("%q %d %v", b, res.ContentLength, res.Header)
		}
	})
	t.Run("echo", func(t *testing.T) {
		res, b := get(t, "POST", "/echo", big)
		if !bytes.Equal(b, big) || res.Header.Get("X-Len") != strconv.Itoa(len(big)) {
			t.Fatalf("echo: %d bytes, X-Len %s", len(b), res.Header.Get("X-Len"))
		}
	})
	t.Run("big", func(t *testing.T) {
		_, b := get(t, "GET", "/big", nil)
		if !bytes.Equal(b, big) {
			t.Fatalf("big: %d bytes", len(b))
		}
	})
	t.Run("trailers", func(t *testing.T) {
		res, b := get(t, "GET", "/trailers", nil)
		if string(b) != "body" || res.Trailer.Get("X-T") != "tv" {
			t.Fatalf("%q %v", b, res.Trailer)
		}
	})
	t.Run("parallel", func(t *testing.T) {
		done := make(chan struct{})
		for range 50 {
			go func() {
				defer func() { done <- struct{}{} }()
				res, err := client.Get(url + "/big")
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if !bytes.Equal(b, big) {
					t.Errorf("got %d bytes", len(b))
				}
			}()
		}
		for range 50 {
			<-done
		}
	})
}

// Header maps are reused between responses (headerPool): nothing of one
// response may show in the next, header or trailer.
func TestReusedHeaderMapsCarryNothingOver(t *testing.T) {
	url, client := newTestServer(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		lender := w.(interface{ EmptyHeader() http.Header })
		if n%3 == 2 {
			// A proxy's use: its upstream's fields read straight into
			// the response's own map, which must be empty.
			lent := lender.EmptyHeader()
			if lent == nil || len(lent) != 0 {
				t.Errorf("response %d: EmptyHeader gave %v", n, lent)
				lent = w.Header()
			}
			lent.Set("X-Lent", "1")
			if lender.EmptyHeader() != nil {
				t.Errorf("response %d: EmptyHeader lent a map with fields in it", n)
			}
		}
		h := w.Header()
		h.Set("X-N", strconv.Itoa(n))
		if n%2 == 1 {
			h.Set("X-Odd", "1")
			h.Set("Trailer", "X-Odd-Trailer")
		}
		w.WriteHeader(http.StatusOK)
		if lender.EmptyHeader() != nil {
			t.Errorf("response %d: EmptyHeader lent a map after WriteHeader", n)
		}
		h.Set("X-After-WriteHeader", "not sent") // the snapshot was taken
		io.WriteString(w, "body")
		if n%2 == 1 {
			h.Set("X-Odd-Trailer", "t")
		}
	}))
	for n := range 40 {
		resp, err := client.Get(url + "/?n=" + strconv.Itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		odd := n%2 == 1
		if got := resp.Header.Get("X-N"); got != strconv.Itoa(n) {
			t.Errorf("response %d: X-N %q", n, got)
		}
		if _, ok := resp.Header["X-Odd"]; ok != odd {
			t.Errorf("response %d: X-Odd present %v", n, ok)
		}
		if _, ok := resp.Header["X-Lent"]; ok != (n%3 == 2) {
			t.Errorf("response %d: X-Lent present %v", n, ok)
		}
		if _, ok := resp.Header["X-After-Writeheader"]; ok {
			t.Errorf("response %d: a field set after WriteHeader was sent", n)
		}
		if got := resp.Trailer.Get("X-Odd-Trailer"); (got == "t") != odd {
			t.Errorf("response %d: trailer %q", n, got)
		}
	}
}

// rawFramer serves one TCP connection with h2server and h, and returns
// a Framer on the client's end, preface and SETTINGS sent. The
// connection is closed, and ServeConn waited for, at the test's end.
func rawFramer(t *testing.T, h http.Handler) *http2.Framer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		New(Config{}).ServeConn(c, h)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); <-served })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fr := http2.NewFramer(c, c)
	io.WriteString(c, http2.ClientPreface)
	fr.WriteSettings()
	return fr
}

// testCloser reports its Close on closed.
type testCloser struct {
	name   string
	closed chan string
}

func (c *testCloser) Close() error { c.closed <- c.name; return nil }

// A stream's context closes what is registered with CloseOnCancel when
// the stream is reset, as context.AfterFunc would, and not once released.
func TestStreamContextCloseOnCancel(t *testing.T) {
	type coc interface {
		CloseOnCancel(io.Closer) bool
		ReleaseClose(io.Closer) bool
	}
	closed := make(chan string, 4)
	registered := make(chan struct{}, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x, ok := r.Context().(coc)
		if !ok {
			t.Errorf("request context %T has no CloseOnCancel", r.Context())
			return
		}
		name := r.URL.Path
		cl := &testCloser{name, closed}
		if !x.CloseOnCancel(cl) {
			t.Errorf("%s: CloseOnCancel refused", name)
		}
		if x.CloseOnCancel(cl) {
			t.Errorf("%s: a second closer was taken", name)
		}
		registered <- struct{}{}
		switch name {
		case "/released":
			if !x.ReleaseClose(cl) {
				t.Errorf("%s: ReleaseClose reported it closed", name)
			}
		case "/reset":
			<-r.Context().Done()
			if x.ReleaseClose(cl) {
				t.Errorf("%s: ReleaseClose after cancellation reported it registered", name)
			}
		}
	})
	fr := rawFramer(t, h)
	blocks := encodeBlocks(
		[]string{":method", "GET", ":scheme", "https", ":authority", "a.example", ":path", "/released"},
		[]string{":method", "GET", ":scheme", "https", ":authority", "a.example", ":path", "/reset"},
	)
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blocks[0], EndStream: true, EndHeaders: true})
	<-registered
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blocks[1], EndStream: true, EndHeaders: true})
	<-registered
	fr.WriteRSTStream(3, http2.ErrCodeCancel)
	if got := <-closed; got != "/reset" {
		t.Errorf("closed %q, want /reset", got)
	}
	select {
	case got := <-closed:
		t.Errorf("closed %q too", got)
	case <-time.After(50 * time.Millisecond): // nothing more should come; a short look
	}
}

// baseHandler is a handler with a BaseContext, as net/http's TLSNextProto
// hands ServeConn.
type baseHandler struct {
	http.Handler
	base context.Context
}

func (h baseHandler) BaseContext() context.Context { return h.base }

// A connection's base context cancelled while a handler runs cancels the
// stream's context and closes what it registered.
func TestStreamContextFollowsTheBase(t *testing.T) {
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	closed := make(chan string, 1)
	registered := make(chan struct{})
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Context().(interface{ CloseOnCancel(io.Closer) bool }).CloseOnCancel(&testCloser{"base", closed})
		close(registered)
		<-r.Context().Done()
		// Closed by the cancellation itself, not when the handler returns
		// (an upstream read it blocks in would never let it return).
		select {
		case <-closed:
			done <- r.Context().Err()
		case <-time.After(5 * time.Second):
			done <- errors.New("the closer was not closed while the handler ran")
		}
	})
	fr := rawFramer(t, baseHandler{h, base})
	block := encodeBlocks([]string{":method", "GET", ":scheme", "https", ":authority", "a.example", ":path", "/"})[0]
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true})
	<-registered
	cancelBase()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the stream's context ended with %v", err)
	}
}

// An adopted header map is the handler's (a proxy's upstream response),
// not the pool's: the server must not clear it or hand it to another
// response when the stream ends.
func TestAdoptedHeaderIsNotPooled(t *testing.T) {
	adopted := make(chan http.Header, 20)
	url, client := newTestServer(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := http.Header{"X-Up": {r.URL.Query().Get("n")}, "Content-Type": {"text/plain"}}
		if !w.(interface{ AdoptHeader(http.Header) bool }).AdoptHeader(h) {
			t.Error("AdoptHeader refused a fresh response's header")
		}
		w.Header().Set("X-Filter", "1") // the same map
		io.WriteString(w, "ok")
		adopted <- h
	}))
	for n := range 20 {
		resp, err := client.Get(url + "/?n=" + strconv.Itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Up") + resp.Header.Get("X-Filter"); got != strconv.Itoa(n)+"1" {
			t.Errorf("response %d: X-Up and X-Filter %q", n, got)
		}
	}
	// Each stream is over by now (released after its handler returned,
	// before the next request's answer came back).
	for n := range 20 {
		h := <-adopted
		if got := h.Get("X-Up"); got != strconv.Itoa(n) || len(h) != 3 {
			t.Errorf("response %d: the adopted map changed after the response: %v", n, h)
		}
	}
}

// With ReuseRequestHeaders, a request's header map goes back to the
// server after its handler returns normally, for another request's
// fields: every request must see exactly its own fields, nothing of the
// one before, whatever that handler did (added fields, replaced
// Request.Header with a map of its own, or panicked), on one connection
// and across streams running together. Without it, no map is reused.
func TestReusedRequestHeadersCarryNothingOver(t *testing.T) {
	for _, reuse := range []bool{true, false} {
		t.Run(fmt.Sprintf("reuse=%v", reuse), func(t *testing.T) {
			var mu sync.Mutex
			var replaced []http.Header
			maps := map[uintptr]int{} // map identity -> requests that got it
			// Every map seen is kept alive: a map collected after its
			// request could be followed by a new one at the same address,
			// which would pass for a reused map.
			var alive []http.Header
			url, client := newTestServer(t, Config{ReuseRequestHeaders: reuse}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := r.URL.Query().Get("n")
				mu.Lock()
				maps[reflect.ValueOf(r.Header).Pointer()]++
				alive = append(alive, r.Header)
				for _, m := range replaced {
					if reflect.ValueOf(m).Pointer() == reflect.ValueOf(r.Header).Pointer() {
						t.Errorf("request %s got a map a handler put in Request.Header", n)
					}
				}
				mu.Unlock()
				// What the client sent, and nothing else.
				want := http.Header{"X-N": {n}, "Accept-Encoding": {"gzip"}, "User-Agent": {"Go-http-client/2.0"}}
				if i, _ := strconv.Atoi(n); i%2 == 0 {
					want["X-Even"] = []string{"1", "2"}
				}
				if d := cmp.Diff(want, r.Header); d != "" {
					t.Errorf("request %s saw a header that is not its own (-want +got):\n%s", n, d)
				}
				r.Header["X-Added-By-Handler"] = []string{n}
				switch {
				case strings.HasSuffix(r.URL.Path, "/replace"):
					r.Header = http.Header{"X-Handler-Owned": {n}}
					mu.Lock()
					replaced = append(replaced, r.Header)
					mu.Unlock()
				case strings.HasSuffix(r.URL.Path, "/panic"):
					panic(http.ErrAbortHandler)
				}
				io.WriteString(w, "ok")
			}))
			get := func(i int, path string) {
				req, _ := http.NewRequest("GET", url+path+"?n="+strconv.Itoa(i), nil)
				req.Header.Set("X-N", strconv.Itoa(i))
				if i%2 == 0 {
					req.Header["X-Even"] = []string{"1", "2"}
				}
				resp, err := client.Do(req)
				if err != nil {
					if path == "/panic" {
						return
					}
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			paths := []string{"/", "/replace", "/", "/panic"}
			for i := range 40 {
				get(i, paths[i%len(paths)])
			}
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Go(func() { get(100+i, paths[i%len(paths)]) })
			}
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			most := 0
			for _, n := range maps {
				most = max(most, n)
			}
			if !reuse && most > 1 {
				t.Errorf("a header map served %d requests without ReuseRequestHeaders", most)
			}
			if reuse && most < 2 && !raceOn {
				t.Errorf("no header map was reused in 80 requests (maps: %d)", len(maps))
			}
		})
	}
}
