package lb

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// tlsUpstream is a raw upstream behind TLS: serve gets each connection
// after its handshake. The certificate names 127.0.0.1 and upstream.test;
// client trusts it.
type tlsUpstream struct {
	*rawUpstream
	client *tls.Config
}

func newTLSUpstream(t testing.TB, maxVersion uint16, serve func(c *tls.Conn, raw *heldConn)) *tlsUpstream {
	t.Helper()
	ca := testutil.NewCA(t)
	certPath, keyPath := ca.Issue(t, t.TempDir(), "upstream", 2, "127.0.0.1", "upstream.test")
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	scfg := &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: maxVersion}
	u := newRawUpstream(t, func(c net.Conn) {
		raw := &heldConn{Conn: c}
		tc := tls.Server(raw, scfg)
		if tc.Handshake() != nil {
			return
		}
		serve(tc, raw)
	})
	return &tlsUpstream{rawUpstream: u, client: &tls.Config{RootCAs: ca.Pool, ClientSessionCache: tls.NewLRUClientSessionCache(8)}}
}

// heldConn is a server's socket that can hold what TLS writes and send it
// in one write: two records in one segment.
type heldConn struct {
	net.Conn
	mu   sync.Mutex // guards the following fields
	hold bool
	buf  []byte
}

func (c *heldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *heldConn) setHold(on bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = on
	if on || len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = nil
	return err
}

func tlsAnswerEach(resp string) func(*tls.Conn, *heldConn) {
	return func(c *tls.Conn, _ *heldConn) { answerEach(resp)(c) }
}

func tlsGet(t *testing.T, c *h1Client, host, method string) (string, error) {
	t.Helper()
	req, _ := http.NewRequest(method, "https://"+host+"/", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b), err
}

func idleTLS(t *testing.T, c *h1Client, addr string) *tls.Conn {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle[addr]) != 1 {
		t.Fatalf("%d idle connections to %s, want 1", len(c.idle[addr]), addr)
	}
	return c.idle[addr][0].nc.(*tls.Conn)
}

// An HTTPS pool's body-less requests go to the synchronous client, which
// keeps its connections: the session tickets a TLS 1.3 server sends right
// after the handshake are read with the first response and do not make
// the idle connection look unclean; a later connection resumes with them.
func TestTLSUpstreamReusesAfterSessionTickets(t *testing.T) {
	t.Parallel()
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			t.Parallel()
			u := newTLSUpstream(t, v, tlsAnswerEach(ok5))
			p := NewPool("app", []*Target{{Addr: u.addr()}}, Settings{TLS: u.client}, nil)
			defer p.Close()
			req, _ := http.NewRequest("GET", "https://"+u.addr()+"/", nil)
			if !p.Direct(req) {
				t.Fatal("a body-less GET to an HTTPS pool does not take the synchronous client")
			}
			c := p.h1
			for i := range 5 {
				if body, err := tlsGet(t, c, u.addr(), "GET"); err != nil || body != "hello" {
					t.Fatalf("request %d: %q, %v", i, body, err)
				}
			}
			if n := u.Accepted.Load(); n != 1 {
				t.Fatalf("5 sequential requests opened %d connections, want 1", n)
			}
			if tc := idleTLS(t, c, u.addr()); tc.ConnectionState().Version != v {
				t.Fatalf("negotiated %s", tls.VersionName(tc.ConnectionState().Version))
			}
			// The tickets were taken: a second client with the same
			// configuration resumes.
			c2 := newH1Client((&net.Dialer{}).DialContext, Settings{TLS: u.client})
			defer c2.CloseIdleConnections()
			if body, err := tlsGet(t, c2, u.addr(), "GET"); err != nil || body != "hello" {
				t.Fatalf("second client: %q, %v", body, err)
			}
			if !idleTLS(t, c2, u.addr()).ConnectionState().DidResume {
				t.Fatal("the second connection did not resume: no session ticket was taken")
			}
		})
	}
}

// Bytes an upstream sends beyond its response answer no request, on TLS
// as on plain TCP: whether they wait on the socket (a record sent while
// the connection is idle) or inside crypto/tls (a second record that came
// in the same segment as the response, read from the socket with it),
// the connection is retired and the next request gets its own response.
func TestTLSUpstreamUnsolicitedBytesRetireConnection(t *testing.T) {
	t.Parallel()
	const evil = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
	for _, sameSegment := range []bool{false, true} {
		t.Run(fmt.Sprint("same-segment=", sameSegment), func(t *testing.T) {
			t.Parallel()
			smuggle := make(chan struct{})
			u := newTLSUpstream(t, tls.VersionTLS13, func(c *tls.Conn, raw *heldConn) {
				br := bufio.NewReader(c)
				for first := true; ; first = false {
					if _, ok := readHead(br); !ok {
						return
					}
					if !first {
						io.WriteString(c, ok5)
						continue
					}
					if sameSegment {
						raw.setHold(true)
						io.WriteString(c, ok5)  // one record
						io.WriteString(c, evil) // another
						raw.setHold(false)      // both in one write
						continue
					}
					io.WriteString(c, ok5)
					<-smuggle // once the connection is idle
					io.WriteString(c, evil)
				}
			})
			c := testClient(Settings{TLS: u.client})
			defer c.CloseIdleConnections()
			if body, err := tlsGet(t, c, u.addr(), "GET"); err != nil || body != "hello" {
				t.Fatalf("first: %q, %v", body, err)
			}
			if !sameSegment {
				close(smuggle)
				waitIdleDirty(t, c, u.addr())
			}
			if body, err := tlsGet(t, c, u.addr(), "GET"); err != nil || body != "hello" {
				t.Fatalf("second request got %q, %v; want its own response", body, err)
			}
			if n := u.Accepted.Load(); n != 2 {
				t.Fatalf("%d connections, want 2 (the dirty one retired)", n)
			}
		})
	}
}

