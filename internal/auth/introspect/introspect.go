// Package introspect checks opaque access tokens with their issuer
// (RFC 7662). Answers are cached by the caller (authn.Cache); concurrent
// requests for the same token share one introspection call, which runs
// detached from the requests waiting for it (package flight): a waiter
// that leaves ends only its own wait.
package introspect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"gatehouse/internal/auth/flight"
	"gatehouse/internal/auth/issuer"
	"gatehouse/internal/auth/jwt"
)

// ErrInactive means the issuer says the token is not active (revoked,
// expired, unknown, or not for this resource).
var ErrInactive = errors.New("token not active")

// Client introspects tokens at one issuer.
type Client struct {
	Issuer       string // the response's iss, if present, must equal it
	Audience     string // the response's aud, if present, must contain it
	Endpoint     string // empty: the issuer metadata's introspection_endpoint
	ClientID     string
	ClientSecret string
	HTTP         *http.Client
	Timeout      time.Duration // of one introspection request; default 2s
	Now          func() time.Time

	flight   flight.Group
	mu       sync.Mutex // guards endpoint
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection: status %d", resp.StatusCode)
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
	if iss, ok := claims["iss"].(string); ok && iss != c.Issuer {
		return nil, fmt.Errorf("%w: issued by %q", ErrInactive, iss)
	}
	if c.Audience != "" && claims["aud"] != nil && !jwt.Claims(claims).HasAudience(c.Audience) {
		return nil, fmt.Errorf("%w: not for this audience", ErrInactive)
	}
	if exp, ok := jwt.Claims(claims).Expiry(); ok && !c.now().Before(exp) {
		return nil, fmt.Errorf("%w: expired", ErrInactive)
	}
	return claims, nil
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
		md, err := issuer.FetchMetadata(ctx, c.HTTP, c.Issuer)
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
