package tlsx

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"

	"gatehouse/internal/testutil"
)

// fakeIssuer manages one name and marks the certificates it hands out.
type fakeIssuer struct {
	name string
	cert *tls.Certificate
}

func (f *fakeIssuer) Manages(n string) bool { return n == f.name }
func (f *fakeIssuer) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.cert, nil
}
func (f *fakeIssuer) HandleHTTPChallenge(http.ResponseWriter, *http.Request) bool { return false }

func TestFrontCertificateOrder(t *testing.T) {
	ca := testutil.NewCA(t)
	dir := t.TempDir()
	c, k := ca.Issue(t, dir, "files", 1, "files.test", "both.test")
	files := NewStore([]CertFile{{c, k}})
	if _, err := files.Refresh(); err != nil {
		t.Fatal(err)
	}
	acme := &fakeIssuer{name: "acme.test", cert: &tls.Certificate{}}
	f := &Front{Files: files, Issuer: acme}
	for _, tc := range []struct {
		name  string
		hello tls.ClientHelloInfo
		acme  bool
	}{
		{"file name", tls.ClientHelloInfo{ServerName: "files.test"}, false},
		{"managed name", tls.ClientHelloInfo{ServerName: "ACME.test"}, true},
		{"unknown name: the first file", tls.ClientHelloInfo{ServerName: "other.test"}, false},
		{"TLS-ALPN-01 challenge", tls.ClientHelloInfo{ServerName: "acme.test", SupportedProtos: []string{"acme-tls/1"}}, true},
		// RFC 8737 §3: a validation offers acme-tls/1 alone.
		{"acme-tls/1 beside HTTP is no challenge", tls.ClientHelloInfo{ServerName: "files.test", SupportedProtos: []string{"acme-tls/1", "h2"}}, false},
	} {
		got, err := f.GetCertificate(&tc.hello)
		if err != nil || (got == acme.cert) != tc.acme {
			t.Errorf("%s: from ACME %v, want %v (err %v)", tc.name, got == acme.cert, tc.acme, err)
		}
	}
	// A challenge for a name not managed here gets no certificate at all.
	if got, err := f.GetCertificate(&tls.ClientHelloInfo{ServerName: "files.test", SupportedProtos: []string{"acme-tls/1"}}); err == nil {
		t.Errorf("acme-tls/1 for an unmanaged name: a certificate (from ACME %v)", got == acme.cert)
	}
	if alpn := f.ALPN(); len(alpn) != 1 || alpn[0] != "acme-tls/1" {
		t.Errorf("ALPN %v", alpn)
	}
	// The server's order decides ALPN: HTTP first, so a client that
	// offers acme-tls/1 beside h2 speaks HTTP.
	if got := ServerConfig(tls.VersionTLS13, f.GetCertificate, f.ALPN()...).NextProtos; len(got) != 3 || got[0] != "h2" || got[1] != "http/1.1" || got[2] != "acme-tls/1" {
		t.Errorf("NextProtos %v", got)
	}
}

func TestRedirectTarget(t *testing.T) {
	ca := testutil.NewCA(t)
	c, k := ca.Issue(t, t.TempDir(), "gw", 1, "gw.test", "plain.test", "::1")
	files := NewStore([]CertFile{{c, k}})
	if _, err := files.Refresh(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		front  Front
		host   string
		want   string
		redirs bool
	}{
		{"covered", Front{Files: files, Redirect: true}, "gw.test", "https://gw.test/a?b", true},
		{"other port", Front{Files: files, Redirect: true, HTTPSPort: "8443"}, "gw.test", "https://gw.test:8443/a?b", true},
		{"IPv6", Front{Files: files, Redirect: true}, "::1", "https://[::1]/a?b", true},
		{"IPv6 other port", Front{Files: files, Redirect: true, HTTPSPort: "8443"}, "::1", "https://[::1]:8443/a?b", true},
		// As the engine passes it: the Host's form, in brackets.
		{"IPv6 as the Host has it", Front{Files: files, Redirect: true}, "[::1]", "https://[::1]/a?b", true},
		{"IPv6 as the Host has it, other port", Front{Files: files, Redirect: true, HTTPSPort: "8443"}, "[::1]", "https://[::1]:8443/a?b", true},
		{"IPv6 plain host", Front{Files: files, Redirect: true, Plain: []string{"::1"}}, "[::1]", "", false},
		{"plain host", Front{Files: files, Redirect: true, Plain: []string{"plain.test"}}, "plain.test", "", false},
		{"not covered", Front{Files: files, Redirect: true}, "localhost", "", false},
		{"redirect_http off", Front{Files: files}, "gw.test", "", false},
	} {
		got, ok := tc.front.RedirectTarget(tc.host, "/a?b")
		if ok != tc.redirs || got != tc.want {
			t.Errorf("%s: %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.redirs)
		}
	}
}

// TestChallengeHandshakeLogsAtDebug: certmagic reports a handshake that
// asks for a challenge certificate when none is active as an error. Any
// client can send one, as often as it likes, so it is logged at DEBUG;
// other errors keep their level.
func TestChallengeHandshakeLogsAtDebug(t *testing.T) {
	var buf bytes.Buffer
	z := zap.New(slogCore{l: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	z.Error("tls-alpn challenge", zap.String("server_name", "x.evil.example"))
	z.Error("could not get certificate from issuer")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"level":"DEBUG"`) || !strings.Contains(lines[1], `"level":"ERROR"`) {
		t.Fatalf("logged:\n%s", buf.String())
	}
}
