package config

import (
	"path/filepath"
	"strings"
	"time"
)

// Defaults, in one place. docs/config.md lists the same values.
const (
	DefaultListen            = ":6188"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxBodyBytes      = 100 << 20
	DefaultShutdownGrace     = 30 * time.Second
	DefaultConnectTimeout    = 5 * time.Second
	DefaultRespHeaderTimeout = 60 * time.Second
	DefaultIdleConnTimeout   = 4 * time.Second
	DefaultMaxIdlePerTarget  = 256
	DefaultRedirectStatus    = 308
	DefaultAdminListen       = "127.0.0.1:9901"
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
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = DefaultMaxHeaderBytes
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
		if u.Host == "" {
			u.Host = "preserve"
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
