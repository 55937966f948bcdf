//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/internal/devidp"
	"gatehouse/internal/testutil"
)

// Issue 14, header trust: requests crafted on raw sockets against the
// real binary, on both plain HTTP/1.1 servers (h1server in front of
// net/http, and net/http alone), against a scripted upstream that records
// every request head it receives.

// plainServers are the two ways a plain listener serves HTTP/1.1; every
// raw-socket subtest runs under both.
var plainServers = []struct{ name, server string }{
	{"h1server", "fast_http1: true"},
	{"net-http", "fast_http1: false"},
}

// rawUpstream answers by path: /switch-h2c and /switch-ws with a 101 to
// that protocol (whatever was asked), /ws with a 101 to websocket when
// asked for it and then an echo, anything else 200 "ok". It records each
// request head, and the bytes that reached it after a 101.
type rawUpstream struct {
	*testutil.RawServer
	mu        sync.Mutex // guards the following fields
	heads     []*http.Request
	tunnelled []byte
	switched  chan struct{} // one send per 101 connection that ended
}

func startRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	u := &rawUpstream{switched: make(chan struct{}, 16)}
	u.RawServer = testutil.ServeRaw(t, u.serve)
	return u
}

func (u *rawUpstream) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		u.mu.Lock()
		u.heads = append(u.heads, req)
		u.mu.Unlock()
		proto := ""
		switch req.URL.Path {
		case "/switch-h2c":
			proto = "h2c"
		case "/switch-ws", "/ws":
			proto = "websocket"
		}
		if proto == "" {
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
			continue
		}
		fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", proto)
		if req.URL.Path == "/ws" {
			_, _ = io.Copy(c, br) // echo until the gateway closes
		} else {
			b, _ := io.ReadAll(br) // until the gateway closes
			u.mu.Lock()
			u.tunnelled = append(u.tunnelled, b...)
			u.mu.Unlock()
		}
		u.switched <- struct{}{}
		return
	}
}

// take returns the request heads received since the last take.
func (u *rawUpstream) take() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	h := u.heads
	u.heads = nil
	return h
}

// waitSwitchedClosed waits until the gateway has closed an upstream
// connection that was answered 101, and returns what reached it after the
// 101.
func (u *rawUpstream) waitSwitchedClosed(t *testing.T) []byte {
	t.Helper()
	select {
	case <-u.switched:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway kept the upstream connection that answered 101 open")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	b := u.tunnelled
	u.tunnelled = nil
	return b
}

// trustGate runs Gatehouse with server settings server and extra config,
// one route to up; it returns the plain listener's address.
func trustGate(t *testing.T, server, extra string, up *rawUpstream) string {
	t.Helper()
	addr := testutil.FreePort(t)
	testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q], %s }
