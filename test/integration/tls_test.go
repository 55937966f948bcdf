//go:build integration

package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// tlsGate runs Gatehouse with a plain and an HTTPS listener and two
// certificate files: gw.test (serial 1) and *.apps.test (serial 2).
type tlsGate struct {
	ca         *testutil.CA
	dir        string
	plain, tls string // addresses
	admin      string
	proc       *testutil.Proc
}

func startTLSGate(t *testing.T, extra string) *tlsGate {
	t.Helper()
	g := &tlsGate{ca: testutil.NewCA(t), dir: t.TempDir(), plain: testutil.FreePort(t), tls: testutil.FreePort(t), admin: testutil.FreePort(t)}
	c1, k1 := g.ca.Issue(t, g.dir, "gw", 1, "gw.test")
	c2, k2 := g.ca.Issue(t, g.dir, "apps", 2, "*.apps.test")
	testutil.WriteAtomic(t, filepath.Join(g.dir, "ca.pem"), g.ca.PEM) // for client_auth and upstream tls
	up := startUpstream(t, "app")
	cfg := fmt.Sprintf(`
admin: { listen: %q }
server:
  listen: [%q]
  tls:
    listen: [%q]
    certificates:
      - { cert: %q, key: %q }
      - { cert: %q, key: %q }
    plain_hosts: [plain.apps.test]
%s
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, g.admin, g.plain, g.tls, c1, k1, c2, k2, extra, up.Addr)
	g.proc = testutil.StartFile(t, writeConfig(t, g.dir, cfg), g.plain)
	return g
}

func writeConfig(t *testing.T, dir, cfg string) string {
	t.Helper()
	p := filepath.Join(dir, "gatehouse.yaml")
	testutil.WriteAtomic(t, p, []byte(cfg))
	return p
}

// client dials the HTTPS listener whatever the URL's host, with SNI from
// the URL, trusting the test CA.
func (g *tlsGate) client(cfg *tls.Config) *http.Client {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.RootCAs = g.ca.Pool
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", g.tls)
		}}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func handshake(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

func TestTLSVersionsSNIAndH2(t *testing.T) {
	g := startTLSGate(t, "")
	for _, tc := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
		{"TLS 1.2 refused by default", tls.VersionTLS12, tls.VersionTLS12, false},
		{"TLS 1.1 refused", tls.VersionTLS11, tls.VersionTLS11, false},
		{"TLS 1.0 refused", tls.VersionTLS10, tls.VersionTLS10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := handshake(t, g.tls, &tls.Config{ServerName: "gw.test", RootCAs: g.ca.Pool, MinVersion: tc.min, MaxVersion: tc.max})
			if (err == nil) != tc.ok {
				t.Fatalf("handshake err = %v, want ok %v", err, tc.ok)
			}
			if tc.ok && st.Version != tls.VersionTLS13 {
				t.Fatalf("negotiated %x", st.Version)
			}
		})
	}
	for sni, want := range map[string]int64{"gw.test": 1, "kline.apps.test": 2, "": 1, "other.test": 1} {
		st, err := handshake(t, g.tls, &tls.Config{ServerName: sni, InsecureSkipVerify: true}) //nolint:gosec // checking which certificate is served, not trusting it
		if err != nil {
			t.Fatal(err)
		}
		if got := st.PeerCertificates[0].SerialNumber.Int64(); got != want {
			t.Errorf("SNI %q: certificate %d, want %d", sni, got, want)
		}
	}

	// h2 end to end, HSTS on HTTPS, X-Forwarded-Proto https upstream.
	resp, err := g.client(nil).Get("https://gw.test/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Fatalf("HTTPS: %s, HSTS %q", resp.Proto, resp.Header.Get("Strict-Transport-Security"))
	}
	if !strings.Contains(string(body), `"X-Forwarded-Proto":["https"]`) || !strings.Contains(string(body), "proto=https") {
		t.Fatalf("upstream did not learn the request was HTTPS: %s", body)
	}
	// Gatehouse's own refusals before routing carry HSTS over HTTPS too.
	resp, err = g.client(nil).Get("https://gw.test/" + strings.Repeat("a", 9000))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestURITooLong || resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Fatalf("a long target over HTTPS: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}

	// Plain HTTP: covered hosts are redirected, others (and plain_hosts)
	// served; never HSTS.
	for _, tc := range []struct {
		host, want string
		status     int
	}{
		{"gw.test", "https://gw.test:" + strings.Split(g.tls, ":")[1] + "/a/b?c=1", 308},
		{"x.apps.test", "https://x.apps.test:" + strings.Split(g.tls, ":")[1] + "/a/b?c=1", 308},
		{"plain.apps.test", "", 200},
		{"localhost", "", 200},
	} {
		req, _ := http.NewRequest("GET", "http://"+g.plain+"/a/b?c=1", nil)
		req.Host = tc.host
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.want || resp.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("http://%s: %d → %q (HSTS %q)", tc.host, resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Strict-Transport-Security"))
		}
	}
}

func TestTLS12WhenEnabled(t *testing.T) {
	g := startTLSGate(t, "    min_version: \"1.2\"")
	st, err := handshake(t, g.tls, &tls.Config{ServerName: "gw.test", RootCAs: g.ca.Pool, MaxVersion: tls.VersionTLS12})
	if err != nil || st.Version != tls.VersionTLS12 {
		t.Fatalf("TLS 1.2 with min_version 1.2: %v %x", err, st.Version)
	}
	// Only AEAD suites: a CBC-only client is refused.
	_, err = handshake(t, g.tls, &tls.Config{ServerName: "gw.test", RootCAs: g.ca.Pool, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}})
	if err == nil {
		t.Fatal("a CBC suite was negotiated")
	}
	if _, err := handshake(t, g.tls, &tls.Config{ServerName: "gw.test", RootCAs: g.ca.Pool, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
}

// A certificate file replaced on disk is served to new connections
// without a restart; a connection opened before keeps working; a broken
// file keeps the certificate in service.
func TestCertificateReload(t *testing.T) {
	g := startTLSGate(t, "")
	client := g.client(nil)
	get := func() *http.Response {
		resp, err := client.Get("https://gw.test/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := get(); r.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatal("first certificate")
	}
	g.ca.Issue(t, g.dir, "gw", 7, "gw.test")
	if !testutil.WaitFor(10*time.Second, func() bool {
		st, err := handshake(t, g.tls, &tls.Config{ServerName: "gw.test", RootCAs: g.ca.Pool})
		return err == nil && st.PeerCertificates[0].SerialNumber.Int64() == 7
	}) {
		t.Fatalf("the replaced certificate was not served to new connections\n%s", g.proc.Output())
	}
	// The kept-alive connection from before still works (it keeps the
	// certificate it was opened with).
	if r := get(); r.StatusCode != 200 || r.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("existing connection: %d, serial %d", r.StatusCode, r.TLS.PeerCertificates[0].SerialNumber.Int64())
	}
	testutil.WriteAtomic(t, filepath.Join(g.dir, "gw.crt"), []byte("garbage"))
	if !g.proc.WaitLog("previous certificate stays in service", 10*time.Second) {
		t.Fatalf("no warning about the broken file\n%s", g.proc.Output())
	}
	st, err := handshake(t, g.tls, &tls.Config{ServerName: "gw.test", RootCAs: g.ca.Pool})
	if err != nil || st.PeerCertificates[0].SerialNumber.Int64() != 7 {
		t.Fatalf("after a broken file: %v", err)
	}
}

// sslscan (Debian's TLS scanner) finds nothing below the configured
// minimum and no weak suite: TLS 1.3 only by default; with min_version
// 1.2, TLS 1.2 with ECDHE AEAD suites only.
func TestSSLScan(t *testing.T) {
	bin := testutil.NeedTool(t, "sslscan", "sslscan")
	for _, tc := range []struct {
		name, extra string
		enabled     []string
	}{
		{"default", "", []string{"TLSv1.3"}},
		{"min 1.2", "    min_version: \"1.2\"", []string{"TLSv1.2", "TLSv1.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startTLSGate(t, tc.extra)
			out, err := exec.Command(bin, "--no-colour", "--sni-name=gw.test", g.tls).CombinedOutput()
			if err != nil {
				t.Fatalf("sslscan: %v\n%s", err, out)
			}
			t.Logf("sslscan:\n%s", out)
			protocols, suites := 0, 0
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && (strings.HasPrefix(f[0], "SSLv") || strings.HasPrefix(f[0], "TLSv")):
					want := "disabled"
					if slices.Contains(tc.enabled, f[0]) {
						want = "enabled"
					}
					if f[1] != want {
						t.Errorf("%s %s, want %s", f[0], f[1], want)
					}
					protocols++
				case len(f) >= 5 && (f[0] == "Accepted" || f[0] == "Preferred"):
					suite := f[4]
					aead := strings.Contains(suite, "GCM") || strings.Contains(suite, "CHACHA20")
					ecdhe := f[1] == "TLSv1.3" || strings.HasPrefix(suite, "ECDHE-")
					if !aead || !ecdhe || !slices.Contains(tc.enabled, f[1]) {
						t.Errorf("weak or unexpected suite: %s", line)
					}
					suites++
				}
			}
			if protocols != 6 || suites < 3 {
				t.Fatalf("sslscan reported %d protocols and %d suites; its output changed?", protocols, suites)
			}
		})
	}
}

// The admin listener shows the served certificates, and Prometheus gets
// their expiry.
func TestTLSStatusOnAdmin(t *testing.T) {
	g := startTLSGate(t, "")
	resp, err := http.Get("http://" + g.admin + "/tls")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"gw.test"`) || !strings.Contains(string(b), `"*.apps.test"`) ||
		!strings.Contains(string(b), `"hsts": "max-age=31536000"`) {
		t.Fatalf("/tls: %d %s", resp.StatusCode, b)
	}
	resp, err = http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `gatehouse_tls_certificate_expiry_timestamp_seconds{name="gw.test",source="file"}`) {
		t.Fatalf("no certificate expiry metric:\n%s", b)
	}
}

