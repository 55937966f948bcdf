package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gatehouse/internal/testutil"
)

// clientAddressHeaders are the headers through which a proxy tells an app
// who the client is or which URL it asked for; apps believe them.
var clientAddressHeaders = []string{"X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "X-Client-IP",
	"X-Original-URL", "X-Rewrite-URL", "X-Forwarded-Uri", "X-Forwarded-Port", "X-Envoy-Original-Path",
	// Review of issue 14: the client address (Rails' remote_ip reads
	// Client-IP), the scheme (Rack believes X-Forwarded-Ssl and
	// X-Forwarded-Scheme before X-Forwarded-Proto), the host and path,
	// and the method (X-HTTP-Method-Override gets past match.methods).
	"Client-IP", "X-Cluster-Client-IP", "Fastly-Client-IP", "X-ProxyUser-Ip", "X-Original-Forwarded-For",
	"X-Forwarded-Scheme", "X-Forwarded-Ssl", "Front-End-Https", "X-Url-Scheme",
	"X-Host", "X-Original-Host", "X-Forwarded-Server", "X-Forwarded-Path",
	"X-HTTP-Method-Override", "X-Http-Method", "X-Method-Override"}

// trustedWant is what a trusted proxy's forged values come out as: kept,
// but X-Real-IP is Gatehouse's own (from X-Forwarded-For).
func trustedWant() map[string]string {
	m := map[string]string{}
	for _, h := range clientAddressHeaders {
		m[http.CanonicalHeaderKey(h)] = "forged"
	}
	m["X-Real-Ip"] = "203.0.113.9"
	return m
}

// Issue 14: an untrusted client's X-Real-IP, X-Original-URL and the like
// reached the app, which routes or rate-limits by them; X-Forwarded-Port
// came from the client's Host. Both upstream paths (the direct client and
// ReverseProxy, for a request with a body) must send the same.
func TestClientAddressHeadersFromUntrustedPeerDropped(t *testing.T) {
	t.Parallel()
	up := newRecorder(t, nil)
	yaml := `
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`
	untrusted := newGate(t, fmt.Sprintf(yaml, hostport(up.Server)))
	trusted := newGate(t, fmt.Sprintf("server: { trusted_proxies: [127.0.0.1] }\n"+yaml, hostport(up.Server)))
	forged := []string{"X-Forwarded-For", "203.0.113.9"}
	for _, h := range clientAddressHeaders {
		forged = append(forged, h, "forged")
	}
	for _, tc := range []struct {
		name   string
		g      *gate
		method string
		want   map[string]string // nil: only Gatehouse's own X-Real-IP and X-Forwarded-Port
	}{
		{"untrusted direct", untrusted, "GET", nil},
		{"untrusted ReverseProxy", untrusted, "POST", nil},
		{"trusted direct", trusted, "GET", trustedWant()},
		{"trusted ReverseProxy", trusted, "POST", trustedWant()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader("payload") // not a direct request: ReverseProxy sends it
			}
			req, _ := http.NewRequest(tc.method, tc.g.srv.URL+"/x", body)
			req.Host = "gw.example:9999" // not the listener's port
			for i := 0; i+1 < len(forged); i += 2 {
				req.Header.Set(forged[i], forged[i+1])
			}
			if resp, _ := tc.g.do(t, req); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			listenerPort := strings.Split(hostport(tc.g.srv), ":")[1]
			want := map[string]string{"X-Real-Ip": "127.0.0.1", "X-Forwarded-Port": listenerPort}
			if tc.want != nil {
				want = tc.want
				want["X-Forwarded-Port"] = listenerPort // "forged" is no port: not kept
			}
			got := map[string]string{}
			for k, v := range up.last(t).Header {
				for _, h := range clientAddressHeaders {
					if k == http.CanonicalHeaderKey(h) {
						got[k] = strings.Join(v, ",")
					}
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("upstream's client-address headers (-want +got):\n%s", diff)
			}
		})
	}
}