admin: { listen: "off" }
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
%s`, addr, server, up.Addr, extra), addr)
	return addr
}

// exchange writes request on a new connection to addr and reads one
// response; the connection stays open for the caller.
func exchange(t *testing.T, addr, request string) (*http.Response, string, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return exchangeOn(t, c, request)
}

// Headers through which proxies name the client's address or the URL it
// asked for never reach the app from an untrusted client; X-Real-IP and
// X-Forwarded-Port are Gatehouse's own.
func TestUntrustedClientAddressHeadersNotForwarded(t *testing.T) {
	forged := "X-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nCF-Connecting-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\n" +
		"X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-Forwarded-Uri: /admin\r\nX-Forwarded-Port: 8443\r\n" +
		"X-Envoy-Original-Path: /admin\r\n"
	for _, srv := range plainServers {
		t.Run(srv.name, func(t *testing.T) {
			up := startRawUpstream(t)
			addr := trustGate(t, srv.server, "", up)
			port := addr[strings.LastIndexByte(addr, ':')+1:]
			for _, rq := range []struct{ name, request string }{
				{"GET", "GET /x HTTP/1.1\r\nHost: gw.test:9999\r\n" + forged + "\r\n"},
				{"POST with a body", "POST /x HTTP/1.1\r\nHost: gw.test:9999\r\nContent-Length: 4\r\n" + forged + "\r\nbody"},
			} {
				t.Run(rq.name, func(t *testing.T) {
					resp, _, _, _ := exchange(t, addr, rq.request)
					if resp.StatusCode != 200 {
						t.Fatalf("status %d", resp.StatusCode)
					}
					heads := up.take()
					if len(heads) != 1 {
						t.Fatalf("upstream got %d requests", len(heads))
					}
					var b bytes.Buffer
					_ = heads[0].Header.Write(&b)
					for _, bad := range []string{"6.6.6.6", "/admin", "8443"} { // X-Forwarded-Port is checked below
						if strings.Contains(b.String(), bad) {
							t.Errorf("upstream received the client's %q:\n%s", bad, b.String())
						}
					}
					h := heads[0].Header
					if h.Get("X-Real-Ip") != "127.0.0.1" || h.Get("X-Forwarded-Port") != port {
						t.Errorf("X-Real-IP %q (want 127.0.0.1), X-Forwarded-Port %q (want %s)", h.Get("X-Real-Ip"), h.Get("X-Forwarded-Port"), port)
					}
				})
			}
		})
	}
}

// tlsTrustGate runs Gatehouse with a plain and an HTTPS listener (a
// certificate for gw.test and *.apps.test from ca), clientAuth under
// server.tls, one route to up. It returns the HTTPS address.
func tlsTrustGate(t *testing.T, ca *testutil.CA, clientAuth string, up *rawUpstream) string {
	t.Helper()
	return tlsTrustGateWith(t, "fast_http1: true", ca, clientAuth, up)
}

// tlsTrustGateWith is tlsTrustGate with server settings server.
func tlsTrustGateWith(t *testing.T, server string, ca *testutil.CA, clientAuth string, up *rawUpstream) string {
	t.Helper()
	dir := t.TempDir()
	cert, key := ca.Issue(t, dir, "gw", 1, "gw.test", "*.apps.test")
	plain, tlsAddr := testutil.FreePort(t), testutil.FreePort(t)
	testutil.StartFile(t, writeConfig(t, dir, fmt.Sprintf(`
admin: { listen: "off" }
server:
  listen: [%q]
  %s
  tls:
    listen: [%q]
    certificates: [{ cert: %q, key: %q }]
%s
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, plain, server, tlsAddr, cert, key, clientAuth, up.Addr)), plain)
	return tlsAddr
}

// exchangeOn writes request on c and reads one response; c stays open
// for the caller and is closed at the end of the test.
func exchangeOn(t *testing.T, c net.Conn, request string) (*http.Response, string, net.Conn, *bufio.Reader) {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	method, _, _ := strings.Cut(request, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	return resp, string(body), c, br
}

// tlsExchange is exchange over TLS with cfg (SNI, roots, client
// certificate), speaking HTTP/1.1.
func tlsExchange(t *testing.T, addr string, cfg *tls.Config, request string) (*http.Response, string, net.Conn, *bufio.Reader) {
	t.Helper()
	cfg.NextProtos = []string{"http/1.1"}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return exchangeOn(t, c, request)
}

const (
	h2cUpgrade = "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
	wsUpgrade  = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)

// upgradeCases are the upgrade subtests, over a dial function: plain or
// TLS.
func upgradeCases(t *testing.T, up *rawUpstream, do func(t *testing.T, request string) (*http.Response, string, net.Conn, *bufio.Reader)) {
	noUpgradeUpstream := func(t *testing.T) {
		t.Helper()
		heads := up.take()
		if len(heads) != 1 {
			t.Fatalf("upstream got %d requests, want 1", len(heads))
		}
		if h := heads[0].Header; h["Upgrade"] != nil || h["Http2-Settings"] != nil {
			t.Fatalf("upstream received Upgrade %q, HTTP2-Settings %q", h["Upgrade"], h["Http2-Settings"])
		}
	}
	t.Run("h2c upgrade is served as HTTP/1.1", func(t *testing.T) {
		resp, body, c, br := do(t, "GET /x HTTP/1.1\r\nHost: gw.test\r\n"+h2cUpgrade+"\r\n")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("client got %d %q, want the upstream's 200", resp.StatusCode, body)
		}
		noUpgradeUpstream(t)
		// The connection is still HTTP/1.1.
		io.WriteString(c, "GET /y HTTP/1.1\r\nHost: gw.test\r\n\r\n")
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("next request on the connection: %v %v", resp, err)
		}
		up.take()
	})
	t.Run("101 to an h2c upgrade is 502, no tunnel", func(t *testing.T) {
		resp, _, c, _ := do(t, "GET /switch-h2c HTTP/1.1\r\nHost: gw.test\r\n"+h2cUpgrade+"\r\n")
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("client got %d, want 502", resp.StatusCode)
		}
		io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") // what an h2c client sends next
		if b := up.waitSwitchedClosed(t); len(b) != 0 {
			t.Fatalf("client bytes reached the upstream past the 101: %q", b)
		}
		noUpgradeUpstream(t)
	})
	t.Run("101 to another protocol than websocket is 502", func(t *testing.T) {
		resp, _, _, _ := do(t, "GET /switch-h2c HTTP/1.1\r\nHost: gw.test\r\n"+wsUpgrade+"\r\n")
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("client got %d, want 502", resp.StatusCode)
		}
		if b := up.waitSwitchedClosed(t); len(b) != 0 {
			t.Fatalf("client bytes reached the upstream past the 101: %q", b)
		}
		up.take()
	})
	t.Run("websocket is relayed", func(t *testing.T) {
		resp, _, c, br := do(t, "GET /ws HTTP/1.1\r\nHost: gw.test\r\n"+wsUpgrade+"\r\n")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("client got %d, want 101", resp.StatusCode)
		}
		io.WriteString(c, "ping")
		b := make([]byte, 4)
		if _, err := io.ReadFull(br, b); err != nil || string(b) != "ping" {
			t.Fatalf("echo through the tunnel: %q %v", b, err)
		}
		c.Close()
		up.waitSwitchedClosed(t)
		if heads := up.take(); len(heads) != 1 || heads[0].Header.Get("Upgrade") != "websocket" {
			t.Fatalf("upstream heads %v", heads)
		}
	})
}

