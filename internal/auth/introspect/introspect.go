// Package introspect checks opaque access tokens with their issuer
// (RFC 7662). Answers are cached by the caller (authn.Cache); concurrent
// requests for the same token share one introspection call, which runs
// detached from the requests waiting for it (package flight): a waiter
// that leaves ends only its own wait.
//
// What an answer other than 200 means (RFC 7662 §2.3, issue 14):
//
//   - 401 or 403, or an OAuth error invalid_client or unauthorized_client
//     with any 4xx status (RFC 6749 §5.2 allows 400 for it): the endpoint
//     refused Gatehouse's own client credentials. So do 404 and 405: the
//     endpoint URL is wrong. Neither is the token's fault: ErrMisconfigured,
//     which the caller answers with 503 (never 401, which would tell the
//     user their token is bad), and which is logged once until the endpoint
//     answers 200 again.
//   - 408, 429, 5xx, and transport errors: the endpoint is unavailable
//     (503).
//   - any other 4xx (such as 400 for a token the server cannot even parse,
//     a JWE or a 5-segment string): the endpoint refused the token.
//     RFC 7662 says such a token is simply inactive (active: false), so it
//     is ErrInactive and the caller answers 401 invalid_token.
package introspect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gatehouse/internal/auth/flight"
	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/auth/jwt"
)

// maxAnswerBytes bounds an introspection answer.
const maxAnswerBytes = 1 << 20

// ErrInactive means the issuer says the token is not active (revoked,
// expired, unknown, or not for this resource).
var ErrInactive = errors.New("token not active")

// ErrMisconfigured means the introspection endpoint refused Gatehouse's
// request itself, not the token: its client credentials or the endpoint's
// URL are wrong (a fault of Gatehouse's or the issuer's configuration).
var ErrMisconfigured = errors.New("introspection endpoint refused gatehouse's client (credentials or endpoint misconfigured)")

// Client introspects tokens at one issuer.
type Client struct {
	Issuer   string // the response's iss, if present, must equal it
	Audience string // the response's aud, if present, must contain it
	Endpoint string // empty: the issuer metadata's introspection_endpoint
	// Metadata, if set, is where the issuer's metadata comes from when
	// Endpoint is empty: the issuer's key set's (issuer.Keys.Metadata),
	// which fetches it once for every request waiting on it and, after
	// a failure, at most once a second. Nil: fetched here on each call.
	Metadata     func(context.Context) (issuer.Metadata, error)
	ClientID     string
	ClientSecret string
	HTTP         *http.Client
	Timeout      time.Duration // of one introspection request; default 2s
	Leeway       time.Duration // for nbf and iat, as the issuer's JWTs get
	Now          func() time.Time
	// Events, if set, gets a warning when the endpoint starts refusing
	// Gatehouse's client (ErrMisconfigured), once until it answers again.
	Events *slog.Logger

	flight   flight.Group
	refused  atomic.Bool // the last answer was ErrMisconfigured
	mu       sync.Mutex  // guards endpoint
	endpoint string
}

// Introspect returns the claims of an active token, ErrInactive, or an
// error when the issuer could not be asked (the caller fails closed).
func (c *Client) Introspect(ctx context.Context, token string) (map[string]any, error) {
	h := sha256.Sum256([]byte(token))
	// The shared call may first discover the endpoint, then introspect.
	limit := issuer.DiscoveryTimeout + c.timeout()
	claims, err := flight.Do(&c.flight, ctx, string(h[:]), limit, func(ctx context.Context) (map[string]any, error) {
		return c.introspect(ctx, token)
	})
	if err != nil {
		return nil, err
	}
	return claims, nil
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 2 * time.Second
}

