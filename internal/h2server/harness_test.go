package h2server_test

// The harness the differential and attack tests share: the two servers
// under test (net/http's own HTTP/2 server, "nethttp", and Gatehouse's,
// "gatehouse") behind the same http.Server settings on a loopback TLS
// listener, and the handler wrapper that records what each request looked
// like to the handler. The raw HTTP/2 client is in client_test.go.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/internal/h2server"
	"gatehouse/internal/testutil"
)

// TestMain fails the package's tests if they leave goroutines running.
func TestMain(m *testing.M) { os.Exit(testutil.CheckGoroutinesMain(m)) }

// servers names the two implementations every test runs against, as the
// subtest names: -run 'X/nethttp' runs only the reference.
var servers = []string{"nethttp", "gatehouse"}

// limits is what both servers are configured with.
type limits struct {
	MaxConcurrentStreams uint32
	MaxHeaderBytes       int
	IdleTimeout          time.Duration
	ReadHeaderTimeout    time.Duration
	WriteTimeout         time.Duration
	HandlerLinger        time.Duration // Gatehouse's only
}

var defaultLimits = limits{
	MaxConcurrentStreams: 100,
	MaxHeaderBytes:       16 << 10,
	IdleTimeout:          30 * time.Second,
	ReadHeaderTimeout:    5 * time.Second,
	// Handler goroutines end soon after a connection has nothing in
	// progress, so that the goroutine counts of the attack tests settle.
	HandlerLinger: 10 * time.Millisecond,
}

// The deadlines every wait uses, so that a server that does not answer
// costs seconds, not the test binary's timeout.
const (
	waitTimeout  = 4 * time.Second
	writeTimeout = 4 * time.Second
)

// authority is the :authority of every request: fixed, so that the two
// servers (on different ports) see the same Host.
const authority = "example.com"

var (
	certOnce sync.Once
	cert     tls.Certificate
)

func serverCert() tls.Certificate {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: authority},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			DNSNames: []string{authority}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return cert
}

// testServer is one of the two servers on its own loopback listener.
type testServer struct {
	kind   string
	addr   string
	hs     *http.Server
	log    *syncBuffer
	served chan struct{} // closed when hs.ServeTLS has returned

	mu     sync.Mutex
	conns  map[net.Conn]http.ConnState
	closed int // connections whose serving goroutine has ended (StateClosed)
}

// startServer starts a server of kind ("nethttp" or "gatehouse") with lim
// and h. Close it with close (tests) or let t's cleanup do it.
func startServer(t testing.TB, kind string, lim limits, h http.Handler) *testServer {
	t.Helper()
	s, err := newServer(kind, lim, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

func newServer(kind string, lim limits, h http.Handler) (*testServer, error) {
	return newServerWrapped(kind, lim, h, nil)
}

// wrapListener hands the server its connections through wrap (below
// TLS).
type wrapListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// newServerWrapped is newServer with the server's side of each raw
// connection wrapped (nil: as is).
func newServerWrapped(kind string, lim limits, h http.Handler, wrap func(net.Conn) net.Conn) (*testServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if wrap != nil {
		ln = wrapListener{ln, wrap}
	}
	s := &testServer{kind: kind, addr: ln.Addr().String(), log: &syncBuffer{}, served: make(chan struct{}),
		conns: map[net.Conn]http.ConnState{}}
	logger := log.New(s.log, "", 0)
	hs := &http.Server{
		Handler:           h,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		IdleTimeout:       lim.IdleTimeout,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		WriteTimeout:      lim.WriteTimeout,
		ErrorLog:          logger,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{serverCert()}},
		ConnState:         s.connState,
	}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetHTTP2(true)
	switch kind {
	case "nethttp":
		// WriteByteTimeout is h2server.Config.WriteTimeout's meaning (a
		// bound on each write to the socket); hs.WriteTimeout, which
		// net/http's h2 applies per stream, is set above for both.
		hs.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: int(lim.MaxConcurrentStreams), WriteByteTimeout: lim.WriteTimeout}
	case "gatehouse":
		h2server.New(h2server.Config{
			MaxConcurrentStreams: lim.MaxConcurrentStreams,
			MaxHeaderBytes:       lim.MaxHeaderBytes,
			IdleTimeout:          lim.IdleTimeout,
			ReadHeaderTimeout:    lim.ReadHeaderTimeout,
			WriteTimeout:         lim.WriteTimeout,
			HandlerLinger:        lim.HandlerLinger,
			ErrorLog:             logger,
		}).Configure(hs)
	default:
		ln.Close()
		return nil, fmt.Errorf("unknown server %q", kind)
	}
	s.hs = hs
	go func() {
		defer close(s.served)
		hs.ServeTLS(ln, "", "")
	}()
	return s, nil
}

