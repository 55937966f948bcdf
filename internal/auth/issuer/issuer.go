// Package issuer finds an authorization server's signing keys: it reads
// the server's metadata (OpenID Connect discovery, or RFC 8414), checks
// that the metadata names the configured issuer, and keeps a jwks.Set for
// the jwks_uri it gives, refreshed in the background.
//
// Discovery is shared by the requests waiting for it and runs detached
// from them, bounded by DiscoveryTimeout (package flight): a waiter that
// leaves ends only its own wait.
package issuer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/auth/flight"
	"gatehouse/internal/auth/jwks"
)

// DiscoveryTimeout bounds one discovery: both well-known locations, each
// at most metadataTimeout.
const DiscoveryTimeout = 2 * metadataTimeout

// metadataTimeout bounds one metadata request.
const metadataTimeout = 10 * time.Second

// Keys implements jwt.Keys for one issuer.
type Keys struct {
	Issuer   string
	JWKSURI  string // configured; empty: discovered
	Client   *http.Client
	Cooldown time.Duration
	Refresh  time.Duration
	Now      func() time.Time
	// Name is the issuer's config name, for events; Events, if set,
	// receives one event when the issuer becomes unreachable and one when
	// it is reachable again (not one per request).
	Name   string
	Events *slog.Logger
	// Inherit, if set, is the key set this one replaces (the same issuer,
	// under settings a reload changed): its keys and metadata are this
	// one's until this one fetches its own, so a reload while the issuer
	// is down keeps the keys already fetched.
	Inherit *Keys

	reach       reachability
	inheritOnce sync.Once
	flight      flight.Group
	current     atomic.Pointer[jwks.Set] // set, for lock-free reads
	mu          sync.Mutex               // guards the following fields
	set         *jwks.Set
	triedAt     time.Time
	md          *Metadata // nil until fetched
	mdTried     time.Time
}

// Key implements jwt.Keys.
func (k *Keys) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	set, err := k.ensure(ctx)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	return set.Key(ctx, kid)
}