func (c *Client) introspect(ctx context.Context, token string) (map[string]any, error) {
	ep, err := c.resolve(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: the credentials are form-urlencoded before Basic.
	req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	if err := c.status(ep, resp.StatusCode, body); err != nil {
		return nil, err
	}
	// An answer that is not JSON at all (an error page, a body cut
	// short, one past the size bound) says nothing of the token: the
	// endpoint could not answer (503, or on_introspection_error), and
	// nothing is cached. A client told 401 invalid_token would throw a
	// good token away.
	if len(body) > maxAnswerBytes {
		return nil, fmt.Errorf("introspection: an answer over %d bytes", maxAnswerBytes)
	}
	if !json.Valid(body) {
		return nil, errors.New("introspection: the answer is not JSON")
	}
	// An answer is read as strictly as a JWT's claims: with two
	// "active" members, which one counts would be the parser's choice.
	if err := jwt.StrictObject(body); err != nil {
		return nil, fmt.Errorf("%w: the introspection answer is not one JSON object with distinct members: %v", ErrInactive, err)
	}
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	if active, _ := claims["active"].(bool); !active {
		return nil, ErrInactive
	}
	if isRefreshToken(claims["token_type"]) || isRefreshToken(claims["token_use"]) || isRefreshToken(claims["typ"]) {
		// RFC 7662 §2.1: the server looks the token up whatever the
		// hint, so a refresh token comes back active; OAuth 2.1 §1.3.2
		// keeps refresh tokens from resource servers.
		return nil, fmt.Errorf("%w: a refresh token, not an access token", ErrInactive)
	}
	if v, ok := claims["iss"]; ok {
		if iss, _ := v.(string); iss != c.Issuer {
			return nil, fmt.Errorf("%w: issued by %v", ErrInactive, v)
		}
	}
	if c.Audience != "" && claims["aud"] != nil && !jwt.Claims(claims).HasAudience(c.Audience) {
		return nil, fmt.Errorf("%w: not for this audience", ErrInactive)
	}
	now := c.now()
	if err := jwt.Claims(claims).CheckTimes(now, c.Leeway); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInactive, err)
	}
	if exp, ok := jwt.Claims(claims).Expiry(); ok && !now.Before(exp) {
		return nil, fmt.Errorf("%w: expired", ErrInactive) // the issuer's own clock: no leeway
	}
	return claims, nil
}

// isRefreshToken reports whether a token_type, token_use or typ member
// names a refresh token: "refresh_token" (Ory Hydra's token_use),
// "Refresh" (Keycloak's typ), or RFC 8693's token type URI.
func isRefreshToken(v any) bool {
	s, _ := v.(string)
	return strings.EqualFold(s, "refresh_token") || strings.EqualFold(s, "refresh") ||
		s == "urn:ietf:params:oauth:token-type:refresh_token"
}

// status maps an answer's status to an error (see the package doc), and
// logs the endpoint starting or stopping to refuse Gatehouse's client.
func (c *Client) status(ep string, code int, body []byte) error {
	if code == http.StatusOK {
		if c.refused.Swap(false) && c.Events != nil {
			c.Events.Info("introspection endpoint accepts gatehouse's client again", "issuer", c.Issuer, "endpoint", ep)
		}
		return nil
	}
	var oauth struct {
		Error string `json:"error"` // RFC 6749 §5.2
	}
	clientErr := code >= 400 && code < 500
	if clientErr {
		_ = json.Unmarshal(body, &oauth) // not JSON: no error code
	}
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden ||
		code == http.StatusNotFound || code == http.StatusMethodNotAllowed ||
		(clientErr && (oauth.Error == "invalid_client" || oauth.Error == "unauthorized_client")):
		err := fmt.Errorf("%w: %s", ErrMisconfigured, answer(code, oauth.Error))
		if !c.refused.Swap(true) && c.Events != nil {
			c.Events.Warn("introspection endpoint refuses gatehouse's client; opaque tokens get 503 until the issuer's introspection client_id, client_secret or endpoint is fixed",
				"issuer", c.Issuer, "endpoint", ep, "status", code, "err", err.Error())
		}
		return err
	case clientErr && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return fmt.Errorf("%w: the introspection endpoint refused the token: %s", ErrInactive, answer(code, oauth.Error))
	}
	return fmt.Errorf("introspection: status %d", code)
}

// answer describes a refusal for logs: the status, and the OAuth error
// code when it is a short code (it comes from the network).
func answer(code int, oauthErr string) string {
	if oauthErr == "" || len(oauthErr) > 64 || strings.ContainsFunc(oauthErr, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return fmt.Sprintf("status %d", code)
	}
	return fmt.Sprintf("status %d, error %s", code, oauthErr)
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) resolve(ctx context.Context) (string, error) {
	c.mu.Lock()
	ep := c.endpoint
	c.mu.Unlock()
	if ep != "" {
		return ep, nil
	}
	if c.Endpoint != "" {
		ep = c.Endpoint
	} else {
		var md issuer.Metadata
		var err error
		if c.Metadata != nil {
			md, err = c.Metadata(ctx)
		} else {
			md, err = issuer.FetchMetadata(ctx, c.HTTP, c.Issuer)
		}
		if err != nil {
			return "", err
		}
		if md.IntrospectionEndpoint == "" {
			return "", fmt.Errorf("issuer %s has no introspection_endpoint", c.Issuer)
		}
		ep = md.IntrospectionEndpoint
	}
	c.mu.Lock()
	c.endpoint = ep
	c.mu.Unlock()
	return ep, nil
}
