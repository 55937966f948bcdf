//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

// pebble is Debian's pebble, a real ACME (RFC 8555) server, as a child
// process. It validates challenges for real: it resolves names through
// the test's DNS server and connects to httpPort (HTTP-01) and tlsPort
// (TLS-ALPN-01) on the address it finds.
type pebble struct {
	dir, mgmt string
	listen    string       // the ACME directory's host:port
	ca        *testutil.CA // signs pebble's own HTTPS certificate
	caFile    string
	out       *lockedBuffer // its output
}

func startPebble(t *testing.T, dns *testutil.DNS, httpPort, tlsPort string, validity time.Duration) *pebble {
	t.Helper()
	bin := testutil.NeedTool(t, "pebble", "pebble")
	p := &pebble{dir: t.TempDir(), ca: testutil.NewCA(t)}
	cert, key := p.ca.Issue(t, p.dir, "pebble", 1, "127.0.0.1", "localhost")
	p.caFile = filepath.Join(p.dir, "pebble-https-ca.pem")
	os.WriteFile(p.caFile, p.ca.PEM, 0o600)
	listen, mgmt := testutil.FreePort(t), testutil.FreePort(t)
	p.mgmt, p.listen = mgmt, listen
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt, "certificate": cert, "privateKey": key,
		"httpPort": atoi(httpPort), "tlsPort": atoi(tlsPort), "ocspResponderURL": "",
		"externalAccountBindingRequired": false, "certificateValidityPeriod": uint64(validity / time.Second),
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(p.dir, "pebble.json")
	os.WriteFile(cfgFile, b, 0o600)
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dns.Addr)
	// No random sleeps before validation, no random nonce rejections: the
	// test measures Gatehouse, not pebble's chaos.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	out := &lockedBuffer{}
	p.out = out
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("pebble output:\n%s", out.String())
		}
	})
	if err := testutil.WaitListening(listen, 20*time.Second, done); err != nil {
		t.Fatalf("pebble: %v\n%s", err, out.String())
	}
	return p
}

func atoi(port string) int {
	var n int
	fmt.Sscan(port, &n)
	return n
}

// roots returns pebble's current issuing roots (made fresh at each start).
func (p *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca.Pool}}}
	resp, err := c.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble roots: %s", b)
	}
	// Pebble's leaf certificates chain to an intermediate; the roots file
	// is what clients trust.
	return pool
}

// served returns the certificate Gatehouse serves for name at addr,
// verified against roots, or an error.
func served(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// Gatehouse obtains certificates from a real ACME server with each
// challenge type, serves them, and renews them when they come due.
func TestACMEWithPebble(t *testing.T) {
	dns := testutil.StartDNS(t)
	// One port pair on two loopback addresses: pebble validates every name
	// on the same ports, so each Gatehouse has its own address.
	httpPort := strings.Split(testutil.FreePort(t), ":")[1]
	tlsPort := strings.Split(testutil.FreePort(t), ":")[1]
	p := startPebble(t, dns, httpPort, tlsPort, 30*time.Second)
	for i, tc := range []struct {
		name, challenge string
		renew           bool
	}{
		{"http-01", "http-01", true},
		{"tls-alpn-01", "tls-alpn-01", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip := fmt.Sprintf("127.0.0.%d", i+2)
			host := tc.name + ".gatehouse.test"
			dns.SetIPs(host, ip)
			plain, secure := net.JoinHostPort(ip, httpPort), net.JoinHostPort(ip, tlsPort)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
			t.Cleanup(up.Close)
			gw := testutil.Start(t, fmt.Sprintf(`
admin: { listen: "off" }
server:
  listen: [%q]
  tls:
    listen: [%q]
    acme:
      names: [%q]
      directory: https://%s/dir
      ca_root: %q
      storage: %q
      challenges: [%s]
      renewal_window_ratio: 0.5
      renew_check_interval: 1s
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, plain, secure, host, p.listen, p.caFile, t.TempDir(), tc.challenge, strings.TrimPrefix(up.URL, "http://")), plain)
			roots := p.roots(t)
			var first *x509.Certificate
			if !testutil.WaitFor(60*time.Second, func() bool {
				c, err := served(secure, host, roots)
				first = c
				return err == nil
			}) {
				t.Fatalf("no certificate from pebble for %s by %s", host, tc.challenge)
			}
			if first.DNSNames[0] != host {
				t.Fatalf("certificate for %v", first.DNSNames)
			}
			// Served for real: an HTTPS request through the certificate.
			client := &http.Client{Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: roots},
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "tcp", secure)
				},
			}}
			resp, err := client.Get("https://" + host + "/hello")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
				t.Fatalf("HTTPS with the ACME certificate: %d", resp.StatusCode)
			}
			if !tc.renew {
				return
			}
			// 30-second certificates, renewed in their second half.
			if !testutil.WaitFor(45*time.Second, func() bool {
				c, err := served(secure, host, roots)
				return err == nil && c.SerialNumber.Cmp(first.SerialNumber) != 0
			}) {
				t.Fatal("the certificate was not renewed")
			}
			if !gw.WaitLog(`"renewal":true`, 5*time.Second) {
				t.Fatalf("no renewal event logged:\n%s", gw.Output())
			}
		})
	}
}

// Two instances sharing one ACME storage directory obtain one certificate
// between them (certmagic's storage lock), and either can answer the
// challenge: the CA reaches only the first (DNS), whichever instance
// placed the order.
func TestACMESharedStorage(t *testing.T) {
	dns := testutil.StartDNS(t)
	httpPort := strings.Split(testutil.FreePort(t), ":")[1]
	tlsPort := strings.Split(testutil.FreePort(t), ":")[1]
	p := startPebble(t, dns, httpPort, tlsPort, time.Hour)
	host := "shared.gatehouse.test"
	dns.SetIPs(host, "127.0.0.4")
	storage := t.TempDir()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	t.Cleanup(up.Close)
	var secures []string
	for _, ip := range []string{"127.0.0.4", "127.0.0.5"} {
		plain, secure := net.JoinHostPort(ip, httpPort), net.JoinHostPort(ip, tlsPort)
		secures = append(secures, secure)
		testutil.Start(t, fmt.Sprintf(`
admin: { listen: "off" }
server:
  listen: [%q]
  tls:
    listen: [%q]
    acme:
      names: [%q]
      directory: https://%s/dir
      ca_root: %q
      storage: %q
      challenges: [http-01]
      renew_check_interval: 1s
upstreams: { app: { targets: [%q] } }
routes: [{ name: app, match: { path_prefix: / }, upstream: app }]
`, plain, secure, host, p.listen, p.caFile, storage, strings.TrimPrefix(up.URL, "http://")), plain)
	}
	roots := p.roots(t)
	var serials []string
	for _, secure := range secures {
		var c *x509.Certificate
		if !testutil.WaitFor(60*time.Second, func() bool {
			var err error
			c, err = served(secure, host, roots)
			return err == nil
		}) {
			t.Fatalf("%s serves no certificate for %s", secure, host)
		}
		serials = append(serials, c.SerialNumber.String())
	}
	if serials[0] != serials[1] {
		t.Fatalf("the instances serve different certificates: %v", serials)
	}
	if n := strings.Count(p.out.String(), "Issued certificate serial"); n != 1 {
		t.Fatalf("pebble issued %d certificates for two instances sharing storage, want 1\n%s", n, p.out.String())
	}
}