// Issue 14: "Upgrade: h2c" (with HTTP2-Settings) was relayed, and the
// app's 101 made the client connection a raw tunnel to it, past routing
// and auth. Only a WebSocket upgrade goes upstream, and only a 101 to
// WebSocket, asked for, comes back.
func TestOnlyWebSocketUpgradesRelayed(t *testing.T) {
	t.Parallel()
	up := newScriptedUpstream(t, map[string]string{
		"ok":      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"h2c":     "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
		"ws":      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"bare101": "HTTP/1.1 101 Switching Protocols\r\n\r\n",
	})
	g := appGate(t, up.Addr)
	// Every request asks to close, so rawExchange reads to the end.
	h2c := "Connection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
	ws := "Connection: Upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, tc := range []struct {
		name, path, method, extra string
		status                    string
		upgrade                   string // the Upgrade the upstream must receive
	}{
		{"websocket relayed", "/case/ws", "GET", ws, "101 Switching Protocols", "websocket"},
		{"h2c upgrade ignored", "/case/ok", "GET", h2c, "200 OK", ""},
		{"h2c upgrade ignored with a body", "/case/ok", "POST", h2c + "Content-Length: 4\r\n", "200 OK", ""},
		{"HTTP2-Settings alone", "/case/ok", "GET", "Connection: close\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n", "200 OK", ""},
		{"Upgrade listing websocket and h2c", "/case/ok", "GET", "Connection: Upgrade, close\r\nUpgrade: websocket, h2c\r\n", "200 OK", ""},
		{"101 h2c to an h2c upgrade", "/case/h2c", "GET", h2c, "502 Bad Gateway", ""},
		{"101 h2c to a body with an h2c upgrade", "/case/h2c", "POST", h2c + "Content-Length: 4\r\n", "502 Bad Gateway", ""},
		{"101 unasked", "/case/ws", "GET", "Connection: close\r\n", "502 Bad Gateway", ""},
		{"101 without Upgrade to a websocket upgrade", "/case/bare101", "GET", ws, "502 Bad Gateway", "websocket"},
		{"101 h2c to a websocket upgrade", "/case/h2c", "GET", ws, "502 Bad Gateway", "websocket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.method + " " + tc.path + " HTTP/1.1\r\nHost: app.test\r\n" + tc.extra + "\r\n"
			if tc.method == "POST" {
				req += "body"
			}
			got := rawExchange(t, g.srv.Listener.Addr().String(), req)
			if got.Status != tc.status {
				t.Errorf("client got %q (%s), want %q", got.Status, got.Err, tc.status)
			}
			heads := up.take()
			if len(heads) != 1 {
				t.Fatalf("upstream got %d requests", len(heads))
			}
			h := heads[0].Header
			if u := strings.Join(h["Upgrade"], ","); u != tc.upgrade || h["Http2-Settings"] != nil {
				t.Errorf("upstream received Upgrade %q (want %q), HTTP2-Settings %q", u, tc.upgrade, h["Http2-Settings"])
			}
		})
	}
}

// Issue 14: on a route a browser reaches with its login session, the
// client's own Authorization header (Basic, or a bearer token the route
// does not take) went to the app beside the verified session. It is
// removed; a route with forward_session_token sends the session's token
// in its place.
func TestSessionRouteDropsClientAuthorization(t *testing.T) {
	gw, up, _ := loginGate(t)
	alice := testutil.NewJar()
	login(t, alice, gw.URL, "/admin/x", "alice")
	for _, tc := range []struct {
		name, path, authz string
		want              func(string) bool
	}{
		{"session route, Basic", "/admin/x", "Basic YWRtaW46aHVudGVyMg==", func(a string) bool { return a == "" }},
		{"forward_session_token route, forged bearer", "/api/x", "Bearer forged",
			func(a string) bool { return strings.HasPrefix(a, "Bearer ey") }},
		{"forward_session_token route, Basic", "/api/x", "Basic YWRtaW46aHVudGVyMg==",
			func(a string) bool { return strings.HasPrefix(a, "Bearer ey") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, _ := alice.Do(t, "GET", gw.URL+tc.path, "Authorization", tc.authz); r.StatusCode != 200 {
				t.Fatalf("status %d", r.StatusCode)
			}
			if a := strings.Join(up.last(t).Header.Values("Authorization"), ", "); !tc.want(a) {
				t.Errorf("upstream Authorization = %q", a)
			}
		})
	}
}