// A TLS connection the server closed while idle (close_notify, then the
// end) is noticed before use, so even a request that cannot be replayed
// gets a new connection rather than an error.
func TestTLSUpstreamClosedWhileIdle(t *testing.T) {
	t.Parallel()
	u := newTLSUpstream(t, tls.VersionTLS13, func(c *tls.Conn, _ *heldConn) {
		br := bufio.NewReader(c)
		if _, ok := readHead(br); ok {
			io.WriteString(c, ok5)
			c.Close()
		}
	})
	c := testClient(Settings{TLS: u.client, ResponseHeaderTimeout: 10 * time.Second})
	defer c.CloseIdleConnections()
	if body, err := tlsGet(t, c, u.addr(), "GET"); err != nil || body != "hello" {
		t.Fatalf("first: %q, %v", body, err)
	}
	waitIdleDirty(t, c, u.addr())
	if body, err := tlsGet(t, c, u.addr(), "POST"); err != nil || body != "hello" {
		t.Fatalf("POST after the server closed the idle connection: %q, %v", body, err)
	}
	if n := u.Accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// The name checked against the upstream's certificate is the target's
// host, as http.Transport checks it; a certificate that does not verify
// fails the request and leaves nothing in the pool.
func TestTLSUpstreamVerifiesTheTargetsName(t *testing.T) {
	t.Parallel()
	u := newTLSUpstream(t, 0, tlsAnswerEach(ok5))
	_, port, _ := net.SplitHostPort(u.addr())
	toUpstream := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, u.addr())
	}
	for _, tc := range []struct {
		name, host string
		roots      *x509.CertPool
		wantErr    string
	}{
		{name: "dns name", host: "upstream.test:" + port, roots: u.client.RootCAs},
		{name: "ip", host: u.addr(), roots: u.client.RootCAs},
		{name: "other name", host: "other.test:" + port, roots: u.client.RootCAs, wantErr: "certificate is valid for"},
		{name: "unknown authority", host: u.addr(), roots: x509.NewCertPool(), wantErr: "unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newH1Client(toUpstream, Settings{TLS: &tls.Config{RootCAs: tc.roots}})
			defer c.CloseIdleConnections()
			body, err := tlsGet(t, c, tc.host, "GET")
			if tc.wantErr == "" {
				if err != nil || body != "hello" {
					t.Fatalf("%q, %v", body, err)
				}
				return
			}
			var verr *tls.CertificateVerificationError
			if err == nil || !errors.As(err, &verr) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want a certificate verification error %q", err, tc.wantErr)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(c.idle) != 0 {
				t.Fatal("a connection that failed its handshake was pooled")
			}
		})
	}
}

// BenchmarkRoundTripTLS: a body-less GET to a TLS 1.3 upstream on one
// kept connection, by the synchronous client and by http.Transport.
func BenchmarkRoundTripTLS(b *testing.B) {
	u := newTLSUpstream(b, tls.VersionTLS13, tlsAnswerEach(ok5))
	tr := &http.Transport{TLSClientConfig: u.client}
	defer tr.CloseIdleConnections()
	c := newH1Client((&net.Dialer{}).DialContext, Settings{TLS: u.client})
	defer c.CloseIdleConnections()
	for _, rt := range []struct {
		name string
		rt   http.RoundTripper
	}{{"h1", c}, {"transport", tr}} {
		b.Run(rt.name, func(b *testing.B) {
			req, _ := http.NewRequest("GET", "https://"+u.addr()+"/", nil)
			buf := make([]byte, 16)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				if n, _ := io.ReadFull(resp.Body, buf[:5]); n != 5 {
					b.Fatal("short body")
				}
				resp.Body.Close()
			}
		})
	}
}

// TestTLSTransportPathKeepsHopByHopNamesBesideClose: a request the
// Transport sends (Expect: 100-continue) to a TLS upstream verifies the
// upstream's certificate with the pool's configuration (the Transport's
// connections are handshaken by the pool, to record their plaintext), and
// a Connection field that says "close" beside a name comes back whole,
// 1xx heads before it or not, where http.ReadResponse deleted it.
func TestTLSTransportPathKeepsHopByHopNamesBesideClose(t *testing.T) {
	t.Parallel()
	for _, resp := range []string{
		"HTTP/1.1 200 OK\r\nConnection: close, X-Internal\r\nX-Internal: 1\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: X-Internal\r\nConnection: close\r\nX-Internal: 1\r\nContent-Length: 2\r\n\r\nok",
	} {
		u := newTLSUpstream(t, tls.VersionTLS13, func(c *tls.Conn, _ *heldConn) {
			if _, ok := readHead(bufio.NewReader(c)); ok {
				io.WriteString(c, resp)
			}
		})
		p := NewPool("app", []*Target{{Addr: u.addr()}}, Settings{TLS: u.client}, nil)
		req, _ := http.NewRequest("POST", "https://"+u.addr()+"/", strings.NewReader("body"))
		req.Header.Set("Expect", "100-continue")
		if p.Direct(req) {
			t.Fatal("a request with Expect went to the synchronous client")
		}
		got, err := p.Send(req, nil)
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		b, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if string(b) != "ok" || !got.Close {
			t.Fatalf("%s %q close=%v", got.Status, b, got.Close)
		}
		if c := strings.Join(got.Header["Connection"], ", "); !strings.Contains(c, "X-Internal") {
			t.Errorf("Connection: %q, want it to name X-Internal (upstream sent %q)", c, resp)
		}
		p.Close()
	}
}
