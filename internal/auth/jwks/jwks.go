// Package jwks keeps an issuer's signing keys (a JWK Set fetched from its
// jwks_uri) and answers "which key has this kid".
//
// Fetches are single-flight: however many requests wait for an unknown
// kid, one fetch runs and all share its result (coreos/go-oidc's design).
// An unknown kid triggers a refetch at most once per cooldown, so a flood
// of tokens with random kids costs one fetch, not one per token; after a
// failed fetch, the next may come sooner (RetryAfterFailure), so an
// issuer that was down when Gatehouse started (apps started together, as
// in a Turborepo dev run) is picked up within a second. Keys are
// also refreshed in the background (Run). A failed fetch keeps the last
// keys (stale-if-error): an issuer outage does not stop tokens that were
// valid from verifying.
//
// A fetch runs detached from the request that started it, bounded by
// FetchTimeout (package flight): a waiter that leaves ends only its own
// wait.
package jwks

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"gatehouse/internal/auth/flight"
)

// RetryAfterFailure bounds the cooldown after a fetch that failed: an
// issuer that is down costs at most one fetch per this, whatever the
// tokens, and its keys are fetched this soon after it is back.
const RetryAfterFailure = time.Second

// FetchTimeout bounds one fetch of the set, whoever waits for it.
const FetchTimeout = 10 * time.Second

// ErrUnknownKey means no key with that kid, even after a refetch.
var ErrUnknownKey = errors.New("jwks: unknown key id")

// Set is a remote JWK Set.
type Set struct {
	url      string
	client   *http.Client
	cooldown time.Duration
	now      func() time.Time
	onFetch  func(error) // may be nil
	flight   flight.Group
	gen      atomic.Uint64 // successful fetches: Generation

	mu        sync.RWMutex // guards the following fields
	keys      map[string]jose.JSONWebKey
	fetchedAt time.Time // last successful fetch
	triedAt   time.Time // last attempt, successful or not
	lastErr   error
	fetches   int64
}

// Options configure a Set.
type Options struct {
	Client *http.Client // required: its own, never http.DefaultClient
	// Cooldown is the least time between fetches caused by unknown kids.
	// Default 30s.
	Cooldown time.Duration
	Now      func() time.Time
	// OnFetch, if set, is told the result of every fetch (nil: success),
	// whoever caused it: a request, a refresh, a waiter of another's.
	OnFetch func(err error)
	// Seed, if set, gives the new set the keys Seed holds (and when it
	// fetched them), as if fetched: the set that replaces another on a
	// reload keeps verifying while the issuer is down. Its own first
	// fetch is not delayed by them.
	Seed *Set
}

// New returns a Set for url. It fetches nothing until asked.
func New(url string, o Options) *Set {
	if o.Cooldown == 0 {
		o.Cooldown = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Set{url: url, client: o.Client, cooldown: o.Cooldown, now: o.Now, onFetch: o.OnFetch, keys: map[string]jose.JSONWebKey{}}
	if o.Seed != nil {
		o.Seed.mu.RLock()
		s.keys, s.fetchedAt = o.Seed.keys, o.Seed.fetchedAt // never written in place: a fetch replaces the map
		o.Seed.mu.RUnlock()
	}
	return s
}

// Key returns the key for kid, fetching the set when kid is unknown and
// the cooldown allows. An empty kid matches a set with a single key.
func (s *Set) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	s.mu.RLock()
	wait := s.cooldown
	if s.lastErr != nil {
		wait = min(wait, RetryAfterFailure)
	}
	mayFetch := s.triedAt.IsZero() || s.now().Sub(s.triedAt) >= wait
	s.mu.RUnlock()
	if mayFetch {
		if err := s.Refresh(ctx); err != nil {
			if k, ok := s.lookup(kid); ok { // another waiter's fetch may have it
				return k, nil
			}
			return jose.JSONWebKey{}, err
		}
	}
	if k, ok := s.lookup(kid); ok {
		return k, nil
	}
	// Unknown to a set that could not be fetched last time: the keys are
	// unavailable (fail closed, 503), not the token wrong (401).
	s.mu.RLock()
	lastErr := s.lastErr
	s.mu.RUnlock()
	if lastErr != nil {
		return jose.JSONWebKey{}, fmt.Errorf("jwks: %s unavailable: %w", s.url, lastErr)
	}
	return jose.JSONWebKey{}, ErrUnknownKey
}

func (s *Set) lookup(kid string) (jose.JSONWebKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if kid == "" && len(s.keys) == 1 {
		for _, k := range s.keys {
			return k, true
		}
	}
	k, ok := s.keys[kid]
	return k, ok && kid != ""
}

// Generation counts the set's successful fetches: it changes when the set
// may have lost keys. A caller that remembers what a key verified reads it
// before verifying, and asks Holds again once it has changed.
func (s *Set) Generation() uint64 { return s.gen.Load() }

// Holds reports whether kid still names key in the set (as Key would
// resolve it, without fetching): false once the key left the set, or kid
// names another key now.
func (s *Set) Holds(kid string, key any) bool {
	k, ok := s.lookup(kid)
	if !ok {
		return false
	}
	pub, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key)
}

// Refresh fetches the set now; concurrent callers share one fetch, which
// ctx's end does not cancel (ctx's end returns ctx's error to this caller
// only). On failure the previous keys stay.
func (s *Set) Refresh(ctx context.Context) error {
	_, err := flight.Do(&s.flight, ctx, "fetch", FetchTimeout, func(ctx context.Context) (struct{}, error) {
		keys, err := s.fetch(ctx)
		if s.onFetch != nil {
			defer s.onFetch(err) // after the lock is released
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.triedAt = s.now()
		s.fetches++
		s.lastErr = err
		if err != nil {
			return struct{}{}, err
		}
		s.keys, s.fetchedAt = keys, s.triedAt
		s.gen.Add(1)
		return struct{}{}, nil
	})
	return err
}

// maxSetBytes bounds a JWK Set document.
const maxSetBytes = 1 << 20

func (s *Set) fetch(ctx context.Context) (map[string]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: fetch %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: fetch %s: status %d", s.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSetBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks: fetch %s: %w", s.url, err)
	}
	if len(body) > maxSetBytes {
		return nil, fmt.Errorf("jwks: %s: document larger than %d bytes", s.url, maxSetBytes)
	}
	// Key by key: a key this library cannot read (a type it does not
	// know, such as a post-quantum "AKP", a curve it lacks, a member out
	// of range) is skipped, not the set (RFC 7517 §5). Otherwise the
	// issuer's first new kind of key would stop every token, old keys'
	// included, until it left the set again.
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("jwks: %s: %w", s.url, err)
	}
	keys := map[string]jose.JSONWebKey{}
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		// Only public signing keys: symmetric or private keys in a JWKS
		// are a misconfiguration, and "use": "enc" keys do not sign.
		if !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys[k.KeyID] = k
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks: %s: no public signing keys", s.url)
	}
	return keys, nil
}

// Run refreshes the set every interval until ctx ends (background
// rotation pickup).
func (s *Set) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.Refresh(ctx)
		}
	}
}

// Stats reports fetches made and the last error, for metrics and status.
func (s *Set) Stats() (fetches int64, fetchedAt time.Time, lastErr error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fetches, s.fetchedAt, s.lastErr
}
