package tlsx

import (
	"crypto/tls"
	"net/http"
	"testing"

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
		{"TLS-ALPN-01 challenge, even for a file's name", tls.ClientHelloInfo{ServerName: "files.test", SupportedProtos: []string{"acme-tls/1"}}, true},
	} {
		got, err := f.GetCertificate(&tc.hello)
		if err != nil || (got == acme.cert) != tc.acme {
			t.Errorf("%s: from ACME %v, want %v (err %v)", tc.name, got == acme.cert, tc.acme, err)
		}
	}
	if alpn := f.ALPN(); len(alpn) != 1 || alpn[0] != "acme-tls/1" {
		t.Errorf("ALPN %v", alpn)
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
