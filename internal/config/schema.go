// Package config is Gatehouse's configuration schema: plain data, a strict
// YAML decoder that remembers where every value came from, defaults, and a
// pure validator that reports every problem at once, each with file, line,
// column and key path.
//
// The struct field comments are the user documentation; docs/config.md
// repeats them with examples. A field's `yaml` tag is its key; a
// `secret:"true"` field is redacted on /config; a `file:"<key>"` field
// names a file whose content becomes <key> (client_secret_file). String
// values may hold ${VAR} references (env.go).
package config

import "time"

// Config is the whole file.
type Config struct {
	// Server: the public listeners and connection-level limits.
	Server Server `yaml:"server"`
	// Log: event and access logging.
	Log Log `yaml:"log"`
	// Admin: the admin listener (metrics, health, status page).
	Admin Admin `yaml:"admin"`
	// Tracing: OpenTelemetry traces, off unless an endpoint is set.
	Tracing Tracing `yaml:"tracing"`
	// Auth: token issuers and identity headers (docs/auth.md).
	Auth Auth `yaml:"auth"`
	// RateLimits: named rate-limit policies (docs/rate-limits.md).
	RateLimits map[string]*RateLimit `yaml:"rate_limits"`
	// Redis is the shared store for policies with store: redis.
	Redis *Redis `yaml:"redis"`
	// Upstreams: named pools of targets that routes proxy to.
	Upstreams map[string]*Upstream `yaml:"upstreams"`
	// Routes: matched most-specific first (see docs/config.md).
	Routes []*Route `yaml:"routes"`

	// expanded maps the key path of each string value written with
	// ${VAR} references to the value as written, so that /config shows
	// the references, not what they expanded to. Set by the decoder.
	expanded map[string]string
}

// Server configures the public listeners.
type Server struct {
	// Listen addresses ("host:port" or ":port"). Default [":6188"].
	Listen []string `yaml:"listen"`
	// RateLimits: policies applied to every route.
	RateLimits []string `yaml:"rate_limits"`
	// TLS: HTTPS listeners and certificates (docs/tls.md). Off unless set.
	TLS *TLS `yaml:"tls"`
	// TrustedProxies: IPs or CIDRs whose X-Forwarded-*/Forwarded/X-Request-Id
	// and client-address headers (X-Real-IP, X-Original-URL, ...) are
	// believed. Default none: such headers from clients are replaced or
	// removed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ReadHeaderTimeout bounds reading a request's headers (slowloris). Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout" zero:""`
	// IdleTimeout closes idle client keep-alive connections. Default 120s.
	IdleTimeout Duration `yaml:"idle_timeout" zero:""`
	// BodyReadTimeout: the longest wait for the next piece of a request
	// body (slow POST). Default 30s.
	BodyReadTimeout Duration `yaml:"body_read_timeout" zero:""`
	// WriteTimeout: the longest a single write to the client may take
	// (a client that stops reading). Streams may idle longer between
	// writes. Default 60s.
	WriteTimeout Duration `yaml:"write_timeout" zero:""`
	// MaxConnections caps concurrent client connections; more are closed
	// at accept. Default 10000; 0 means no cap.
	MaxConnections *int `yaml:"max_connections"`
	// MaxConnectionsPerIP caps concurrent connections from one address (the
	// TCP peer: behind a load balancer, that is the balancer). Default 0
	// (no cap).
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// MaxHeaderBytes caps request line plus headers; more is answered 431.
	// Default 32KiB (nginx's 4 buffers of 8k).
	MaxHeaderBytes Size `yaml:"max_header_bytes" zero:""`
	// MaxHeaderLineBytes caps the request line (more: 414) and each header
	// line (more: 431), line ending excluded. Default 8KiB, as nginx's
	// large_client_header_buffers.
	MaxHeaderLineBytes Size `yaml:"max_header_line_bytes" zero:""`
	// MaxHeaderCount caps the number of request header fields; more are
	// answered 431. Default 100.
	MaxHeaderCount int `yaml:"max_header_count" zero:""`
	// HTTP2MaxConcurrentStreams caps the requests one HTTP/2 connection may
	// have in progress; requests beyond it wait, and a client that keeps
	// opening and resetting streams (rapid reset) is disconnected.
	// Default 250.
	HTTP2MaxConcurrentStreams int `yaml:"http2_max_concurrent_streams" zero:""`
	// MaxBodyBytes caps request bodies for every route that sets no limit of
	// its own; more is answered 413. 0 means no limit. Default 100MiB.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// FastHTTP1: serve provably simple HTTP/1.1 requests (bodies included:
	// one Content-Length, or chunked) on the plain listeners with
	// Gatehouse's own HTTP/1.1 server (internal/h1server),
	// handing every other connection to net/http's. Default true; false
	// serves everything with net/http.
	FastHTTP1 *bool `yaml:"fast_http1"`
	// FastHTTP2: serve HTTP/2 on the HTTPS listeners with Gatehouse's own
	// HTTP/2 server (internal/h2server), which writes a response's frames
	// together; false: net/http's. Default true.
	FastHTTP2 *bool `yaml:"fast_http2"`
	// ShutdownGrace: how long in-flight requests may run after SIGTERM. Default 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace" zero:""`
	// SecurityHeaders are added to every response that lacks them. A route's
	// security_headers override these per header; an empty value removes one.
	// Default X-Content-Type-Options: nosniff, Referrer-Policy:
	// strict-origin-when-cross-origin, X-Frame-Options: SAMEORIGIN.
	SecurityHeaders map[string]string `yaml:"security_headers"`
}