func (k *Keys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// ensure returns the key set, discovering the jwks_uri first if needed
// (single-flight; after a failure, at most once per cooldown or
// jwks.RetryAfterFailure, the shorter).
func (k *Keys) ensure(ctx context.Context) (*jwks.Set, error) {
	k.inherit()
	k.mu.Lock()
	set, tried := k.set, k.triedAt
	k.mu.Unlock()
	if set != nil {
		return set, nil
	}
	if !tried.IsZero() && k.now().Sub(tried) < min(k.Cooldown, jwks.RetryAfterFailure) {
		return nil, fmt.Errorf("issuer %s: metadata unavailable", k.Issuer)
	}
	return flight.Do(&k.flight, ctx, "discover", DiscoveryTimeout, func(ctx context.Context) (*jwks.Set, error) {
		uri := k.JWKSURI
		var err error
		if uri == "" {
			var md Metadata
			md, err = k.Metadata(ctx)
			uri = md.JWKSURI
			if err == nil && uri == "" {
				err = fmt.Errorf("issuer %s: metadata has no jwks_uri", k.Issuer)
			}
		}
		if err != nil {
			defer k.observe(err) // after the lock is released
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		k.triedAt = k.now()
		if err != nil {
			return nil, err
		}
		if k.set == nil {
			k.setLocked(uri, nil)
		}
		return k.set, nil
	})
}

// setLocked makes k's key set for uri, with seed's keys if seed is set.
// k.mu is held.
func (k *Keys) setLocked(uri string, seed *jwks.Set) {
	k.set = jwks.New(uri, jwks.Options{Client: k.Client, Cooldown: k.Cooldown, Now: k.Now, OnFetch: k.observe, Seed: seed})
	k.current.Store(k.set)
}

// inherit takes over what k.Inherit had fetched, once, before k fetches
// anything itself: its metadata, and its keys in a set of k's own (k's
// jwks_uri, or the one the metadata names), as if k had fetched them.
func (k *Keys) inherit() {
	k.inheritOnce.Do(func() {
		prev := k.Inherit
		k.Inherit = nil // what is needed is copied: the old set may go
		if prev == nil {
			return
		}
		prev.mu.Lock()
		md, set := prev.md, prev.set
		prev.mu.Unlock()
		if set == nil {
			return
		}
		uri := k.JWKSURI
		if uri == "" {
			if md == nil {
				return
			}
			uri = md.JWKSURI
		}
		k.mu.Lock()
		if k.md == nil {
			k.md = md
		}
		if k.set == nil {
			k.setLocked(uri, set)
		}
		k.mu.Unlock()
		if reached, _ := prev.Reachability(); reached {
			k.reach.mu.Lock()
			k.reach.reached = true
			k.reach.mu.Unlock()
		}
	})
}

// Metadata returns the issuer's metadata, fetched once (single-flight;
// after a failure, at most once per cooldown or jwks.RetryAfterFailure,
// the shorter) and kept for the life of k.
func (k *Keys) Metadata(ctx context.Context) (Metadata, error) {
	k.inherit()
	k.mu.Lock()
	md, tried := k.md, k.mdTried
	k.mu.Unlock()
	if md != nil {
		return *md, nil
	}
	if !tried.IsZero() && k.now().Sub(tried) < min(k.Cooldown, jwks.RetryAfterFailure) {
		return Metadata{}, fmt.Errorf("issuer %s: metadata unavailable", k.Issuer)
	}
	return flight.Do(&k.flight, ctx, "metadata", DiscoveryTimeout, func(ctx context.Context) (Metadata, error) {
		md, err := FetchMetadata(ctx, k.Client, k.Issuer)
		k.mu.Lock()
		defer k.mu.Unlock()
		k.mdTried = k.now()
		if err != nil {
			return Metadata{}, err
		}
		k.md = &md
		return md, nil
	})
}

// Run refreshes keys every Refresh until ctx ends.
func (k *Keys) Run(ctx context.Context) {
	t := time.NewTicker(k.Refresh)
	defer t.Stop()
	for {
		_ = k.RefreshKeys(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RefreshKeys fetches the key set now (discovering it first if needed).
func (k *Keys) RefreshKeys(ctx context.Context) error {
	set, err := k.ensure(ctx)
	if err != nil {
		return err
	}
	return set.Refresh(ctx)
}

// Generation is the key set's jwks.Set.Generation (0 before discovery).
func (k *Keys) Generation() uint64 {
	if set := k.current.Load(); set != nil {
		return set.Generation()
	}
	return 0
}

// Holds is the key set's jwks.Set.Holds (false before discovery).
func (k *Keys) Holds(kid string, key any) bool {
	set := k.current.Load()
	return set != nil && set.Holds(kid, key)
}

// Fetches reports how many times the keys were fetched.
func (k *Keys) Fetches() int64 {
	k.mu.Lock()
	set := k.set
	k.mu.Unlock()
	if set == nil {
		return 0
	}
	n, _, _ := set.Stats()
	return n
}

// reachability is what Gatehouse learned of an issuer by fetching its
// metadata and keys.
type reachability struct {
	mu      sync.Mutex // guards the following fields
	reached bool       // keys were fetched at least once
	failing bool       // the last fetch (discovery or keys) failed
	lastErr string
}

// observe records the result of a discovery or key fetch and logs an
// event when the issuer starts failing or recovers: once per transition,
// however many requests and refreshes see the same state.
func (k *Keys) observe(err error) {
	r := &k.reach
	r.mu.Lock()
	was := r.failing
	r.failing = err != nil
	if err != nil {
		r.lastErr = err.Error()
	} else {
		r.reached, r.lastErr = true, ""
	}
	r.mu.Unlock()
	if k.Events == nil || was == (err != nil) {
		return
	}
	if err != nil {
		k.Events.Warn("issuer unreachable; tokens needing keys not yet fetched get 503 until it is back",
			"issuer", k.Name, "url", k.Issuer, "err", err.Error())
		return
	}
	k.Events.Info("issuer reachable again", "issuer", k.Name, "url", k.Issuer)
}

// Reachability reports whether the issuer's keys were ever fetched, and
// the last fetch's error while it is failing ("" otherwise).
func (k *Keys) Reachability() (reached bool, lastErr string) {
	k.reach.mu.Lock()
	defer k.reach.mu.Unlock()
	return k.reach.reached, k.reach.lastErr
}

// Metadata is what Gatehouse uses of an issuer's metadata.
type Metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	// For browser login.
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	// ISSParameter: the authorization response carries iss (RFC 9207).
	ISSParameter bool `json:"authorization_response_iss_parameter_supported"`
}

// FetchMetadata tries OpenID Connect discovery
// ({issuer}/.well-known/openid-configuration), then RFC 8414
// (/.well-known/oauth-authorization-server{path}). The metadata's issuer
// must equal issuer exactly (RFC 8414 §3.3).
func FetchMetadata(ctx context.Context, client *http.Client, issuer string) (Metadata, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return Metadata{}, fmt.Errorf("issuer %s: %w", issuer, err)
	}
	candidates := []string{
		strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration",
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/"),
	}
	var lastErr error
	for _, c := range candidates {
		md, err := fetchMetadata(ctx, client, c, issuer)
		if err == nil {
			return md, nil
		}
		lastErr = err
	}
	return Metadata{}, lastErr
}

func fetchMetadata(ctx context.Context, client *http.Client, at, issuer string) (Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, at, nil)
	if err != nil {
		return Metadata{}, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return Metadata{}, fmt.Errorf("issuer metadata %s: %w", at, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Metadata{}, fmt.Errorf("issuer metadata %s: status %d", at, resp.StatusCode)
	}
	var md Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil {
		return Metadata{}, fmt.Errorf("issuer metadata %s: %w", at, err)
	}
	if md.Issuer != issuer {
		return Metadata{}, fmt.Errorf("issuer metadata %s names issuer %q, not %q", at, md.Issuer, issuer)
	}
	return md, nil
}
