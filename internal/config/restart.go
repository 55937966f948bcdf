package config

import (
	"reflect"
	"slices"
	"strings"
)

// restartSetting is a setting only a restart applies: the listeners, the
// connection-level limits and timeouts read when they are set up, and the
// log, admin and tracing sections. A reload that changes one keeps the
// running value.
type restartSetting struct {
	path string // its key path, as validation errors and ${VAR} records name it
	same func(a, b *Config) bool
	keep func(dst, started *Config) // puts started's value into dst
}

var restartOnly = []restartSetting{
	{"server.listen", func(a, b *Config) bool { return slices.Equal(a.Server.Listen, b.Server.Listen) },
		func(d, s *Config) { d.Server.Listen = s.Server.Listen }},
	{"server.read_header_timeout", func(a, b *Config) bool { return a.Server.ReadHeaderTimeout == b.Server.ReadHeaderTimeout },
		func(d, s *Config) { d.Server.ReadHeaderTimeout = s.Server.ReadHeaderTimeout }},
	{"server.idle_timeout", func(a, b *Config) bool { return a.Server.IdleTimeout == b.Server.IdleTimeout },
		func(d, s *Config) { d.Server.IdleTimeout = s.Server.IdleTimeout }},
	{"server.body_read_timeout", func(a, b *Config) bool { return a.Server.BodyReadTimeout == b.Server.BodyReadTimeout },
		func(d, s *Config) { d.Server.BodyReadTimeout = s.Server.BodyReadTimeout }},
	{"server.write_timeout", func(a, b *Config) bool { return a.Server.WriteTimeout == b.Server.WriteTimeout },
		func(d, s *Config) { d.Server.WriteTimeout = s.Server.WriteTimeout }},
	{"server.max_connections", func(a, b *Config) bool { return reflect.DeepEqual(a.Server.MaxConnections, b.Server.MaxConnections) },
		func(d, s *Config) { d.Server.MaxConnections = s.Server.MaxConnections }},
	{"server.max_connections_per_ip", func(a, b *Config) bool { return a.Server.MaxConnectionsPerIP == b.Server.MaxConnectionsPerIP },
		func(d, s *Config) { d.Server.MaxConnectionsPerIP = s.Server.MaxConnectionsPerIP }},
	{"server.max_header_bytes", func(a, b *Config) bool { return a.Server.MaxHeaderBytes == b.Server.MaxHeaderBytes },
		func(d, s *Config) { d.Server.MaxHeaderBytes = s.Server.MaxHeaderBytes }},
	{"server.max_header_line_bytes", func(a, b *Config) bool { return a.Server.MaxHeaderLineBytes == b.Server.MaxHeaderLineBytes },
		func(d, s *Config) { d.Server.MaxHeaderLineBytes = s.Server.MaxHeaderLineBytes }},
	{"server.http2_max_concurrent_streams", func(a, b *Config) bool {
		return a.Server.HTTP2MaxConcurrentStreams == b.Server.HTTP2MaxConcurrentStreams
	}, func(d, s *Config) { d.Server.HTTP2MaxConcurrentStreams = s.Server.HTTP2MaxConcurrentStreams }},
	{"server.fast_http1", func(a, b *Config) bool { return reflect.DeepEqual(a.Server.FastHTTP1, b.Server.FastHTTP1) },
		func(d, s *Config) { d.Server.FastHTTP1 = s.Server.FastHTTP1 }},
	{"server.fast_http2", func(a, b *Config) bool { return reflect.DeepEqual(a.Server.FastHTTP2, b.Server.FastHTTP2) },
		func(d, s *Config) { d.Server.FastHTTP2 = s.Server.FastHTTP2 }},
	{"server.shutdown_grace", func(a, b *Config) bool { return a.Server.ShutdownGrace == b.Server.ShutdownGrace },
		func(d, s *Config) { d.Server.ShutdownGrace = s.Server.ShutdownGrace }},
	// The TLS listeners: whether there are any, then their addresses, the
	// minimum version and ACME (certificates and the rest reload).
	{"server.tls", func(a, b *Config) bool { return (a.Server.TLS == nil) == (b.Server.TLS == nil) },
		func(d, s *Config) { d.Server.TLS = s.Server.TLS }},
	{"server.tls.listen", func(a, b *Config) bool {
		return a.Server.TLS == nil || b.Server.TLS == nil || slices.Equal(a.Server.TLS.Listen, b.Server.TLS.Listen)
	},
		func(d, s *Config) { d.Server.TLS = withTLS(d, s, func(t *TLS) { t.Listen = s.Server.TLS.Listen }) }},
	{"server.tls.min_version", func(a, b *Config) bool {
		return a.Server.TLS == nil || b.Server.TLS == nil || a.Server.TLS.MinVersion == b.Server.TLS.MinVersion
	}, func(d, s *Config) {
		d.Server.TLS = withTLS(d, s, func(t *TLS) { t.MinVersion = s.Server.TLS.MinVersion })
	}},
	{"server.tls.acme", func(a, b *Config) bool {
		return a.Server.TLS == nil || b.Server.TLS == nil || reflect.DeepEqual(a.Server.TLS.ACME, b.Server.TLS.ACME)
	}, func(d, s *Config) { d.Server.TLS = withTLS(d, s, func(t *TLS) { t.ACME = s.Server.TLS.ACME }) }},
	{"log", func(a, b *Config) bool { return a.Log == b.Log }, func(d, s *Config) { d.Log = s.Log }},
	{"admin", func(a, b *Config) bool { return reflect.DeepEqual(a.Admin, b.Admin) }, func(d, s *Config) { d.Admin = s.Admin }},
	{"tracing", func(a, b *Config) bool { return reflect.DeepEqual(a.Tracing, b.Tracing) },
		func(d, s *Config) { d.Tracing = s.Tracing }},
}

// withTLS returns a copy of d's TLS section changed by set (d and s both
// have one: the "server.tls" setting is checked first).
func withTLS(d, s *Config, set func(*TLS)) *TLS {
	t := *d.Server.TLS
	set(&t)
	return &t
}

// RestartOnlyChanges names the settings only a restart applies that
// differ between started, the config the process started with, and cur.
func RestartOnlyChanges(started, cur *Config) []string {
	var out []string
	for _, rs := range restartOnly {
		if !rs.same(started, cur) {
			out = append(out, rs.path)
		}
	}
	return out
}

// InEffect is cur as it is in force: its restart-only settings as started
// has them, each shown as started's file wrote it (its ${VAR} references
// from started's record, not cur's: a value cur writes literally where
// started wrote a reference would otherwise show expanded). cur itself is
// not changed.
func InEffect(started, cur *Config) *Config {
	changed := RestartOnlyChanges(started, cur)
	if len(changed) == 0 {
		return cur
	}
	c := *cur
	c.Server = cur.Server
	for _, rs := range restartOnly {
		if slices.Contains(changed, rs.path) {
			rs.keep(&c, started)
		}
	}
	c.expanded = map[string]string{}
	for k, v := range cur.expanded {
		if !underAny(k, changed) {
			c.expanded[k] = v
		}
	}
	for k, v := range started.expanded {
		if underAny(k, changed) {
			c.expanded[k] = v
		}
	}
	return &c
}

// underAny reports whether the key path is one of paths or below one.
func underAny(path string, paths []string) bool {
	for _, p := range paths {
		if path == p || strings.HasPrefix(path, p) && (path[len(p)] == '.' || path[len(p)] == '[') {
			return true
		}
	}
	return false
}