// Admin configures the admin listener. It is separate from the public
// listeners; none of its paths is reachable through them.
type Admin struct {
	// Listen address, or "off". Default 127.0.0.1:9901 (loopback only).
	Listen string `yaml:"listen"`
	// Pprof serves Go's /debug/pprof profiles. Default false.
	Pprof bool `yaml:"pprof"`
	// AllowedHosts are the host names and IP addresses a request's Host
	// may name (its port is not compared); "*" allows any. Another host
	// gets 403, so a web page in a browser on the same machine cannot
	// read the admin listener through a name of its own that resolves to
	// it (DNS rebinding). Default: when listen is a loopback address,
	// localhost, 127.0.0.1, ::1 and listen's own host; otherwise any.
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// Tracing configures OpenTelemetry tracing over OTLP/HTTP (Jaeger, Tempo
// and the OpenTelemetry Collector accept it).
type Tracing struct {
	// Endpoint is the collector's OTLP/HTTP base URL, such as
	// http://127.0.0.1:4318 (spans go to /v1/traces). Empty: tracing off,
	// at no cost per request.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of new traces recorded, 0 to 1. Default 1.
	// A trace a trusted proxy started keeps that proxy's decision.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the spans. Default "gatehouse".
	ServiceName string `yaml:"service_name"`
	// Headers are sent with every export, such as an API key.
	Headers map[string]string `yaml:"headers" secret:"true"`
}

// Log configures logging. Logs are JSON lines.
type Log struct {
	// Level of event logs: debug, info, warn, error. Default info.
	Level string `yaml:"level"`
	// Access: where access logs go: stdout, stderr, off, or a file path. Default stdout.
	Access string `yaml:"access"`
}

// Upstream is a named pool of targets.
type Upstream struct {
	// Targets: at least one. Each is "host:port", or a mapping with
	// address, weight and backup.
	Targets []Target `yaml:"targets"`
	// Balancer: round_robin (default), weighted_round_robin,
	// least_requests, p2c_ewma or consistent_hash.
	Balancer string `yaml:"balancer"`
	// HashKey for consistent_hash: client_ip (default), path,
	// "header:<Name>" or "cookie:<name>".
	HashKey string `yaml:"hash_key"`
	// Health: active checks and passive ejection.
	Health Health `yaml:"health"`
	// Retries: when and how often a failed attempt is retried elsewhere.
	Retries Retries `yaml:"retries"`
	// Discovery adds targets found in DNS, re-resolved on an interval.
	Discovery *Discovery `yaml:"discovery"`
	// SlowStart: a target that becomes healthy again takes a share of
	// traffic that grows linearly over this window. 0 (default): at once.
	SlowStart Duration `yaml:"slow_start"`
	// ConnectTimeout bounds dialing a target. Default 5s.
	ConnectTimeout Duration `yaml:"connect_timeout" zero:""`
	// ResponseHeaderTimeout bounds the wait for response headers once the
	// request is sent; exceeding it is answered 504. Default 60s.
	ResponseHeaderTimeout Duration `yaml:"response_header_timeout" zero:""`
	// IdleConnTimeout closes pooled idle connections. Default 4s, below
	// Node.js's 5s keep-alive timeout, so Gatehouse never reuses a
	// connection the app is about to close.
	IdleConnTimeout Duration `yaml:"idle_conn_timeout" zero:""`
	// MaxIdlePerTarget: pooled idle connections kept per target. Default 256.
	MaxIdlePerTarget int `yaml:"max_idle_per_target" zero:""`
	// MaxResponseHeaderBytes bounds each response head from the targets
	// (status line and fields; each 1xx head on its own); a larger one
	// is answered 502. Default 64KiB, at most 1MiB.
	MaxResponseHeaderBytes Size `yaml:"max_response_header_bytes" zero:""`
	// MaxResponseHeaderCount bounds the fields of each response head from
	// the targets; more are answered 502. Default 100.
	MaxResponseHeaderCount int `yaml:"max_response_header_count" zero:""`
	// Host sent upstream: "preserve" (the client's validated Host, default),
	// "target" (the target's host:port), or a literal host name.
	Host string `yaml:"host"`
	// TLS: connect to the targets over TLS (HTTPS upstreams). Off unless
	// set.
	TLS *UpstreamTLS `yaml:"tls"`
}

// Target is one instance of an upstream.
type Target struct {
	// Address: "host:port". A target written as a plain string sets this.
	Address string `yaml:"address" scalar:"true"`
	// Weight for weighted balancers and slow start. Default 1.
	Weight int `yaml:"weight" zero:""`
	// Backup targets take traffic only when no primary target is available.
	Backup bool `yaml:"backup"`
}

// Discovery resolves a DNS name into targets.
type Discovery struct {
	// Name to resolve. Required.
	Name string `yaml:"name"`
	// Type: "A" (A and AAAA records; default) or "SRV" (ports, weights and
	// priorities from the records; lowest priority primary, others backup).
	Type string `yaml:"type"`
	// Port of the targets, for type A. Required there.
	Port int `yaml:"port"`
	// Interval between lookups. Default 30s.
	Interval Duration `yaml:"interval" zero:""`
	// Resolver: a DNS server "host:port" to ask instead of the system's.
	Resolver string `yaml:"resolver"`
}

// Health configures how targets are judged.
type Health struct {
	// Active checks probe every target on an interval. Off unless set.
	Active *ActiveHealth `yaml:"active"`
	// Passive ejection removes a target after consecutive failed requests.
	// On by default.
	Passive Passive `yaml:"passive"`
	// MinHealthyShare: /readyz reports not ready while a smaller share of
	// this upstream's primary targets is available. Default 0 (never).
	MinHealthyShare float64 `yaml:"min_healthy_share"`
}

// ActiveHealth is a periodic probe of each target.
type ActiveHealth struct {
	// Type: "tcp" (connect) or "http" (a request). Default http when a path
	// is set, else tcp.
	Type string `yaml:"type"`
	// Interval between checks of one target; each wait is jittered by up
	// to ±10 %. Default 5s.
	Interval Duration `yaml:"interval" zero:""`
	// Timeout of one check. Default 2s.
	Timeout Duration `yaml:"timeout" zero:""`
	// Rise: consecutive passes that mark a target up. Default 2.
	Rise int `yaml:"rise" zero:""`
	// Fall: consecutive failures that mark a target down. Default 3.
	Fall int `yaml:"fall" zero:""`
	// HTTP checks: method (default GET), path (default /), Host header
	// (default the target address), accepted statuses (default
	// ["200-399"]) and a body substring (default none).
	Method       string   `yaml:"method"`
	Path         string   `yaml:"path"`
	Host         string   `yaml:"host"`
	ExpectStatus []string `yaml:"expect_status"`
	BodyContains string   `yaml:"body_contains"`
}

// Passive configures ejection on failed requests.
type Passive struct {
	// ConsecutiveFailures that eject a target: connect errors, timeouts,
	// and 5xx answers (502, 503, 504). Default 5; 0 turns ejection off.
	ConsecutiveFailures *int `yaml:"consecutive_failures"`
	// EjectionTime is the first ejection's length; each further ejection
	// doubles it, up to 10 times. Default 30s.
	EjectionTime Duration `yaml:"ejection_time" zero:""`
	// MaxEjectionPercent caps the share of targets ejected at once, so a
	// bad deploy cannot empty a pool by itself. Default 50.
	MaxEjectionPercent *int `yaml:"max_ejection_percent"`
}

// Retries configures retrying a failed attempt on another target.
type Retries struct {
	// Attempts is the most attempts per request, the first included.
	// Default 3 (two retries); 1 turns retries off.
	Attempts int `yaml:"attempts" zero:"attempts counts the first try: 1 means no retries"`
	// PerTryTimeout bounds each attempt until response headers arrive;
	// exceeding it is a retryable timeout. Default 0 (only
	// response_header_timeout applies).
	PerTryTimeout Duration `yaml:"per_try_timeout"`
	// Deadline: no new attempt starts later than this after the first.
	// Default 0 (none beyond the route's timeout).
	Deadline Duration `yaml:"deadline"`
	// OnStatus: upstream statuses that are retried (idempotent requests
	// only). Default [502, 503, 504].
	OnStatus []int `yaml:"on_status"`
	// BufferBody: request bodies up to this size are kept so they can be
	// replayed on another target. Larger bodies are streamed and never
	// retried. Default 64KiB.
	BufferBody *Size `yaml:"buffer_body"`
}

// TLS configures HTTPS (docs/tls.md).
type TLS struct {
	// Listen: HTTPS addresses. Default [":443"].
	Listen []string `yaml:"listen"`
	// MinVersion: "1.3" (default) or "1.2" (then ECDHE AEAD suites only).
	MinVersion string `yaml:"min_version"`
	// Certificates from PEM files, chosen by SNI (exact names, then
	// wildcards); the first also answers clients without SNI. Reloaded when
	// the files change; a broken new file keeps the old certificate.
	Certificates []Certificate `yaml:"certificates"`
	// ACME obtains and renews certificates automatically (RFC 8555).
	ACME *ACME `yaml:"acme"`
	// HSTS is the Strict-Transport-Security header of HTTPS responses.
	HSTS HSTS `yaml:"hsts"`
	// RedirectHTTP: plain-HTTP requests for a name Gatehouse has a
	// certificate for are redirected to HTTPS with 308, except ACME
	// challenges and plain_hosts. Default true.
	RedirectHTTP *bool `yaml:"redirect_http"`
	// PlainHosts stay on plain HTTP even when a certificate covers them.
	PlainHosts []string `yaml:"plain_hosts"`
	// ClientAuth: mutual TLS, per host.
	ClientAuth []*ClientAuth `yaml:"client_auth"`
}

// UpstreamTLS is how Gatehouse connects to an upstream over TLS.
type UpstreamTLS struct {
	// CA: PEM roots that sign the targets' certificates. Default the
	// system's roots.
	CA string `yaml:"ca"`
	// ServerName: the name sent as SNI and checked in the targets'
	// certificates. Default the target's host (often an IP address).
	ServerName string `yaml:"server_name"`
	// Cert and Key: Gatehouse's client certificate, for upstreams that
	// require one. Optional.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// ClientAuth is mutual TLS for some hosts: clients present certificates
// signed by CA.
type ClientAuth struct {
	// Hosts this applies to (exact names). Required.
	Hosts []string `yaml:"hosts"`
	// Mode: require (default: no valid certificate, no request) or
	// optional (a certificate, if presented, must be valid).
	Mode string `yaml:"mode"`
	// CA: PEM roots that sign client certificates. Required.
	CA string `yaml:"ca"`
	// SubjectHeader carries the verified certificate's subject (RFC 4514)
	// upstream. Default X-Client-Cert-Subject; client-sent copies are
	// removed on every route.
	SubjectHeader string `yaml:"subject_header"`
}

// Certificate is a PEM certificate chain and its private key.
type Certificate struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// HSTS configures Strict-Transport-Security (RFC 6797); never sent over
// plain HTTP.
type HSTS struct {
	// Enabled: default true.
	Enabled *bool `yaml:"enabled"`
	// MaxAge: default 365 days (8760h).
	MaxAge Duration `yaml:"max_age"`
	// IncludeSubdomains and Preload: opt in.
	IncludeSubdomains bool `yaml:"include_subdomains"`
	Preload           bool `yaml:"preload"`
}

// ACME is automatic certificate management (RFC 8555) through certmagic.
type ACME struct {
	// Names to obtain certificates for. Required.
	Names []string `yaml:"names"`
	// Email for the CA account (expiry notices). Optional.
	Email string `yaml:"email"`
	// Directory: the CA's ACME directory URL. Default Let's Encrypt's
	// production directory.
	Directory string `yaml:"directory"`
	// CARoot: PEM roots to trust for the directory (a private CA, Pebble).
	CARoot string `yaml:"ca_root"`
	// Storage: a directory for the account, certificates and locks;
	// instances sharing it share certificates and never both renew one.
	// Default "acme" beside the config file.
	Storage string `yaml:"storage"`
	// Challenges: http-01 (answered on the plain listeners) and/or
	// tls-alpn-01 (on the HTTPS listeners). Default both.
	Challenges []string `yaml:"challenges"`
	// RenewalWindowRatio: renew when this share of a certificate's
	// lifetime is left. Default 1/3.
	RenewalWindowRatio float64 `yaml:"renewal_window_ratio" zero:""`
	// RenewCheckInterval: how often certificates are checked for renewal.
	// Default 10m.
	RenewCheckInterval Duration `yaml:"renew_check_interval" zero:""`
}

// Route is one entry of the route table: a match and exactly one action.
type Route struct {
	// Name identifies the route in logs and metrics. Required, unique.
	Name  string `yaml:"name"`
	Match Match  `yaml:"match"`

	// Actions (exactly one).

	// Upstream: proxy to this named upstream.
	Upstream string `yaml:"upstream"`
	// API maps /<prefix>/<service>/... to a service's upstream.
	API *API `yaml:"api"`
	// Static serves files from a directory.
	Static *Static `yaml:"static"`
	// Redirect answers with a redirect.
	Redirect *Redirect `yaml:"redirect"`
	// Respond answers with a fixed status and body.
	Respond *Respond `yaml:"respond"`

	// StripPrefix removes the matched path_prefix before proxying. Default
	// false: Next.js apps built with basePath expect their prefix.
	StripPrefix bool `yaml:"strip_prefix"`
	// Rewrite replaces the matched path_prefix (or exact path) with this
	// path before proxying, e.g. prefix /old, rewrite /new: /old/a -> /new/a.
	Rewrite string `yaml:"rewrite"`
	// Timeout bounds the whole request at the proxy, from routing to the last
	// response byte, the client's sending of the body included. 0 (default)
	// means no overall limit; streams live on.
	Timeout Duration `yaml:"timeout"`
	// AllowPathParams lets requests with path parameters (";" or "%3B" in
	// a segment, as Java servlet containers use for jsessionid and matrix
	// variables) through to this route, which is then found on the path
	// without them. Default false: they are answered 400. Upstream routes
	// only, without strip_prefix or rewrite.
	AllowPathParams bool `yaml:"allow_path_params"`
	// MaxBodyBytes overrides server.max_body_bytes for this route.
	MaxBodyBytes *Size `yaml:"max_body_bytes"`

	// RequestHeaders edits headers sent upstream.
	RequestHeaders HeaderEdits `yaml:"request_headers"`
	// ResponseHeaders edits headers sent to the client.
	ResponseHeaders HeaderEdits `yaml:"response_headers"`
	// SecurityHeaders overrides server.security_headers for this route; an
	// empty value turns a default header off.
	SecurityHeaders map[string]string `yaml:"security_headers"`
	// Auth is the route's authentication and authorization policy.
	Auth *RouteAuth `yaml:"auth"`
	// RateLimits: names of the rate-limit policies applied to this route,
	// besides server.rate_limits.
	RateLimits []string `yaml:"rate_limits"`
}

// RateLimit is a rate-limit policy.
type RateLimit struct {
	// Key: what is limited: client_ip (default), user (the verified
	// subject), client_id, route, or header:<Name>; parts join with "+",
	// such as user+route. Policies keyed by user or client_id run after
	// authentication, the others before it.
	Key string `yaml:"key"`
	// Rate: "100/s", "600/m" or "1000/h". Required unless concurrency is
	// set.
	Rate string `yaml:"rate"`
	// Concurrency: requests in progress at once per key (a WebSocket or
	// stream counts until it closes); more get 429. 0 (default): no such
	// limit.
	Concurrency int `yaml:"concurrency"`
	// Burst: requests allowed at once. Default: one second's worth, at
	// least 1.
	Burst int `yaml:"burst" zero:""`
	// IPv6Prefix groups IPv6 clients by this prefix length. Default 64.
	IPv6Prefix int `yaml:"ipv6_prefix" zero:""`
	// Mode: enforce (default) or soft (log and count, never refuse).
	Mode string `yaml:"mode"`
	// MaxKeys bounds the keys held in memory. Default 100000.
	MaxKeys int `yaml:"max_keys" zero:""`
	// Store: memory (this instance, default) or redis (shared by every
	// instance using the same Redis).
	Store string `yaml:"store"`
	// OnStoreError, for store: redis, when Redis is slow or down: local
	// (default: limit with this instance's memory store) or deny (503).
	OnStoreError string `yaml:"on_store_error"`
}

// Redis is a Redis server for shared state.
type Redis struct {
	// URL: redis://[user:password@]host:port/db, or rediss:// for TLS.
	// Required. The password is shown as [redacted] on /config.
	URL string `yaml:"url" secret:"true"`
	// URLFile: a file holding the URL, instead of url.
	URLFile string `yaml:"url_file" file:"url"`
	// Password, when set, replaces the URL's password; unlike a password
	// inside the URL it needs no percent-encoding.
	Password string `yaml:"password" secret:"true"`
	// PasswordFile: a file holding the password, instead of password.
	PasswordFile string `yaml:"password_file" file:"password"`
	// Timeout bounds each call; a slower Redis counts as down. Default 100ms.
	Timeout Duration `yaml:"timeout" zero:""`
	// ClusterNodes: seed nodes (host:port) of a Redis Cluster; the URL
	// then gives only the credentials and TLS.
	ClusterNodes []string `yaml:"cluster_nodes"`
	// Sentinel: find the primary through Redis Sentinel; the URL then gives
	// only the credentials, database and TLS.
	Sentinel *Sentinel `yaml:"sentinel"`
}

// Sentinel names a Sentinel-managed primary.
type Sentinel struct {
	// Master: the primary's name in the Sentinels' configuration. Required.
	Master string `yaml:"master"`
	// Nodes: the Sentinels (host:port). Required.
	Nodes []string `yaml:"nodes"`
}

// Auth configures token verification.
type Auth struct {
	// Issuers by name.
	Issuers map[string]*Issuer `yaml:"issuers"`
	// IdentityHeaders name the headers that carry the verified identity
	// upstream. Client-sent copies are removed on every route.
	IdentityHeaders IdentityHeaders `yaml:"identity_headers"`
	// CacheSize bounds the verified-token cache. Default 10000; 0 turns
	// the cache off (every request's token is verified).
	CacheSize int `yaml:"cache_size"`
	// CacheTTL is the longest a verified token is remembered; never past
	// its exp, nor past a refresh of its issuer's keys that drops its key.
	// Default 5m.
	CacheTTL Duration `yaml:"cache_ttl"`
	// IdentityAssertion sends upstream, besides the identity headers, a
	// short-lived JWT signed by Gatehouse stating the verified identity;
	// apps verify it with the JWKS at the admin listener's /jwks.json.
	// Off unless set.
	IdentityAssertion *IdentityAssertion `yaml:"identity_assertion"`
	// ProtectedResource publishes RFC 9728 protected resource metadata,
	// so clients can discover which issuer to get tokens from; 401s point
	// at it. Off unless set.
	ProtectedResource *ProtectedResource `yaml:"protected_resource"`
	// Login turns on browser login (authorization code + PKCE, server-side
	// sessions) for routes whose auth accepts "session" (docs/login.md).
	Login *Login `yaml:"login"`
}

// IdentityAssertion configures the signed identity JWT sent upstream.
type IdentityAssertion struct {
	// Header carrying the JWT. Default X-Auth-Assertion. Client-sent copies
	// are removed on every route.
	Header string `yaml:"header"`
	// Issuer: the JWT's iss. Default "gatehouse".
	Issuer string `yaml:"issuer"`
	// Audience: the JWT's aud. Default none.
	Audience string `yaml:"audience"`
	// TTL: the JWT's lifetime; one is signed per token per TTL/2. Default 60s.
	TTL Duration `yaml:"ttl" zero:""`
	// KeyFile: a PEM private key, EC P-256 (ES256) or Ed25519 (EdDSA),
	// shared by instances that must publish the same JWKS. Default: a key
	// made at startup (each process its own; it changes on restart).
	KeyFile string `yaml:"key_file"`
}

// ProtectedResource is Gatehouse's RFC 9728 metadata document, served at
// /.well-known/oauth-protected-resource (plus the resource's path, if any).
type ProtectedResource struct {
	// Resource: Gatehouse's public URL as clients name it, e.g.
	// https://gw.example.com. Required.
	Resource string `yaml:"resource"`
	// AuthorizationServers: the auth.issuers listed, by name. Default all.
	AuthorizationServers []string `yaml:"authorization_servers"`
	// ScopesSupported: scopes listed. Default: every scope a route requires.
	ScopesSupported []string `yaml:"scopes_supported"`
	// ResourceName and ResourceDocumentation (a URL) are shown to people.
	ResourceName          string `yaml:"resource_name"`
	ResourceDocumentation string `yaml:"resource_documentation"`
}

// Login is Gatehouse's registration as an OAuth 2.1 client, for browsers.
type Login struct {
	// Issuer: the auth.issuers entry people log in with. Default: the only
	// one configured.
	Issuer string `yaml:"issuer"`
	// ClientID and ClientSecret: Gatehouse's registration at the issuer.
	// Without a secret Gatehouse is a public client (PKCE alone).
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret" secret:"true"`
	// ClientSecretFile: a file holding the client secret, instead of
	// client_secret (docs/config.md, "Secrets and environment variables").
	ClientSecretFile string `yaml:"client_secret_file" file:"client_secret"`
	// RedirectURL: the callback URL registered at the issuer, exactly, such
	// as https://gw.example.com/_gatehouse/callback. Gatehouse serves its
	// path. Its origin is Gatehouse's public origin: return URLs must be on
	// it, and the session cookie is Secure and __Host- prefixed when it is
	// https. Never derived from a request's Host. Required.
	RedirectURL string `yaml:"redirect_url"`
	// Scopes requested. Default [openid, offline_access].
	Scopes []string `yaml:"scopes"`
	// Resource is sent as the RFC 8707 resource indicator, for issuers that
	// issue access tokens per resource. Default none.
	Resource string `yaml:"resource"`
	// CookieSecret keys the session cookie's MAC and the encryption of
	// login state and stored sessions: at least 32 characters of random
	// text (e.g. openssl rand -base64 32). Required; instances sharing a
	// Redis store must share it.
	CookieSecret string `yaml:"cookie_secret" secret:"true"`
	// CookieSecretFile: a file holding the cookie secret, instead of
	// cookie_secret.
	CookieSecretFile string `yaml:"cookie_secret_file" file:"cookie_secret"`
	// CookieName of the session cookie. Default "gatehouse_session"
	// ("__Host-gatehouse_session" over https).
	CookieName string `yaml:"cookie_name"`
	// LoginPath starts a login: GET {login_path}?rd=/path. Default
	// /_gatehouse/login.
	LoginPath string `yaml:"login_path"`
	// LogoutPath ends the session: POST from a page of this origin, or a
	// same-origin GET. Default /_gatehouse/logout.
	LogoutPath string `yaml:"logout_path"`
	// PostLogoutRedirectURL: where the issuer sends the browser after
	// logout; registered at the issuer. Default the public origin + "/".
	PostLogoutRedirectURL string `yaml:"post_logout_redirect_url"`
	// RefreshMargin: refresh the access token this long before it expires
	// (never more than half its lifetime). Default 60s.
	RefreshMargin Duration `yaml:"refresh_margin" zero:""`
	// MaxLifetime bounds a session from login, whatever refreshes happen.
	// Default 24h.
	MaxLifetime Duration `yaml:"max_lifetime" zero:""`
	// FlowTimeout: how long a started login may take. Default 10m.
	FlowTimeout Duration `yaml:"flow_timeout" zero:""`
	// Store: memory (default; this instance's sessions) or redis (shared
	// by every instance on the top-level redis).
	Store string `yaml:"store"`
	// MaxSessions bounds the memory store. Default 100000.
	MaxSessions int `yaml:"max_sessions" zero:""`
	// Timeout of one request to the issuer's token, revocation or
	// metadata endpoint. Default 5s.
	Timeout Duration `yaml:"timeout" zero:""`
}

// IdentityHeaders are header names; empty turns one off.
type IdentityHeaders struct {
	Subject string `yaml:"subject"` // default X-Auth-Subject
	Roles   string `yaml:"roles"`   // default X-Auth-Roles
	Scopes  string `yaml:"scopes"`  // default X-Auth-Scopes
	Client  string `yaml:"client"`  // default X-Auth-Client
	Issuer  string `yaml:"issuer"`  // default X-Auth-Issuer
}

// Issuer is one OAuth 2.1 / OpenID Connect authorization server.
type Issuer struct {
	// Issuer URL; tokens' iss must equal it exactly. Its metadata is
	// discovered at /.well-known/openid-configuration (or
	// oauth-authorization-server). Required.
	Issuer string `yaml:"issuer"`
	// JWKSURI overrides the discovered jwks_uri.
	JWKSURI string `yaml:"jwks_uri"`
	// Audience a token's aud must contain. Required.
	Audience string `yaml:"audience"`
	// Algorithms allowed. Default RS256, PS256, ES256, EdDSA.
	Algorithms []string `yaml:"algorithms"`
	// Type required in the token header (RFC 9068: at+jwt). Default none.
	Type string `yaml:"type"`
	// Leeway for exp, nbf and iat. Default 30s; 0: none.
	Leeway Duration `yaml:"leeway"`
	// RolesClaim is the dotted path of the roles claim. Default "roles".
	RolesClaim string `yaml:"roles_claim"`
	// ScopeClaim is the path of the scopes: a space-separated string or an
	// array. Default "scope".
	ScopeClaim string `yaml:"scope_claim"`
	// RefreshInterval refreshes the keys in the background. Default 10m.
	RefreshInterval Duration `yaml:"refresh_interval" zero:""`
	// KeyCooldown: least time between key fetches caused by unknown kids.
	// Default 30s.
	KeyCooldown Duration `yaml:"key_cooldown" zero:""`
	// Introspection verifies opaque (non-JWT) tokens with the issuer
	// (RFC 7662). Off unless set.
	Introspection *Introspection `yaml:"introspection"`
}

// Introspection is an RFC 7662 token introspection client.
type Introspection struct {
	// Endpoint; default the issuer metadata's introspection_endpoint.
	Endpoint string `yaml:"endpoint"`
	// ClientID and ClientSecret authenticate Gatehouse (HTTP Basic).
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret" secret:"true"`
	// ClientSecretFile: a file holding the client secret, instead of
	// client_secret.
	ClientSecretFile string `yaml:"client_secret_file" file:"client_secret"`
	// CacheTTL bounds how long an active answer is reused (never past the
	// token's exp). Default 60s; 0: never reused.
	CacheTTL Duration `yaml:"cache_ttl"`
	// NegativeTTL: how long an inactive answer is reused. Default 10s; 0:
	// never reused.
	NegativeTTL Duration `yaml:"negative_ttl"`
	// Timeout of one introspection request. Default 2s.
	Timeout Duration `yaml:"timeout" zero:""`
}

// RouteAuth is a route's policy.
type RouteAuth struct {
	// Mode: none (default), optional (a token, if sent, must be valid) or
	// required.
	Mode string `yaml:"mode"`
	// Issuers accepted, by name. Default all.
	Issuers []string `yaml:"issuers"`
	// Accept: the credentials this route takes: bearer (an Authorization
	// header) and/or session (the browser login cookie; needs auth.login).
	// Default [bearer]. With session, a browser navigation without a
	// session is sent to log in; other requests get 401.
	Accept []string `yaml:"accept"`
	// ForwardSessionToken sends the session's access token upstream as
	// Authorization: Bearer. Default false.
	ForwardSessionToken bool `yaml:"forward_session_token"`
	// Roles required.
	Roles RoleRule `yaml:"roles"`
	// Scopes: every one is required.
	Scopes []string `yaml:"scopes"`
	// Claims: each claim (dotted path) must equal the value, or contain it
	// when the claim is an array.
	Claims map[string]string `yaml:"claims"`
	// ForwardToken keeps the Authorization header for the upstream.
	// Default true.
	ForwardToken *bool `yaml:"forward_token"`
	// Preflight lets CORS preflight requests (OPTIONS with
	// Access-Control-Request-Method) through without a token. Default false.
	Preflight bool `yaml:"preflight"`
	// ResourceMetadata is the RFC 9728 protected resource metadata URL
	// named in WWW-Authenticate on 401.
	ResourceMetadata string `yaml:"resource_metadata"`
	// OnIntrospectionError: what a request gets when introspection cannot
	// answer: "unavailable" (503, default) or "deny" (401). Never allowed.
	OnIntrospectionError string `yaml:"on_introspection_error"`
}

// RoleRule requires roles.
type RoleRule struct {
	AnyOf []string `yaml:"any_of"`
	AllOf []string `yaml:"all_of"`
}

// Match says which requests a route takes. All given conditions must hold.
type Match struct {
	// Host: exact names or "*.example.com" wildcards (one label or more);
	// compared without port, case-insensitively. Empty: any host.
	Host []string `yaml:"host"`
	// PathPrefix matches whole segments: /admin matches /admin and
	// /admin/x, never /adminx. "/" matches everything.
	PathPrefix string `yaml:"path_prefix"`
	// Path matches exactly this (normalized) path.
	Path string `yaml:"path"`
	// Methods: allowed methods. Empty: any.
	Methods []string `yaml:"methods"`
	// Headers: each named request header must equal the value exactly; the
	// value "*" means present with any value.
	Headers map[string]string `yaml:"headers" headers:"true"`
}

// API routes /<prefix>/<service>/<rest> to the upstream named for <service>.
type API struct {
	// Services maps a service name (a path segment) to an upstream.
	Services map[string]string `yaml:"services"`
	// Rewrite is the upstream path template. {service} is the service
	// segment, {rest} the remainder of the path after it, with its leading
	// slash (or empty). Default "{prefix}/{service}{rest}" (unchanged),
	// where {prefix} is the route's path_prefix.
	Rewrite string `yaml:"rewrite"`
}

// Static serves files under a directory. Paths never escape Root.
type Static struct {
	// Root directory. Required.
	Root string `yaml:"root"`
	// Index file served for directory paths. Default index.html.
	Index string `yaml:"index"`
	// SPA: serve Root/Index for paths with no file (client-side routing).
	SPA bool `yaml:"spa"`
	// StripPrefix removes the route's path_prefix before looking up files.
	StripPrefix bool `yaml:"strip_prefix"`
	// Dotfiles serves files and directories whose name begins with a dot
	// (.env, .git). Default false: they are not found (404), as if absent;
	// .well-known is always served.
	Dotfiles bool `yaml:"dotfiles"`
}

// Redirect answers with a Location.
type Redirect struct {
	// To: the target URL. "{uri}" is replaced by the request's path and query.
	To string `yaml:"to"`
	// Status: 301, 302, 303, 307 or 308. Default 308.
	Status int `yaml:"status" zero:""`
}

// Respond answers directly.
type Respond struct {
	// Status code. Default 200.
	Status int `yaml:"status" zero:""`
	// Body text.
	Body string `yaml:"body"`
	// ContentType of the body. Default "text/plain; charset=utf-8".
	ContentType string `yaml:"content_type"`
}

// HeaderEdits are applied in the order remove, set, add.
type HeaderEdits struct {
	// Set replaces a header's values.
	Set map[string]string `yaml:"set" headers:"true"`
	// Add appends a value.
	Add map[string]string `yaml:"add" headers:"true"`
	// Remove deletes headers.
	Remove []string `yaml:"remove"`
}

// Duration is a time.Duration written as "250ms", "5s", "1m".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalYAML writes the duration as it is configured ("5s").
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Size is a byte count written as an integer or with a unit: "64KiB",
// "10MB", "1GiB".
type Size int64