// Only WebSocket upgrades are relayed: an h2c upgrade (RFC 7540 §3.2)
// answered 101 by the app turned the client connection into a raw tunnel
// to it, past routing and auth; over TLS too.
func TestOnlyWebSocketUpgradesRelayedRaw(t *testing.T) {
	for _, srv := range plainServers {
		t.Run(srv.name, func(t *testing.T) {
			up := startRawUpstream(t)
			addr := trustGate(t, srv.server, "", up)
			upgradeCases(t, up, func(t *testing.T, request string) (*http.Response, string, net.Conn, *bufio.Reader) {
				return exchange(t, addr, request)
			})
		})
	}
	t.Run("TLS", func(t *testing.T) {
		up := startRawUpstream(t)
		ca := testutil.NewCA(t)
		addr := tlsTrustGate(t, ca, "", up)
		upgradeCases(t, up, func(t *testing.T, request string) (*http.Response, string, net.Conn, *bufio.Reader) {
			return tlsExchange(t, addr, &tls.Config{ServerName: "gw.test", RootCAs: ca.Pool}, request)
		})
	})
}

// On session routes the client's own Authorization header (Basic, or a
// bearer token the route does not take) never reaches the app; with
// forward_session_token the session's access token replaces it.
func TestSessionRouteDropsClientAuthorizationRaw(t *testing.T) {
	for _, srv := range plainServers {
		t.Run(srv.name, func(t *testing.T) {
			up := startRawUpstream(t)
			addr := testutil.FreePort(t)
			origin := "http://" + addr
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			idp, err := devidp.Start(ctx, "127.0.0.1:0", devidp.Options{Clients: []devidp.Client{{
				ID: "gw", Secret: "gw-secret", RedirectURIs: []string{origin + "/_gatehouse/callback"}}}})
			if err != nil {
				t.Fatal(err)
			}
			testutil.Start(t, fmt.Sprintf(`
server: { listen: [%q], %s }
admin: { listen: "off" }
auth:
  issuers: { dev: { issuer: %q, audience: gatehouse } }
  login: { client_id: gw, client_secret: gw-secret, redirect_url: %s/_gatehouse/callback, cookie_secret: 0123456789abcdef0123456789abcdef }
upstreams: { app: { targets: [%q] } }
routes:
  - { name: app, match: { path_prefix: /app }, upstream: app, auth: { accept: [session] } }
  - { name: api, match: { path_prefix: /api }, upstream: app, auth: { accept: [session], forward_session_token: true } }
`, addr, srv.server, idp.Issuer(), origin, up.Addr), addr)
			cookie := loginAt(t, origin, idp, "alice")
			up.take()
			for _, tc := range []struct{ name, path, authz, want string }{
				{"session route, Basic", "/app/x", "Basic YWRtaW46aHVudGVyMg==", ""},
				{"session route, bearer it does not take", "/app/x", "Bearer forged", ""},
				{"forward_session_token, forged bearer", "/api/x", "Bearer forged", "Bearer ey"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp, _, _, _ := exchange(t, addr, "GET "+tc.path+" HTTP/1.1\r\nHost: "+addr+"\r\nCookie: "+cookie+
						"\r\nAuthorization: "+tc.authz+"\r\n\r\n")
					if resp.StatusCode != 200 {
						t.Fatalf("status %d", resp.StatusCode)
					}
					heads := up.take()
					if len(heads) != 1 {
						t.Fatalf("upstream got %d requests", len(heads))
					}
					a := strings.Join(heads[0].Header.Values("Authorization"), ", ")
					if (tc.want == "" && a != "") || !strings.HasPrefix(a, tc.want) {
						t.Errorf("upstream Authorization = %q, want %q…", a, tc.want)
					}
				})
			}
		})
	}
}

