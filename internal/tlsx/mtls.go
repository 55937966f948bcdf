package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
)

// ClientAuth is mutual TLS for the hosts of one client_auth entry, which
// share one value: two hosts have the same client-auth settings exactly
// when they map to the same *ClientAuth (or both to none).
type ClientAuth struct {
	Require bool           // no verified certificate: no request
	Pool    *x509.CertPool // roots of client certificates
	Header  string         // canonical header for the verified subject
}

// LoadPool reads PEM certificates from path into a new pool.
func LoadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificates", path)
	}
	return pool, nil
}

// ForClient returns the TLS configuration for a handshake that names a
// host with mutual TLS, derived from base; nil for other hosts (base
// applies). It is tls.Config.GetConfigForClient's body.
func (f *Front) ForClient(base *tls.Config, hello *tls.ClientHelloInfo) *tls.Config {
	ca := f.ForServerName(hello.ServerName)
	if ca == nil {
		return nil
	}
	c := base.Clone()
	c.GetConfigForClient = nil
	c.ClientCAs = ca.Pool
	c.ClientAuth = tls.VerifyClientCertIfGiven
	if ca.Require {
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

// ForServerName returns the client-auth settings of the host a TLS
// connection was made for (its SNI), nil when it has none.
func (f *Front) ForServerName(sni string) *ClientAuth {
	return f.ClientAuth[strings.ToLower(strings.TrimSuffix(sni, "."))]
}

// Subject is the verified client certificate's subject (RFC 4514), or ""
// when none was verified. A control character, which a header value
// cannot hold, is written as RFC 4514 §2.4's hex escape ("\00"): removed,
// "CN=ad\x00min" would name CN=admin. (Go escapes a backslash itself as
// "\\", so the escape cannot be confused with the name's own text.)
func Subject(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return escapeCTL(cs.VerifiedChains[0][0].Subject.String())
}

func escapeCTL(s string) string {
	if !strings.ContainsFunc(s, isCTL) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isCTL(r) {
			fmt.Fprintf(&b, "\\%02X", r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isCTL(r rune) bool { return r < 0x20 || r == 0x7f }

// UpstreamConfig is the client TLS configuration for an upstream: roots
// from ca (system roots when ""), SNI and verification name serverName
// (the target's host when ""), and a client certificate when certFile is
// set.
func UpstreamConfig(ca, serverName, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if ca != "" {
		pool, err := LoadPool(ca)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
