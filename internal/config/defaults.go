package config

import (
	"math"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Defaults, in one place. docs/config.md lists the same values.
const (
	DefaultListen             = ":6188"
	DefaultReadHeaderTimeout  = 10 * time.Second
	DefaultIdleTimeout        = 120 * time.Second
	DefaultMaxHeaderBytes     = 32 << 10
	DefaultMaxHeaderLineBytes = 8 << 10
	DefaultMaxBodyBytes       = 100 << 20
	DefaultShutdownGrace      = 30 * time.Second
	DefaultConnectTimeout     = 5 * time.Second
	DefaultRespHeaderTimeout  = 60 * time.Second
	DefaultIdleConnTimeout    = 4 * time.Second
	DefaultMaxIdlePerTarget   = 256
	// Response head bounds: Envoy's (60 KiB, 100 fields), not net/http's
	// 10 MiB.
	DefaultMaxResponseHeaderBytes = 64 << 10
	DefaultMaxResponseHeaderCount = 100
	DefaultRedirectStatus         = 308
	DefaultAdminListen            = "127.0.0.1:9901"
	DefaultCheckInterval          = 5 * time.Second
	DefaultCheckTimeout           = 2 * time.Second
	DefaultPassiveFailures        = 5
	DefaultEjectionTime           = 30 * time.Second
	DefaultMaxEjectionPercent     = 50
	DefaultRetryAttempts          = 3
	DefaultRetryBuffer            = 64 << 10
	DefaultAuthCacheSize          = 10000
	DefaultAuthCacheTTL           = 5 * time.Minute
)

// DefaultSecurityHeaders are set on responses that lack them.
func DefaultSecurityHeaders() map[string]string {
	return map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "strict-origin-when-cross-origin",
		"X-Frame-Options":        "SAMEORIGIN",
	}
}

