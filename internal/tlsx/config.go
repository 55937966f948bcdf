package tlsx

import (
	"crypto/tls"
	"fmt"
)

// Suites12 are the TLS 1.2 suites allowed when min_version is 1.2: ECDHE
// key exchange and AEAD ciphers only (TLS 1.3's suites are not
// configurable and all qualify).
var Suites12 = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// MinVersion parses "1.2" or "1.3".
func MinVersion(s string) (uint16, error) {
	switch s {
	case "1.3", "":
		return tls.VersionTLS13, nil
	case "1.2":
		return tls.VersionTLS12, nil
	}
	return 0, fmt.Errorf("tls min_version %q: must be 1.2 or 1.3", s)
}

// ServerConfig is the TLS configuration of an HTTPS listener: minimum
// version min, certificates from get, ALPN h2 then http/1.1 (and extra
// protocols first, such as ACME's acme-tls/1).
func ServerConfig(min uint16, get func(*tls.ClientHelloInfo) (*tls.Certificate, error), extraALPN ...string) *tls.Config {
	c := &tls.Config{
		MinVersion:     min,
		GetCertificate: get,
		NextProtos:     append([]string{"h2", "http/1.1"}, extraALPN...),
	}
	if min < tls.VersionTLS13 {
		c.CipherSuites = Suites12
	}
	return c
}
