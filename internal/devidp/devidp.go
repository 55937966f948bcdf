// Package devidp is a small built-in OAuth 2.1 / OpenID Connect issuer for
// development: `gatehouse demo` uses it so a newcomer can log in to /admin/
// as alice (role admin) and be refused as bob (role viewer) with nothing
// installed, and Gatehouse's own tests use it to exercise the browser-login
// client.
//
// NOT FOR PRODUCTION. There are no passwords: anyone who can reach the
// login page can sign in as any configured user by pressing a button. The
// signing key is ephemeral (made by New, never stored), all state lives in
// memory, and the issuer only accepts loopback issuer URLs and listen
// addresses. Callers log a warning line when they start it.
//
// Invariants:
//   - PKCE with S256 is required on every authorization request (RFC 9700
//     §2.1.1); "plain" is refused.
//   - Errors found before the redirect URI is validated are shown as a 400
//     page and never redirected (RFC 6749 §4.1.2.1); redirect URIs match
//     exactly (RFC 9700 §4.1.3).
//   - Codes are one-time and live 60 s; redeeming one twice revokes what it
//     issued (RFC 6749 §4.1.2).
//   - Refresh tokens are opaque and rotated on every use; presenting a
//     rotated one revokes the whole grant (RFC 9700 §4.14.2).
//   - Every table (codes, grants, refresh tokens, access token IDs) is
//     bounded by maxEntries; expired entries are swept when a table is
//     full, and a still-full table refuses new entries rather than
//     evicting live ones.
package devidp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ErrNotLoopback is returned by New and Start for an issuer URL or listen
// address that is not on a loopback interface.
var ErrNotLoopback = errors.New("devidp: not a loopback address")

// maxEntries bounds each in-memory table.
const maxEntries = 10_000

// codeTTL is the lifetime of an authorization code.
const codeTTL = 60 * time.Second

// User is a person who can sign in. Name becomes the sub claim.
type User struct {
	Name  string
	Roles []string
}

// Client is a registered OAuth client.
type Client struct {
	ID, Secret             string   // Secret "" = public client (token_endpoint_auth_method none)
	RedirectURIs           []string // exact match
	PostLogoutRedirectURIs []string // exact match
}

// Options configure an IdP. Zero values take the documented defaults.
type Options struct {
	Clients    []Client
	Users      []User           // default: alice {admin}, bob {viewer}
	Audience   string           // aud of access tokens; default "gatehouse"
	AccessTTL  time.Duration    // access and ID token lifetime; default 5m
	RefreshTTL time.Duration    // lifetime of a login's refresh tokens, counted from login (not sliding); default 8h
	Now        func() time.Time // default time.Now
}

// IdP is a development issuer. It is an http.Handler serving every
// endpoint under the issuer URL's path.
type IdP struct {
	issuer   string // no trailing slash
	base     string // the issuer URL's escaped path: "" or "/x", no trailing slash
	clients  map[string]Client
	users    []User
	byName   map[string]User
	audience string
	access   time.Duration
	refresh  time.Duration
	now      func() time.Time

	key       *ecdsa.PrivateKey
	kid       string
	atSigner  jose.Signer // typ at+jwt (RFC 9068)
	idSigner  jose.Signer // typ JWT
	mux       *http.ServeMux
	max       int // table bound; maxEntries except in tests
	authCodes atomic.Int64
	refreshes atomic.Int64
	done      chan struct{} // closed when the server started by Start has stopped; nil for New

	mu          sync.Mutex // guards the following fields
	codes       map[string]*codeRecord
	grants      map[string]*grant
	refreshTok  map[string]*refreshRecord
	accessJTI   map[string]*accessRecord
	lastRefresh string
	serveErr    error
}

// New makes an issuer for issuerURL (e.g. "http://127.0.0.1:5556") with a
// fresh ephemeral ES256 key. The URL's host must be a loopback IP or
// "localhost".
func New(issuerURL string, o Options) (*IdP, error) {
	iss, err := checkIssuer(issuerURL)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(iss) // checked
	i := &IdP{
		issuer:     iss,
		base:       strings.TrimSuffix(u.EscapedPath(), "/"),
		clients:    map[string]Client{},
		byName:     map[string]User{},
		audience:   o.Audience,
		access:     o.AccessTTL,
		refresh:    o.RefreshTTL,
		now:        o.Now,
		max:        maxEntries,
		codes:      map[string]*codeRecord{},
		grants:     map[string]*grant{},
		refreshTok: map[string]*refreshRecord{},
		accessJTI:  map[string]*accessRecord{},
	}
	if i.audience == "" {
		i.audience = "gatehouse"
	}
	if i.access <= 0 {
		i.access = 5 * time.Minute
	}
	if i.refresh <= 0 {
		i.refresh = 8 * time.Hour
	}
	if i.now == nil {
		i.now = time.Now
	}
	if err := i.addClients(o.Clients); err != nil {
		return nil, err
	}
	users := o.Users
	if len(users) == 0 {
		users = []User{{Name: "alice", Roles: []string{"admin"}}, {Name: "bob", Roles: []string{"viewer"}}}
	}
	for _, u := range users {
		if u.Name == "" {
			return nil, errors.New("devidp: user with empty name")
		}
		if _, dup := i.byName[u.Name]; dup {
			return nil, fmt.Errorf("devidp: user %q listed twice", u.Name)
		}
		u.Roles = append([]string{}, u.Roles...) // never nil, so roles encodes as []
		i.byName[u.Name] = u
		i.users = append(i.users, u)
	}
	if err := i.makeKey(); err != nil {
		return nil, err
	}
	i.mux = i.routes()
	return i, nil
}