// applyDefaults fills every unset value. It runs after decoding and before
// validation, so validation sees the effective config.
func applyDefaults(doc *Document) {
	c := doc.Config
	s := &c.Server
	if len(s.Listen) == 0 {
		s.Listen = []string{DefaultListen}
	}
	if s.ReadHeaderTimeout == 0 {
		s.ReadHeaderTimeout = Duration(DefaultReadHeaderTimeout)
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if s.BodyReadTimeout == 0 {
		s.BodyReadTimeout = Duration(30 * time.Second)
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = Duration(60 * time.Second)
	}
	if s.MaxConnections == nil {
		n := 10000
		s.MaxConnections = &n
	}
	if s.FastHTTP1 == nil {
		on := true
		s.FastHTTP1 = &on
	}
	if s.FastHTTP2 == nil {
		on := true
		s.FastHTTP2 = &on
	}
	if t := s.TLS; t != nil {
		tlsDefaults(doc, t)
	}
	if s.MaxHeaderCount == 0 {
		s.MaxHeaderCount = 100
	}
	if s.HTTP2MaxConcurrentStreams == 0 {
		s.HTTP2MaxConcurrentStreams = 250
	}
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if s.MaxHeaderLineBytes == 0 {
		s.MaxHeaderLineBytes = min(DefaultMaxHeaderLineBytes, s.MaxHeaderBytes)
	}
	if _, set := doc.pos["server.max_body_bytes"]; !set {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.ShutdownGrace == 0 {
		s.ShutdownGrace = Duration(DefaultShutdownGrace)
	}
	if s.SecurityHeaders == nil {
		s.SecurityHeaders = DefaultSecurityHeaders()
	}
	ih := &c.Auth.IdentityHeaders
	for _, d := range []struct {
		f   *string
		def string
	}{{&ih.Subject, "X-Auth-Subject"}, {&ih.Roles, "X-Auth-Roles"}, {&ih.Scopes, "X-Auth-Scopes"}, {&ih.Client, "X-Auth-Client"}, {&ih.Issuer, "X-Auth-Issuer"}} {
		if *d.f == "" {
			*d.f = d.def
		}
	}
	// Explicit zeros are kept: cache_size 0 turns the cache off, and
	// cache_ttl 0 is refused by Validate rather than made the default.
	if _, set := doc.pos["auth.cache_size"]; !set {
		c.Auth.CacheSize = DefaultAuthCacheSize
	}
	if _, set := doc.pos["auth.cache_ttl"]; !set {
		c.Auth.CacheTTL = Duration(DefaultAuthCacheTTL)
	}
	if ia := c.Auth.IdentityAssertion; ia != nil {
		if ia.Header == "" {
			ia.Header = "X-Auth-Assertion"
		}
		if ia.Issuer == "" {
			ia.Issuer = "gatehouse"
		}
		if ia.TTL == 0 {
			ia.TTL = Duration(time.Minute)
		}
		if ia.KeyFile != "" && !filepath.IsAbs(ia.KeyFile) {
			ia.KeyFile = filepath.Join(doc.BaseDir, ia.KeyFile)
		}
	}
	if l := c.Auth.Login; l != nil {
		loginDefaults(c, l)
	}
	for name, is := range c.Auth.Issuers {
		if is == nil {
			continue
		}
		// An explicit 0 is kept: no leeway at all, a stricter check the
		// operator asked for, not a request for the default.
		if _, set := doc.pos[join(join("auth.issuers", name), "leeway")]; !set {
			is.Leeway = Duration(30 * time.Second)
		}
		if is.RolesClaim == "" {
			is.RolesClaim = "roles"
		}
		if is.ScopeClaim == "" {
			is.ScopeClaim = "scope"
		}
		if is.RefreshInterval == 0 {
			is.RefreshInterval = Duration(10 * time.Minute)
		}
		if is.KeyCooldown == 0 {
			is.KeyCooldown = Duration(30 * time.Second)
		}
		if in := is.Introspection; in != nil {
			// An explicit 0 is kept: no answer is reused (every request
			// asks the endpoint), as with auth.cache_size: 0.
			at := join(join("auth.issuers", name), "introspection")
			if _, set := doc.pos[at+".cache_ttl"]; !set {
				in.CacheTTL = Duration(time.Minute)
			}
			if _, set := doc.pos[at+".negative_ttl"]; !set {
				in.NegativeTTL = Duration(10 * time.Second)
			}
			if in.Timeout == 0 {
				in.Timeout = Duration(2 * time.Second)
			}
		}
		if len(is.Algorithms) == 0 {
			is.Algorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}
		}
	}
	for _, rl := range c.RateLimits {
		if rl == nil {
			continue
		}
		if rl.Key == "" {
			rl.Key = "client_ip"
		}
		if rl.Mode == "" {
			rl.Mode = "enforce"
		}
		if rl.IPv6Prefix == 0 {
			rl.IPv6Prefix = 64
		}
		if rl.MaxKeys == 0 {
			rl.MaxKeys = 100_000
		}
		if rl.Store == "" {
			rl.Store = "memory"
		}
		if rl.OnStoreError == "" {
			rl.OnStoreError = "local"
		}
		if rate, err := ParseRate(rl.Rate); err == nil && rl.Burst == 0 {
			rl.Burst = max(1, int(math.Ceil(rate)))
		}
	}
	if c.Redis != nil && c.Redis.Timeout == 0 {
		c.Redis.Timeout = Duration(100 * time.Millisecond)
	}
	if c.Tracing.ServiceName == "" {
		c.Tracing.ServiceName = "gatehouse"
	}
	if c.Tracing.SampleRatio == nil {
		one := 1.0
		c.Tracing.SampleRatio = &one
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if len(c.Admin.AllowedHosts) == 0 {
		c.Admin.AllowedHosts = defaultAdminHosts(c.Admin.Listen)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Access == "" {
		c.Log.Access = "stdout"
	}
	for _, u := range c.Upstreams {
		if u == nil {
			continue
		}
		if t := u.TLS; t != nil {
			for _, f := range []*string{&t.CA, &t.Cert, &t.Key} {
				if *f != "" && !filepath.IsAbs(*f) {
					*f = filepath.Join(doc.BaseDir, *f)
				}
			}
		}
		if u.ConnectTimeout == 0 {
			u.ConnectTimeout = Duration(DefaultConnectTimeout)
		}
		if u.ResponseHeaderTimeout == 0 {
			u.ResponseHeaderTimeout = Duration(DefaultRespHeaderTimeout)
		}
		if u.IdleConnTimeout == 0 {
			u.IdleConnTimeout = Duration(DefaultIdleConnTimeout)
		}
		if u.MaxIdlePerTarget == 0 {
			u.MaxIdlePerTarget = DefaultMaxIdlePerTarget
		}
		if u.MaxResponseHeaderBytes == 0 {
			u.MaxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
		}
		if u.MaxResponseHeaderCount == 0 {
			u.MaxResponseHeaderCount = DefaultMaxResponseHeaderCount
		}
		if u.Host == "" {
			u.Host = "preserve"
		}
		if d := u.Discovery; d != nil {
			if d.Type == "" {
				d.Type = "A"
			}
			if d.Interval == 0 {
				d.Interval = Duration(30 * time.Second)
			}
		}
		if u.Balancer == "" {
			u.Balancer = "round_robin"
		}
		if u.Balancer == "consistent_hash" && u.HashKey == "" {
			u.HashKey = "client_ip"
		}
		for i := range u.Targets {
			if u.Targets[i].Weight == 0 {
				u.Targets[i].Weight = 1
			}
		}
		if a := u.Health.Active; a != nil {
			if a.Type == "" {
				a.Type = "tcp"
				if a.Path != "" {
					a.Type = "http"
				}
			}
			if a.Interval == 0 {
				a.Interval = Duration(DefaultCheckInterval)
			}
			if a.Timeout == 0 {
				a.Timeout = Duration(DefaultCheckTimeout)
			}
			if a.Rise == 0 {
				a.Rise = 2
			}
			if a.Fall == 0 {
				a.Fall = 3
			}
			if a.Type == "http" {
				if a.Method == "" {
					a.Method = "GET"
				}
				if a.Path == "" {
					a.Path = "/"
				}
				if len(a.ExpectStatus) == 0 {
					a.ExpectStatus = []string{"200-399"}
				}
			}
		}
		p := &u.Health.Passive
		if p.ConsecutiveFailures == nil {
			n := DefaultPassiveFailures
			p.ConsecutiveFailures = &n
		}
		if p.EjectionTime == 0 {
			p.EjectionTime = Duration(DefaultEjectionTime)
		}
		if p.MaxEjectionPercent == nil {
			n := DefaultMaxEjectionPercent
			p.MaxEjectionPercent = &n
		}
		r := &u.Retries
		if r.Attempts == 0 {
			r.Attempts = DefaultRetryAttempts
		}
		if r.OnStatus == nil {
			r.OnStatus = []int{502, 503, 504}
		}
		if r.BufferBody == nil {
			sz := Size(DefaultRetryBuffer)
			r.BufferBody = &sz
		}
	}
	for _, r := range c.Routes {
		if r == nil {
			continue
		}
		if p := r.Match.PathPrefix; len(p) > 1 && strings.HasSuffix(p, "/") {
			r.Match.PathPrefix = strings.TrimRight(p, "/")
			if r.Match.PathPrefix == "" {
				r.Match.PathPrefix = "/"
			}
		}
		if a := r.Auth; a != nil {
			if a.Mode == "" {
				a.Mode = "required"
			}
			if a.OnIntrospectionError == "" {
				a.OnIntrospectionError = "unavailable"
			}
			if len(a.Accept) == 0 {
				a.Accept = []string{"bearer"}
			}
			if a.ForwardToken == nil {
				t := true
				a.ForwardToken = &t
			}
			if len(a.Issuers) == 0 {
				for n := range c.Auth.Issuers {
					a.Issuers = append(a.Issuers, n)
				}
				sort.Strings(a.Issuers)
			}
		}
		if r.API != nil && r.API.Rewrite == "" {
			r.API.Rewrite = "{prefix}/{service}{rest}"
		}
		if st := r.Static; st != nil {
			if st.Index == "" {
				st.Index = "index.html"
			}
			if st.Root != "" && !filepath.IsAbs(st.Root) {
				st.Root = filepath.Join(doc.BaseDir, st.Root)
			}
		}
		if r.Redirect != nil && r.Redirect.Status == 0 {
			r.Redirect.Status = DefaultRedirectStatus
		}
		if rs := r.Respond; rs != nil {
			if rs.Status == 0 {
				rs.Status = 200
			}
			if rs.ContentType == "" {
				rs.ContentType = "text/plain; charset=utf-8"
			}
		}
	}
}

func loginDefaults(c *Config, l *Login) {
	if l.Issuer == "" && len(c.Auth.Issuers) == 1 {
		for n := range c.Auth.Issuers {
			l.Issuer = n
		}
	}
	if len(l.Scopes) == 0 {
		l.Scopes = []string{"openid", "offline_access"}
	}
	if l.CookieName == "" {
		l.CookieName = "gatehouse_session"
	}
	if l.LoginPath == "" {
		l.LoginPath = "/_gatehouse/login"
	}
	if l.LogoutPath == "" {
		l.LogoutPath = "/_gatehouse/logout"
	}
	if u, err := url.Parse(l.RedirectURL); err == nil && l.PostLogoutRedirectURL == "" && u.Host != "" {
		l.PostLogoutRedirectURL = u.Scheme + "://" + u.Host + "/"
	}
	if l.RefreshMargin == 0 {
		l.RefreshMargin = Duration(time.Minute)
	}
	if l.MaxLifetime == 0 {
		l.MaxLifetime = Duration(24 * time.Hour)
	}
	if l.FlowTimeout == 0 {
		l.FlowTimeout = Duration(10 * time.Minute)
	}
	if l.Store == "" {
		l.Store = "memory"
	}
	if l.MaxSessions == 0 {
		l.MaxSessions = 100000
	}
	if l.Timeout == 0 {
		l.Timeout = Duration(5 * time.Second)
	}
}

func tlsDefaults(doc *Document, t *TLS) {
	if len(t.Listen) == 0 {
		t.Listen = []string{":443"}
	}
	if t.MinVersion == "" {
		t.MinVersion = "1.3"
	}
	if t.RedirectHTTP == nil {
		on := true
		t.RedirectHTTP = &on
	}
	if t.HSTS.Enabled == nil {
		on := true
		t.HSTS.Enabled = &on
	}
	// An explicit 0 is kept: "max-age=0" is how a site withdraws HSTS
	// (RFC 6797 §6.1.1), not a request for the default.
	if _, set := doc.pos["server.tls.hsts.max_age"]; !set {
		t.HSTS.MaxAge = Duration(365 * 24 * time.Hour)
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(doc.BaseDir, *p)
		}
	}
	for i := range t.Certificates {
		abs(&t.Certificates[i].Cert)
		abs(&t.Certificates[i].Key)
	}
	for _, ca := range t.ClientAuth {
		if ca == nil {
			continue
		}
		abs(&ca.CA)
		if ca.Mode == "" {
			ca.Mode = "require"
		}
		if ca.SubjectHeader == "" {
			ca.SubjectHeader = "X-Client-Cert-Subject"
		}
	}
	if a := t.ACME; a != nil {
		if a.Directory == "" {
			a.Directory = "https://acme-v02.api.letsencrypt.org/directory"
		}
		if a.Storage == "" {
			a.Storage = "acme"
		}
		abs(&a.Storage)
		abs(&a.CARoot)
		if len(a.Challenges) == 0 {
			a.Challenges = []string{"http-01", "tls-alpn-01"}
		}
		if a.RenewalWindowRatio == 0 {
			a.RenewalWindowRatio = 1.0 / 3
		}
		if a.RenewCheckInterval == 0 {
			a.RenewCheckInterval = Duration(10 * time.Minute)
		}
	}
}

// defaultAdminHosts is admin.allowed_hosts when unset: the loopback names
// when the admin listener is on loopback (nothing else can reach it, and
// a browser's DNS-rebinding request names another host); nil (any)
// otherwise, where scrapers and apps reach it by names only the operator
// knows.
func defaultAdminHosts(listen string) []string {
	h, _, err := net.SplitHostPort(listen)
	if err != nil || !isLoopbackHost(h) {
		return nil
	}
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if !slices.Contains(hosts, h) {
		hosts = append(hosts, h)
	}
	return hosts
}