func (s *testServer) connState(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == http.StateClosed || st == http.StateHijacked {
		delete(s.conns, c)
		s.closed++
		return
	}
	s.conns[c] = st
}

// openConns is how many connections the server is still serving.
func (s *testServer) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *testServer) close() {
	s.hs.Close()
	<-s.served
}

// syncBuffer is a bytes.Buffer safe for the server's ErrorLog.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// view is what a handler saw of its request.
type view struct {
	Method        string
	URL           string
	RequestURI    string
	Host          string
	Header        map[string][]string
	ContentLength int64
	Body          string // summarize()d
	BodyErr       string // "" for nil or io.EOF, else "error"
	Trailer       map[string][]string
	Proto         string
	TLS           bool
	RemoteHost    string
}

// env is one exchange's server-side state, shared by the handler and
// the client's script.
type env struct {
	started     atomic.Int64 // handlers started (health checks not counted)
	inflight    atomic.Int64
	maxInflight atomic.Int64
	release     chan struct{} // closed to let blocked handlers go on
	releaseOnce sync.Once
	log         *syncBuffer // the server's ErrorLog (set once started)

	mu    sync.Mutex
	views []*view
	wrote []string // notes handlers made, in order
}

func newEnv() *env { return &env{release: make(chan struct{})} }

func (e *env) releaseAll() { e.releaseOnce.Do(func() { close(e.release) }) }

// note records what a handler noticed (of its writes, say).
func (e *env) note(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.wrote = append(e.wrote, s)
}

// handlerFunc answers a request in a test case. It may use e (to block
// until e.release, say).
type handlerFunc func(e *env, w http.ResponseWriter, r *http.Request)

// healthPath is answered 200 by every test server, unrecorded.
const healthPath = "/_health"

// handler wraps h: it records the request's view, reads the body first
// unless noRead, then calls h (nil: write "ok").
func (e *env) handler(h handlerFunc, noRead bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == healthPath {
			io.WriteString(w, "ok")
			return
		}
		e.started.Add(1)
		n := e.inflight.Add(1)
		for {
			m := e.maxInflight.Load()
			if n <= m || e.maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		defer e.inflight.Add(-1)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		v := &view{
			Method: r.Method, URL: r.URL.String(), RequestURI: r.RequestURI, Host: r.Host,
			Header: cloneHeader(r.Header), ContentLength: r.ContentLength,
			Proto: r.Proto, TLS: r.TLS != nil, RemoteHost: host,
		}
		e.mu.Lock()
		e.views = append(e.views, v)
		e.mu.Unlock()
		if !noRead {
			b, err := io.ReadAll(r.Body)
			e.mu.Lock()
			v.Body, v.BodyErr, v.Trailer = summarize(b), errClass(err), cloneHeader(r.Trailer)
			e.mu.Unlock()
		}
		if h == nil {
			io.WriteString(w, "ok")
			return
		}
		h(e, w, r)
	})
}

// snapshotViews returns copies of the views, sorted.
func (e *env) snapshotViews() []view {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]view, 0, len(e.views))
	for _, v := range e.views {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b view) int {
		return strings.Compare(a.RequestURI+" "+a.Method+" "+a.Body, b.RequestURI+" "+b.Method+" "+b.Body)
	})
	return out
}

// waitLog waits for the server's ErrorLog to contain substr.
func (e *env) waitLog(substr string) bool {
	return testutil.WaitFor(waitTimeout, func() bool { return strings.Contains(e.log.String(), substr) })
}

func cloneHeader(h http.Header) map[string][]string {
	if len(h) == 0 {
		return nil
	}
	m := make(map[string][]string, len(h))
	for k, v := range h {
		m[k] = slices.Clone(v)
	}
	return m
}

func errClass(err error) string {
	if err == nil || errors.Is(err, io.EOF) {
		return ""
	}
	return "error"
}

// summarize is b itself when short, else its length and hash, so that a
// diff stays readable.
func summarize(b []byte) string {
	if len(b) <= 256 {
		return string(b)
	}
	return fmt.Sprintf("<%d bytes sha256:%x>", len(b), sha256.Sum256(b))
}

// pattern returns n bytes of a recognizable, non-sniffable text.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i%36]
	}
	return b
}

// heapAlloc is the live heap after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
