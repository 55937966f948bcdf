package h1server

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// pairListener accepts one end of a Unix socket pair per dial: no ports
// and no TIME_WAIT, however many connections a fuzz run makes, and the
// client can half-close.
type pairListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPairListener() *pairListener {
	return &pairListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pairListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pairListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pairListener) Addr() net.Addr { return &net.UnixAddr{Name: "pair", Net: "unix"} }

func (l *pairListener) dial(t testing.TB) *net.UnixConn {
	t.Helper()
	client, server := testutil.SocketPair(t)
	select {
	case l.ch <- server:
	case <-l.done:
		t.Fatal("listener closed")
	}
	return client
}

// pair is the same handler behind net/http's server (ref) and behind
// this one (fast), each on its own pairListener.
type pair struct {
	ref, fast  *pairListener
	srv        *Server
	fastServed atomic.Int64 // requests that got this server's ResponseWriter
	errorLog   *bytes.Buffer
	errorLogMu *sync.Mutex
	refSrv     *http.Server
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newPair(t testing.TB, h http.HandlerFunc, configure func(*http.Server)) *pair {
	t.Helper()
	return newPairWith(t, h, configure, nil)
}

// newPairWith is newPair with configureFast, if not nil, called on this
// server before it serves.
func newPairWith(t testing.TB, h http.HandlerFunc, configure func(*http.Server), configureFast func(*Server)) *pair {
	t.Helper()
	return newPairOn(t, h, configure, configureFast, nil)
}

// newPairOn is newPairWith with both servers serving wrap(listener)
// when wrap is not nil (h1guard.NewListener).
func newPairOn(t testing.TB, h http.HandlerFunc, configure func(*http.Server), configureFast func(*Server),
	wrap func(net.Listener) net.Listener) *pair {
	t.Helper()
	if wrap == nil {
		wrap = func(l net.Listener) net.Listener { return l }
	}
	p := &pair{ref: newPairListener(), fast: newPairListener(), errorLog: &bytes.Buffer{}, errorLogMu: &sync.Mutex{}}
	quiet := log.New(io.Discard, "", 0)
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*response); ok {
			p.fastServed.Add(1)
		}
		h(w, r)
	})
	mk := func(l *log.Logger) *http.Server {
		// The protocols of Gatehouse's plain listeners: HTTP/1 and h2c.
		var protos http.Protocols
		protos.SetHTTP1(true)
		protos.SetUnencryptedHTTP2(true)
		s := &http.Server{Handler: wrapped, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second, ErrorLog: l,
			Protocols: &protos}
		if configure != nil {
			configure(s)
		}
		return s
	}
	p.refSrv = mk(quiet)
	go func() { _ = p.refSrv.Serve(wrap(p.ref)) }()
	p.srv = New(mk(log.New(lockedBuffer{p.errorLogMu, p.errorLog}, "", 0)), nil)
	if configureFast != nil {
		configureFast(p.srv)
	}
	served := make(chan error, 1)
	go func() { served <- p.srv.Serve(wrap(p.fast)) }()
	t.Cleanup(func() {
		p.refSrv.Close()
		p.srv.Close()
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return p
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

var dateLine = regexp.MustCompile(`(?m)^Date: [^\r\n]*\r$`)

// exchange sends raw, half-closes, and returns everything the server
// sent until it closed, with Date values blanked.
func exchange(t testing.TB, l *pairListener, raw []byte) string {
	t.Helper()
	c := l.dial(t)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	_ = c.CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("reading the answer to %q: %v (got %q)", raw, err, b)
	}
	return dateLine.ReplaceAllString(string(b), "Date: (date)\r")
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// dump writes what the handler sees of the request.
func dump(w http.ResponseWriter, r *http.Request) {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range r.Header {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q %q %s host=%q close=%v cl=%d te=%q nobody=%v\n", r.Method, r.RequestURI, r.URL.String(), r.Proto,
		r.Host, r.Close, r.ContentLength, r.TransferEncoding, r.Body == http.NoBody)
	fmt.Fprintf(&b, "path=%q rawpath=%q query=%q remote=%q\n", r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.RemoteAddr)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, r.Header[k])
	}
	_, hasSrv := r.Context().Value(http.ServerContextKey).(*http.Server)
	_, hasLocal := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	fmt.Fprintf(&b, "ctx server=%v local=%v\n", hasSrv, hasLocal)
	if r.Body != nil {
		body, err := io.ReadAll(r.Body)
		if len(body) > 100 {
			body = []byte(fmt.Sprintf("%d bytes ending %q", len(body), body[len(body)-10:]))
		}
		fmt.Fprintf(&b, "body=%q err=%v trailer=%q\n", body, err, r.Trailer)
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, b.String())
}