// mTLS: a connection opened for one host (SNI) with a certificate valid
// for that host's CA could send "Host: b" and pass b's require check. A
// request whose Host has other client-auth settings than its SNI is 421
// and never reaches the upstream; hosts of one client_auth entry share a
// connection.
func TestClientAuthHostBoundToSNI(t *testing.T) {
	for _, srv := range plainServers { // TLS is net/http's either way; both configs are checked
		t.Run(srv.name, func(t *testing.T) {
			ca, other := testutil.NewCA(t), testutil.NewCA(t)
			dir := t.TempDir()
			caA, caB := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
			testutil.WriteAtomic(t, caA, ca.PEM)
			testutil.WriteAtomic(t, caB, other.PEM)
			up := startRawUpstream(t)
			addr := tlsTrustGateWith(t, srv.server, ca, fmt.Sprintf(`    client_auth:
      - { hosts: [a.apps.test], ca: %q }
      - { hosts: [b.apps.test], ca: %q }
      - { hosts: [c.apps.test, c2.apps.test], ca: %q }
      - { hosts: [maybe.apps.test], ca: %q, mode: optional }`, caA, caB, caA, caB), up)
			certFile, keyFile := ca.Issue(t, t.TempDir(), "client", 99, "alice.clients.test")
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name, sni, host string
				cert            bool
				status          int
			}{
				{"same host", "a.apps.test", "a.apps.test", true, 200},
				{"host with another CA", "a.apps.test", "b.apps.test", true, 421},
				{"host with another CA, optional", "a.apps.test", "maybe.apps.test", true, 421},
				{"host without client auth", "a.apps.test", "gw.test", true, 421},
				{"host of the same entry", "c.apps.test", "c2.apps.test", true, 200},
				{"connection without client auth", "gw.test", "a.apps.test", false, 421},
				{"neither has client auth", "gw.test", "x.apps.test", false, 200},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cfg := &tls.Config{ServerName: tc.sni, RootCAs: ca.Pool}
					if tc.cert {
						cfg.Certificates = []tls.Certificate{pair}
					}
					resp, _, _, _ := tlsExchange(t, addr, cfg, "GET /x HTTP/1.1\r\nHost: "+tc.host+"\r\nX-Client-Cert-Subject: CN=forged\r\n\r\n")
					if resp.StatusCode != tc.status {
						t.Fatalf("SNI %s, Host %s: %d, want %d", tc.sni, tc.host, resp.StatusCode, tc.status)
					}
					heads := up.take()
					switch {
					case tc.status != 200 && len(heads) != 0:
						t.Fatalf("the upstream received the misdirected request: %v", heads[0].Header)
					case tc.status == 200 && len(heads) != 1:
						t.Fatalf("upstream got %d requests", len(heads))
					case tc.status == 200:
						want := ""
						if tc.cert {
							want = "CN=alice.clients.test"
						}
						if got := heads[0].Header.Get("X-Client-Cert-Subject"); got != want {
							t.Fatalf("subject upstream %q, want %q", got, want)
						}
					}
				})
			}
		})
	}
}
