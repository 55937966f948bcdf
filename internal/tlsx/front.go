package tlsx

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
)

// Issuer is automatically managed certificates (ACME).
type Issuer interface {
	// Manages reports whether name's certificate is managed.
	Manages(name string) bool
	// GetCertificate serves managed certificates and TLS-ALPN-01
	// challenges.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// HandleHTTPChallenge answers an HTTP-01 challenge request, reporting
	// whether r was one.
	HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool
}

// Front is one snapshot's TLS: where certificates come from, HSTS, and
// which plain-HTTP requests are redirected to HTTPS.
type Front struct {
	Files  *Store // nil: no certificate files
	Issuer Issuer // nil: no ACME
	// HSTS is the Strict-Transport-Security value; nil: not sent.
	HSTS []string
	// Redirect: plain-HTTP requests for covered hosts go to HTTPS (308),
	// except Plain hosts.
	Redirect bool
	Plain    []string
	// HTTPSPort is added to redirect URLs; "" for 443.
	HTTPSPort string
	// ClientAuth: mutual TLS by host (lowercase); nil: none.
	ClientAuth map[string]*ClientAuth
}

// acmeALPN is the TLS-ALPN-01 challenge protocol (RFC 8737).
const acmeALPN = "acme-tls/1"

// GetCertificate implements tls.Config.GetCertificate: a TLS-ALPN-01
// challenge goes to the issuer; otherwise a file's certificate for the
// name, then a managed one, then the first file's as the default.
func (f *Front) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if f.Issuer != nil && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmeALPN {
		// A TLS-ALPN-01 validation offers acme-tls/1 alone (RFC 8737
		// §3), for a name Gatehouse manages; anything else with it is no
		// validation, and gets no challenge certificate.
		if !f.Issuer.Manages(strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))) {
			return nil, errors.New("tlsx: acme-tls/1 for a name not managed here")
		}
		return f.Issuer.GetCertificate(hello)
	}
	if f.Files != nil {
		if c := f.Files.Lookup(hello.ServerName); c != nil {
			return c, nil
		}
	}
	if f.Issuer != nil && f.Issuer.Manages(strings.ToLower(hello.ServerName)) {
		return f.Issuer.GetCertificate(hello)
	}
	if f.Files != nil {
		return f.Files.GetCertificate(hello)
	}
	if f.Issuer != nil {
		return f.Issuer.GetCertificate(hello)
	}
	return nil, errors.New("tlsx: no certificate")
}

// ALPN lists the extra protocols the listeners must offer (the TLS-ALPN-01
// challenge when ACME may use it), after h2 and http/1.1: the server's
// order decides, and a client that offers acme-tls/1 beside them gets
// HTTP.
func (f *Front) ALPN() []string {
	if f.Issuer != nil {
		return []string{acmeALPN}
	}
	return nil
}

// Covers reports whether Gatehouse has (or manages) a certificate for host.
func (f *Front) Covers(host string) bool {
	return (f.Files != nil && f.Files.Lookup(host) != nil) || (f.Issuer != nil && f.Issuer.Manages(host))
}

// RedirectTarget returns where a plain-HTTP request for host (lowercase,
// without port) and requestURI goes, or false when it is served as is.
func (f *Front) RedirectTarget(host, requestURI string) (string, bool) {
	// An IPv6 literal comes as the Host has it, in brackets; certificates
	// and plain_hosts name the address.
	name := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if !f.Redirect || slices.Contains(f.Plain, name) || !f.Covers(name) {
		return "", false
	}
	h := name
	if f.HTTPSPort != "" {
		h = net.JoinHostPort(name, f.HTTPSPort)
	} else if strings.IndexByte(name, ':') >= 0 {
		h = "[" + name + "]"
	}
	return "https://" + h + requestURI, true
}

// Status is what the admin listener shows of TLS.
type Status struct {
	Files []CertStatus `json:"files,omitempty"`
	ACME  []ACMEStatus `json:"acme,omitempty"`
	HSTS  string       `json:"hsts,omitempty"`
}

// Status reports the certificates served.
func (f *Front) Status() Status {
	var st Status
	if f.Files != nil {
		st.Files = f.Files.Status()
	}
	if a, ok := f.Issuer.(*ACME); ok {
		st.ACME = a.Status()
	}
	if len(f.HSTS) > 0 {
		st.HSTS = f.HSTS[0]
	}
	return st
}