// clientWithCert is g.client presenting a certificate the test CA issued
// to name.
func (g *tlsGate) clientWithCert(t *testing.T, name string) *http.Client {
	t.Helper()
	certFile, keyFile := g.ca.Issue(t, t.TempDir(), "client", 99, name)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return g.client(&tls.Config{Certificates: []tls.Certificate{pair}})
}

func TestMutualTLS(t *testing.T) {
	g := startTLSGate(t, `    client_auth:
      - { hosts: [admin.apps.test, internal.test], ca: ca.pem }
      - { hosts: [maybe.apps.test, maybe.test], ca: ca.pem, mode: optional }`)
	get := func(c *http.Client, host string, hdr ...string) (int, string) {
		req, _ := http.NewRequest("GET", "https://"+host+"/x", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	alice := g.clientWithCert(t, "alice.clients.test")
	if code, body := get(alice, "admin.apps.test", "X-Client-Cert-Subject", "CN=forged"); code != 200 ||
		!strings.Contains(body, `"X-Client-Cert-Subject":["CN=alice.clients.test"]`) {
		t.Fatalf("with a certificate: %d %s", code, body)
	}
	if code, msg := get(g.client(nil), "admin.apps.test"); code != 0 {
		t.Fatalf("without a certificate the handshake must fail; got %d", code)
	} else {
		t.Logf("without a certificate: %s", msg)
	}
	// A certificate from another CA is refused too.
	other := testutil.NewCA(t)
	cf, kf := other.Issue(t, t.TempDir(), "mallory", 5, "mallory.test")
	pair, _ := tls.LoadX509KeyPair(cf, kf)
	if code, _ := get(g.client(&tls.Config{Certificates: []tls.Certificate{pair}}), "admin.apps.test"); code != 0 {
		t.Fatalf("a foreign certificate: %d", code)
	}
	// A connection made for another name cannot reach the mTLS host.
	req, _ := http.NewRequest("GET", "https://gw.test/x", nil)
	req.Host = "admin.apps.test"
	resp, err := g.client(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("Host admin.apps.test over a gw.test connection: %d, want 421", resp.StatusCode)
	}
	// Optional: served without a certificate (and no subject header), with
	// one the subject goes upstream.
	if code, body := get(g.client(nil), "maybe.apps.test", "X-Client-Cert-Subject", "CN=forged"); code != 200 || strings.Contains(body, "X-Client-Cert-Subject") {
		t.Fatalf("optional without a certificate: %d %s", code, body)
	}
	if code, body := get(alice, "maybe.apps.test"); code != 200 || !strings.Contains(body, "CN=alice.clients.test") {
		t.Fatalf("optional with a certificate: %d %s", code, body)
	}
	// Other hosts never pass a client's copy of the header on.
	if code, body := get(g.client(nil), "gw.test", "X-Client-Cert-Subject", "CN=forged"); code != 200 || strings.Contains(body, "forged") {
		t.Fatalf("public host: %d %s", code, body)
	}
	// Plain HTTP carries no certificate: a host that requires one and
	// that no certificate covers (so it is not redirected) is refused
	// there; a covered one is redirected; an optional one is served
	// without a subject.
	for host, want := range map[string]int{"internal.test": 403, "admin.apps.test": 308, "maybe.test": 200} {
		req, _ := http.NewRequest("GET", "http://"+g.plain+"/x", nil)
		req.Host = host
		req.Header.Set("X-Client-Cert-Subject", "CN=forged")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || strings.Contains(string(body), "forged") {
			t.Errorf("http://%s: %d %s, want %d", host, resp.StatusCode, body, want)
		}
	}
}

// An HTTPS upstream that requires a client certificate: Gatehouse
// verifies it against the configured CA, presents its own certificate,
// and health-checks it over HTTPS.
func TestUpstreamTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	dir := t.TempDir()
	srvCert, srvKey := ca.Issue(t, dir, "upstream", 1, "app.internal")
	ca.Issue(t, dir, "gateway", 2, "gatehouse.internal") // gateway.crt, gateway.key: Gatehouse's client certificate
	testutil.WriteAtomic(t, filepath.Join(dir, "ca.pem"), ca.PEM)
	pair, _ := tls.LoadX509KeyPair(srvCert, srvKey)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client=%s path=%s", r.TLS.PeerCertificates[0].Subject.CommonName, r.URL.Path)
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	up.StartTLS()
	t.Cleanup(up.Close)
	addr := testutil.FreePort(t)
	cfg := fmt.Sprintf(`
admin: { listen: "off" }
server: { listen: [%q] }
upstreams:
  secure:
    targets: [%q]
    tls: { ca: ca.pem, server_name: app.internal, cert: gateway.crt, key: gateway.key }
    health: { active: { type: http, path: /healthz, interval: 200ms, timeout: 150ms, rise: 1 } }
  wrong-ca:
    targets: [%q]
    tls: { server_name: app.internal }
routes:
  - { name: secure, match: { path_prefix: /secure }, upstream: secure }
  - { name: wrong, match: { path_prefix: /wrong }, upstream: wrong-ca }
`, addr, strings.TrimPrefix(up.URL, "https://"), strings.TrimPrefix(up.URL, "https://"))
	p := testutil.StartFile(t, writeConfig(t, dir, cfg), addr)
	if !testutil.WaitFor(10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/secure/x")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && string(b) == "client=gatehouse.internal path=/secure/x"
	}) {
		t.Fatalf("no HTTPS exchange with the upstream\n%s", p.Output())
	}
	resp, err := http.Get("http://" + addr + "/wrong/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("an upstream certificate from an unknown CA: %d, want 502", resp.StatusCode)
	}
}
