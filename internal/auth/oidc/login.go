// Package oidc is Gatehouse's browser login: the OAuth 2.1 authorization
// code flow with PKCE (S256, always), server-side sessions, silent refresh
// and logout, against any issuer that publishes OpenID Connect or RFC 8414
// metadata.
//
// Invariants:
//   - The browser holds an opaque session id and its MAC, never a token;
//     tokens live in a session.Store, encrypted under a key derived from
//     the cookie secret, at a key that is a hash of the id.
//   - Every login gets a new session id (no fixation). Login state (state,
//     nonce, PKCE verifier, return path) travels in a short-lived
//     encrypted cookie per flow, so tabs can log in at once.
//   - Every URL Gatehouse sends a browser to is built from configuration
//     (redirect_url, the issuer's metadata) or is a path checked by
//     SafeReturn; never from Host or X-Forwarded-* headers.
//   - A session's access token is refreshed at most once at a time, across
//     instances when the store is shared (a store lock); a refused refresh
//     (invalid_grant) ends the session everywhere.
package oidc

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/auth/jwt"
)

// Config is one compiled auth.login section.
type Config struct {
	Issuer       string // issuer URL: the ID token's iss
	ClientID     string
	ClientSecret string // "": a public client
	RedirectURL  string
	Scopes       []string
	Resource     string // RFC 8707 resource indicator; "" none
	CookieSecret string
	CookieName   string // base name; "__Host-" is prepended over https
	LoginPath    string
	LogoutPath   string
	// PostLogoutRedirectURL is sent to the issuer's end_session_endpoint.
	PostLogoutRedirectURL string
	RefreshMargin         time.Duration
	MaxLifetime           time.Duration
	FlowTimeout           time.Duration

	// Metadata gives the issuer's endpoints (discovery, cached).
	Metadata func(ctx context.Context) (issuer.Metadata, error)
	// IDTokens verifies ID tokens: iss, aud = ClientID, signature, exp.
	IDTokens *jwt.Verifier
	HTTP     *http.Client
	Now      func() time.Time
	Events   *slog.Logger
}

// Login serves one snapshot's browser login over Shared state.
type Login struct {
	cfg     Config
	sh      *Shared
	keys    *keys
	origin  string // scheme://host of RedirectURL
	secure  bool   // origin is https: Secure and __Host- cookies
	cookie  string // session cookie name as sent
	flowPfx string // flow cookie name prefix
	cbPath  string
	decoded *decodedCache
}

// New returns the login of cfg over sh.
func New(cfg Config, sh *Shared) (*Login, error) {
	u, err := url.Parse(cfg.RedirectURL)
	if err != nil {
		return nil, err
	}
	k, err := deriveKeys(cfg.CookieSecret)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Events == nil {
		cfg.Events = slog.New(slog.DiscardHandler)
	}
	l := &Login{cfg: cfg, sh: sh, keys: k, origin: u.Scheme + "://" + u.Host, secure: u.Scheme == "https", cbPath: u.Path,
		decoded: newDecodedCache()}
	l.cookie = cfg.CookieName
	if l.secure {
		// __Host-: only set with Secure, Path=/ and no Domain, so a
		// sibling subdomain cannot plant or shadow it (RFC 6265bis §4.1.3.2).
		l.cookie = "__Host-" + l.cookie
	}
	l.flowPfx = l.cookie + "_flow_"
	return l, nil
}

// CallbackPath, LoginPath and LogoutPath are the paths Gatehouse serves.
func (l *Login) CallbackPath() string { return l.cbPath }
func (l *Login) LoginPath() string    { return l.cfg.LoginPath }
func (l *Login) LogoutPath() string   { return l.cfg.LogoutPath }

// IsOwnCookie reports whether a cookie name is one of login's, which
// never reach an upstream.
func IsOwnCookie(base, name string) bool {
	name = strings.TrimPrefix(name, "__Host-")
	return strings.HasPrefix(name, base) && (len(name) == len(base) || name[len(base)] == '_')
}

// oauth2Config is the x/oauth2 client for the issuer's current endpoints.
func (l *Login) oauth2Config(md issuer.Metadata) *oauth2.Config {
	style := oauth2.AuthStyleInHeader // client_secret_basic
	if l.cfg.ClientSecret == "" {
		style = oauth2.AuthStyleInParams // public client: client_id in the body
	}
	return &oauth2.Config{
		ClientID:     l.cfg.ClientID,
		ClientSecret: l.cfg.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: style},
		RedirectURL:  l.cfg.RedirectURL,
		Scopes:       l.cfg.Scopes,
	}
}

// clientCtx carries Gatehouse's issuer HTTP client to x/oauth2 (never
// http.DefaultClient).
func (l *Login) clientCtx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, l.cfg.HTTP)
}

func (l *Login) metadata(ctx context.Context) (issuer.Metadata, error) {
	md, err := l.cfg.Metadata(ctx)
	if err != nil {
		return md, err
	}
	if md.AuthorizationEndpoint == "" || md.TokenEndpoint == "" {
		return md, errors.New("login: issuer metadata lacks authorization_endpoint or token_endpoint")
	}
	return md, nil
}

// IsNavigation reports whether r is a browser's top-level navigation, the
// only kind of request that is sent to log in; fetch, XHR and API calls
// get 401 instead. Fetch metadata decides when present; otherwise a GET
// that accepts HTML counts.
func IsNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate" && r.Header.Get("Sec-Fetch-Dest") != "empty"
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html") && r.Header.Get("X-Requested-With") == ""
}

// sameOrigin reports whether a state-changing request (logout) comes from
// a page of Gatehouse's own origin: fetch metadata when the browser sends
// it, else Origin, else Referer. Requests with none of them are refused.
func (l *Login) sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s == "same-origin"
	}
	if o := r.Header.Get("Origin"); o != "" {
		return o == l.origin
	}
	ref := r.Header.Get("Referer")
	return strings.HasPrefix(ref, l.origin+"/")
}

func (l *Login) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: l.secure, SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
		if c.MaxAge == 0 {
			c.MaxAge = 1
		}
	} else {
		c.MaxAge = -1 // delete
	}
	w.Header().Add("Set-Cookie", c.String())
}

// noStore marks a response that must never be cached: it sets or clears
// cookies, or redirects by per-user state.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}
