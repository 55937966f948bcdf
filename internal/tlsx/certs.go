// Package tlsx is Gatehouse's TLS: the server configuration (TLS 1.3 by
// default, modern AEAD suites only when 1.2 is allowed, ALPN h2 and
// http/1.1) and the certificate store, which picks a certificate by SNI
// and reloads certificate files when they change.
//
// Invariants:
//   - A handshake never waits on I/O: GetCertificate reads an immutable
//     index through an atomic pointer.
//   - A certificate file that fails to load never replaces a working one:
//     the old pair stays in service and Refresh reports why.
package tlsx

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CertFile is a certificate chain and its key, PEM files.
type CertFile struct {
	Cert, Key string
}

// Store serves certificates from files, chosen by SNI.
type Store struct {
	files []CertFile

	mu     sync.Mutex // guards loaded (Refresh)
	loaded []loadedPair

	index atomic.Pointer[index]
}

type loadedPair struct {
	certStamp, keyStamp stamp
	cert                *tls.Certificate
}

// stamp identifies a file's content cheaply: size and modification time,
// and the bytes when those tie (a rewrite within the mtime granularity).
type stamp struct {
	size    int64
	modTime time.Time
	data    []byte
}

type index struct {
	exact    map[string]*tls.Certificate // lowercase DNS name or IP
	wildcard map[string]*tls.Certificate // "example.com" for "*.example.com"
	def      *tls.Certificate
	status   []CertStatus
}

// CertStatus describes a served certificate for the admin listener.
type CertStatus struct {
	File     string    `json:"file"`
	Names    []string  `json:"names"`
	NotAfter time.Time `json:"not_after"`
	Error    string    `json:"error,omitempty"` // the last failed reload, if any
}

// NewStore returns a store for files; call Refresh to load them.
func NewStore(files []CertFile) *Store {
	return &Store{files: files, loaded: make([]loadedPair, len(files))}
}

// Refresh loads the files that changed since the last call. A file that
// fails keeps its previous certificate (if it had one); the error names
// every failure. It reports whether every file has a certificate.
func (s *Store) Refresh() (complete bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	status := make([]CertStatus, len(s.files))
	complete = true
	for i, f := range s.files {
		status[i].File = f.Cert
		lp := &s.loaded[i]
		if err := lp.refresh(f); err != nil {
			status[i].Error = err.Error()
			errs = append(errs, err)
		}
		if lp.cert == nil {
			complete = false
			continue
		}
		status[i].Names = names(lp.cert.Leaf)
		status[i].NotAfter = lp.cert.Leaf.NotAfter
	}
	s.rebuild(status)
	return complete, errors.Join(errs...)
}

// refresh reloads f if it changed; on failure the old pair stays.
func (lp *loadedPair) refresh(f CertFile) error {
	cs, cerr := readStamp(f.Cert)
	ks, kerr := readStamp(f.Key)
	if cerr != nil || kerr != nil {
		return errors.Join(cerr, kerr)
	}
	if lp.cert != nil && cs.same(lp.certStamp) && ks.same(lp.keyStamp) {
		return nil
	}
	cert, err := tls.X509KeyPair(cs.data, ks.data)
	if err == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	if err != nil {
		return fmt.Errorf("%s: %w", f.Cert, err)
	}
	*lp = loadedPair{certStamp: cs, keyStamp: ks, cert: &cert}
	return nil
}

func (s *Store) rebuild(status []CertStatus) {
	ix := &index{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}, status: status}
	for _, lp := range s.loaded {
		if lp.cert == nil {
			continue
		}
		if ix.def == nil {
			ix.def = lp.cert
		}
		for _, n := range names(lp.cert.Leaf) {
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := ix.wildcard[rest]; !dup {
					ix.wildcard[rest] = lp.cert
				}
			} else if _, dup := ix.exact[n]; !dup {
				ix.exact[n] = lp.cert
			}
		}
	}
	s.index.Store(ix)
}

// names are a certificate's DNS names and IP addresses, lowercase.
func names(c *x509.Certificate) []string {
	var out []string
	for _, n := range c.DNSNames {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// Lookup returns the certificate for a server name: an exact name, else a
// wildcard one label deep, else nil.
func (s *Store) Lookup(name string) *tls.Certificate {
	ix := s.index.Load()
	if ix == nil {
		return nil
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if c := ix.exact[name]; c != nil {
		return c
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		return ix.wildcard[rest]
	}
	return nil
}

// GetCertificate implements tls.Config.GetCertificate: by SNI, or the
// first file's certificate for clients without SNI or with an unknown
// name.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := s.Lookup(hello.ServerName); c != nil {
		return c, nil
	}
	if ix := s.index.Load(); ix != nil && ix.def != nil {
		return ix.def, nil
	}
	return nil, errors.New("tlsx: no certificate")
}

// Status lists the served certificates.
func (s *Store) Status() []CertStatus {
	if ix := s.index.Load(); ix != nil {
		return ix.status
	}
	return nil
}

func readStamp(path string) (stamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{size: st.Size(), modTime: st.ModTime(), data: b}, nil
}

func (a stamp) same(b stamp) bool {
	return a.size == b.size && a.modTime.Equal(b.modTime) && bytes.Equal(a.data, b.data)
}
