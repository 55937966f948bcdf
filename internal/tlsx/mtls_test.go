package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

// The subject sent upstream names the certificate's subject and no
// other: a control character is hex-escaped (RFC 4514 §2.4), not removed
// ("ad\x00min" removed would be admin), and cannot be confused with a
// backslash the name holds itself.
func TestSubjectEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cn, want string
	}{
		{"alice", "CN=alice"},
		{"ad\x00min", `CN=ad\00min`},
		{"admin\n", `CN=admin\0A`},
		{"a\x7fb", `CN=a\7Fb`},
		{`ad\00min`, `CN=ad\\00min`}, // the name's own backslash, escaped by Go
		{"tab\there", `CN=tab\09here`},
		{"ünïcödé", "CN=ünïcödé"},
	} {
		cs := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: tc.cn}}}}}
		if got := Subject(cs); got != tc.want {
			t.Errorf("CN %q: Subject = %q, want %q", tc.cn, got, tc.want)
		}
	}
	if got := Subject(&tls.ConnectionState{}); got != "" {
		t.Errorf("no verified chain: %q", got)
	}
}