// TestRequestsMatchNetHTTP: the same bytes get the same answers from
// both servers, taken here or handed over, and the simple ones are taken.
func TestRequestsMatchNetHTTP(t *testing.T) {
	t.Parallel()
	p := newPair(t, dump, nil)
	for _, tt := range []struct {
		name  string
		raw   string
		taken int64 // requests served here, not by net/http
	}{
		{"simple", "GET /a?b=c HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n", 1},
		{"head", "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", 1},
		{"pipelined", "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: y\r\nconnection: close\r\n\r\nGET /3 HTTP/1.1\r\nHost: z\r\n\r\n", 2},
		{"simple then a body", "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /3 HTTP/1.1\r\nHost: x\r\n\r\n", 3},
		{"chunked body", "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 1},
		{"body then HTTP/1.0", "PUT /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nxPOST /2 HTTP/1.0\r\nContent-Length: 2\r\n\r\nab", 1},
		{"expect", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab", 0},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", 0},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 0},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0},
		{"bad header", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 0},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 0},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 0},
		{"cut short", "GET / HTTP/1.1\r\nHost: a\r\n", 0},
		{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0},
		{"expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", 0},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: nonsense\r\n\r\n", 0},
		{"long head", "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("v", 5000) + "\r\n\r\n", 0},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0},
		{"absolute form", "GET http://other/x HTTP/1.1\r\nHost: a\r\n\r\n", 0},
		{"nothing", "", 0},
		{"h2c preface after a request", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1},
		{"bare LF after a request", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\nHost: x\n\n", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := p.fastServed.Load()
			want := exchange(t, p.ref, []byte(tt.raw))
			refServed := p.fastServed.Load() - before
			got := exchange(t, p.fast, []byte(tt.raw))
			if got != want {
				t.Fatalf("answers differ for %q\nnet/http: %q\nh1server: %q", tt.raw, want, got)
			}
			if refServed != 0 {
				t.Fatalf("net/http's server got this server's ResponseWriter")
			}
			if taken := p.fastServed.Load() - before; taken != tt.taken {
				t.Fatalf("%d requests taken here, want %d", taken, tt.taken)
			}
		})
	}
}

// FuzzServerMatchesNetHTTP: any bytes get the same answer from both
// servers.
func FuzzServerMatchesNetHTTP(f *testing.F) {
	for _, s := range []string{
		"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nhost: y\r\nconnection: close\r\n\r\n",
		"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n" + h2Preface,
		"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
		"PUT /1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\r\nhel\r\n",
	} {
		f.Add([]byte(s))
	}
	p := newPair(f, dump, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if bytes.HasPrefix(raw, []byte(h2Preface)) {
			// HTTP/2 from the first byte: the same net/http server gets it
			// either way, and when its first frame reaches a client that
			// has already half-closed is a race.
			return
		}
		want := exchange(t, p.ref, raw)
		if got := exchange(t, p.fast, raw); got != want {
			t.Fatalf("answers differ for %q\nnet/http: %q\nh1server: %q", raw, want, got)
		}
	})
}
