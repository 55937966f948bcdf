package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// clientAddressHeaders are the headers through which a proxy tells an app
// who the client is or which URL it asked for; apps believe them.
var clientAddressHeaders = []string{"X-Real-IP", "True-Client-IP", "CF-Connecting-IP", "X-Client-IP",
	"X-Original-URL", "X-Rewrite-URL", "X-Forwarded-Uri", "X-Forwarded-Port", "X-Envoy-Original-Path"}

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
		{"trusted direct", trusted, "GET", map[string]string{"X-Real-Ip": "203.0.113.9",
			"True-Client-Ip": "forged", "Cf-Connecting-Ip": "forged", "X-Client-Ip": "forged", "X-Original-Url": "forged",
			"X-Rewrite-Url": "forged", "X-Forwarded-Uri": "forged", "X-Envoy-Original-Path": "forged"}},
		{"trusted ReverseProxy", trusted, "POST", map[string]string{"X-Real-Ip": "203.0.113.9",
			"True-Client-Ip": "forged", "Cf-Connecting-Ip": "forged", "X-Client-Ip": "forged", "X-Original-Url": "forged",
			"X-Rewrite-Url": "forged", "X-Forwarded-Uri": "forged", "X-Envoy-Original-Path": "forged"}},
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
