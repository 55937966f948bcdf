package tlsx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ACMEConfig configures automatic certificates (RFC 8555).
type ACMEConfig struct {
	Names     []string
	Email     string
	Directory string
	CARoot    string // PEM file of roots for the directory; "" the system's
	Storage   string // directory for the account, certificates and locks
	HTTP01    bool   // answer HTTP-01 on the plain listeners
	TLSALPN01 bool   // answer TLS-ALPN-01 on the HTTPS listeners
	// HTTPPort and TLSPort are Gatehouse's own listener ports: certmagic
	// would otherwise try to bind :80 and :443 for challenges.
	HTTPPort, TLSPort  int
	RenewalWindowRatio float64
	// RenewCheckInterval: how often renewal is considered. Default 10m.
	RenewCheckInterval time.Duration
	Events             *slog.Logger
}

// ACME obtains and renews certificates for configured names through
// certmagic (storage on disk with locks, so instances sharing it never
// both renew a certificate; renewal in the last RenewalWindowRatio of a
// certificate's life with backoff on failure; OCSP stapling). It is a
// Registry service: Run manages the names until its ctx ends.
type ACME struct {
	c      ACMEConfig
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache

	mu     sync.Mutex // guards status
	status map[string]*ACMEStatus
}

// ACMEStatus is a managed name's state for the admin listener.
type ACMEStatus struct {
	Name        string    `json:"name"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	LastObtain  time.Time `json:"last_obtained,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// NewACME prepares the manager; nothing is fetched until Run.
func NewACME(c ACMEConfig) (*ACME, error) {
	a := &ACME{c: c, status: map[string]*ACMEStatus{}}
	for _, n := range c.Names {
		a.status[strings.ToLower(n)] = &ACMEStatus{Name: strings.ToLower(n)}
	}
	if c.Events == nil {
		c.Events = slog.New(slog.DiscardHandler)
		a.c.Events = c.Events
	}
	var roots *x509.CertPool
	if c.CARoot != "" {
		b, err := os.ReadFile(c.CARoot)
		if err != nil {
			return nil, fmt.Errorf("acme ca_root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("acme ca_root %s: no PEM certificates", c.CARoot)
		}
	}
	if c.RenewCheckInterval <= 0 {
		c.RenewCheckInterval = 10 * time.Minute
	}
	logger := zap.New(slogCore{l: c.Events.With("component", "acme")})
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return a.magic, nil },
		RenewCheckInterval: c.RenewCheckInterval,
		OCSPCheckInterval:  time.Hour,
		Logger:             logger,
	})
	a.magic = certmagic.New(a.cache, certmagic.Config{
		Storage:            &certmagic.FileStorage{Path: c.Storage},
		RenewalWindowRatio: c.RenewalWindowRatio,
		Logger:             logger,
		OnEvent:            a.onEvent,
	})
	a.issuer = certmagic.NewACMEIssuer(a.magic, certmagic.ACMEIssuer{
		CA:                      c.Directory,
		Email:                   c.Email,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    !c.HTTP01,
		DisableTLSALPNChallenge: !c.TLSALPN01,
		AltHTTPPort:             c.HTTPPort,
		AltTLSALPNPort:          c.TLSPort,
		Logger:                  logger,
	})
	a.magic.Issuers = []certmagic.Issuer{a.issuer}
	return a, nil
}

// Run obtains (or loads from storage) the certificates and keeps them
// renewed until ctx ends.
func (a *ACME) Run(ctx context.Context) {
	defer a.cache.Stop()
	if err := a.magic.ManageAsync(ctx, a.c.Names); err != nil {
		a.c.Events.Error("acme: cannot manage certificates", "names", strings.Join(a.c.Names, ","), "err", err.Error())
	}
	<-ctx.Done()
}

func (a *ACME) onEvent(ctx context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.status[strings.ToLower(name)]
	switch event {
	case "cert_obtained":
		// After failures this is the recovery event.
		recovered := st != nil && st.LastError != ""
		a.c.Events.Info("acme: certificate obtained", "name", name, "renewal", data["renewal"], "recovered", recovered)
		if st != nil {
			st.LastObtain, st.LastError = time.Now(), ""
		}
	case "cert_failed":
		msg := fmt.Sprint(data["error"])
		// One event when a name starts failing; certmagic's retries
		// (with backoff) go to debug until it is obtained again.
		level := slog.LevelWarn
		if st != nil && st.LastError != "" {
			level = slog.LevelDebug
		}
		a.c.Events.Log(ctx, level, "acme: obtaining a certificate failed; retrying with backoff",
			"name", name, "renewal", data["renewal"], "err", msg)
		if st != nil {
			st.LastError, st.LastErrorAt = msg, time.Now()
		}
	}
	return nil
}

// Manages implements Issuer.
func (a *ACME) Manages(name string) bool {
	_, ok := a.status[strings.TrimSuffix(strings.ToLower(name), ".")]
	return ok
}

// GetCertificate implements Issuer.
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.magic.GetCertificate(hello)
}

// HandleHTTPChallenge implements Issuer.
func (a *ACME) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	return a.issuer.HandleHTTPChallenge(w, r)
}

// Status lists the managed names with their certificates' expiry.
func (a *ACME) Status() []ACMEStatus {
	a.mu.Lock()
	out := make([]ACMEStatus, 0, len(a.status))
	for _, st := range a.status {
		out = append(out, *st)
	}
	a.mu.Unlock()
	for i := range out {
		for _, c := range a.cache.AllMatchingCertificates(out[i].Name) {
			if c.Leaf != nil && c.Leaf.NotAfter.After(out[i].NotAfter) {
				out[i].NotAfter = c.Leaf.NotAfter
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// slogCore sends certmagic's zap logs to Gatehouse's event log (info and
// above).
type slogCore struct {
	l      *slog.Logger
	fields []zapcore.Field
}

func (c slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.InfoLevel }
func (c slogCore) With(f []zapcore.Field) zapcore.Core {
	return slogCore{l: c.l, fields: append(slices.Clip(c.fields), f...)}
}
func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}
func (c slogCore) Sync() error { return nil }
func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(slices.Clip(c.fields), fields...) {
		f.AddTo(enc)
	}
	attrs := make([]any, 0, 2*len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, k, v)
	}
	level := slog.LevelInfo
	switch {
	case e.Message == "tls-alpn challenge":
		// A handshake that asks for a challenge certificate when none is
		// active: anyone can send one, as often as they like, and a
		// validation that really failed shows as the issuance's error.
		level = slog.LevelDebug
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case e.Level >= zapcore.WarnLevel:
		level = slog.LevelWarn
	}
	c.l.Log(context.Background(), level, "acme: "+e.Message, attrs...)
	return nil
}