func (i *IdP) addClients(cs []Client) error {
	for _, c := range cs {
		if c.ID == "" {
			return errors.New("devidp: client with empty id")
		}
		if _, dup := i.clients[c.ID]; dup {
			return fmt.Errorf("devidp: client %q listed twice", c.ID)
		}
		if len(c.RedirectURIs) == 0 {
			return fmt.Errorf("devidp: client %q: no redirect URIs", c.ID)
		}
		for _, list := range [][]string{c.RedirectURIs, c.PostLogoutRedirectURIs} {
			for _, s := range list {
				u, err := url.Parse(s)
				if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(s, "#") {
					return fmt.Errorf("devidp: client %q: redirect URI %q: want an absolute URL without fragment", c.ID, s)
				}
			}
		}
		c.RedirectURIs = append([]string{}, c.RedirectURIs...)
		c.PostLogoutRedirectURIs = append([]string{}, c.PostLogoutRedirectURIs...)
		i.clients[c.ID] = c
	}
	return nil
}

func (i *IdP) makeKey() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("devidp: generate key: %w", err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256) // RFC 7638 thumbprint as kid
	if err != nil {
		return fmt.Errorf("devidp: key thumbprint: %w", err)
	}
	i.key, i.kid = key, base64.RawURLEncoding.EncodeToString(tp)
	sk := jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: i.kid}}
	if i.atSigner, err = jose.NewSigner(sk, (&jose.SignerOptions{}).WithType("at+jwt")); err != nil {
		return fmt.Errorf("devidp: signer: %w", err)
	}
	if i.idSigner, err = jose.NewSigner(sk, (&jose.SignerOptions{}).WithType("JWT")); err != nil {
		return fmt.Errorf("devidp: signer: %w", err)
	}
	return nil
}

// checkIssuer validates an issuer URL and returns it without a trailing
// slash.
func checkIssuer(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("devidp: issuer %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("devidp: issuer %q: want http(s)://host[:port][/path] without query or fragment", s)
	}
	if !isLoopbackHost(u.Hostname()) {
		return "", fmt.Errorf("devidp: issuer %q: %w", s, ErrNotLoopback)
	}
	return strings.TrimSuffix(s, "/"), nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Start listens on addr, which must be a loopback address ("127.0.0.1:0",
// "[::1]:5556", "localhost:0"; never ":0" or "0.0.0.0:0"), sets the issuer
// URL to http://<actual addr> and serves until ctx ends. Wait reports when
// the server has stopped.
func Start(ctx context.Context, addr string, o Options) (*IdP, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("devidp: listen address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1" // "localhost" may resolve to a non-loopback address
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("devidp: listen address %q: %w", addr, ErrNotLoopback)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("devidp: listen %s: %w", addr, err)
	}
	i, err := New("http://"+ln.Addr().String(), o)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: i, ReadHeaderTimeout: 10 * time.Second}
	i.done = make(chan struct{})
	go func() { // owned by ctx; Wait waits for it
		defer close(i.done)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			i.setServeErr(err)
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := srv.Shutdown(sctx); err != nil {
				_ = srv.Close()
			}
			cancel()
			<-served
		}
	}()
	return i, nil
}

func (i *IdP) setServeErr(err error) {
	if errors.Is(err, http.ErrServerClosed) {
		return
	}
	i.mu.Lock()
	i.serveErr = fmt.Errorf("devidp: serve: %w", err)
	i.mu.Unlock()
}

// Wait blocks until the server started by Start has stopped (after its ctx
// ended) and returns the error that stopped it unexpectedly, if any. For an
// IdP made by New it returns nil at once.
func (i *IdP) Wait() error {
	if i.done == nil {
		return nil
	}
	<-i.done
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.serveErr
}

// Issuer returns the issuer URL (no trailing slash).
func (i *IdP) Issuer() string { return i.issuer }

// TokenRequests counts token endpoint requests by grant_type
// ("authorization_code", "refresh_token"), failed ones included. Other
// grant types count as 0. For tests.
func (i *IdP) TokenRequests(grantType string) int64 {
	switch grantType {
	case "authorization_code":
		return i.authCodes.Load()
	case "refresh_token":
		return i.refreshes.Load()
	}
	return 0
}

// RevokeGrant ends everything issued for the user's logins: every refresh
// token is dead and every access token introspects as inactive. For tests.
func (i *IdP) RevokeGrant(user string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.revokeUserLocked(user)
}

// LastRefreshToken returns the most recently issued refresh token (tests
// simulate theft with it), or "" if none was issued yet.
func (i *IdP) LastRefreshToken() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.lastRefresh
}

// ServeHTTP serves the issuer's endpoints.
func (i *IdP) ServeHTTP(w http.ResponseWriter, r *http.Request) { i.mux.ServeHTTP(w, r) }

func (i *IdP) routes() *http.ServeMux {
	p := i.base
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+p+"/.well-known/openid-configuration", i.discovery)
	mux.HandleFunc("GET "+p+"/.well-known/oauth-authorization-server", i.discovery)
	if p != "" { // RFC 8414 §3.1 inserts the well-known segment before the issuer's path
		mux.HandleFunc("GET /.well-known/oauth-authorization-server"+p, i.discovery)
	}
	mux.HandleFunc("GET "+p+"/jwks", i.jwks)
	mux.HandleFunc("GET "+p+"/authorize", i.authorize)
	mux.HandleFunc("POST "+p+"/token", i.token)
	mux.HandleFunc("POST "+p+"/revoke", i.revoke)
	mux.HandleFunc("POST "+p+"/introspect", i.introspect)
	mux.HandleFunc("GET "+p+"/end_session", i.endSession)
	mux.HandleFunc("POST "+p+"/end_session", i.endSession)
	return mux
}

// randomToken returns 256 random bits, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go ≥1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
