package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"gatehouse/internal/auth/session"
	"gatehouse/internal/phase"
)

// Record is a session as stored, encrypted, in the session.Store.
type Record struct {
	Subject      string    `json:"sub"`
	Name         string    `json:"name,omitempty"` // for pages: the ID token's preferred_username or name (displayName)
	AccessToken  string    `json:"at"`
	RefreshToken string    `json:"rt,omitempty"`
	IDToken      string    `json:"idt,omitempty"` // for logout's id_token_hint
	Expiry       time.Time `json:"exp,omitzero"`  // the access token's; zero: not given
	Obtained     time.Time `json:"obt"`           // when the access token was issued to us
	Created      time.Time `json:"iat"`
	// Until is the session's absolute end: login + max_lifetime, or the
	// refresh token's end when the issuer says (refresh_expires_in).
	Until   time.Time `json:"until"`
	Version int       `json:"ver"` // bumped by every refresh
}

func (s *Record) setToken(tok *oauth2.Token, now time.Time) {
	s.AccessToken = tok.AccessToken
	if tok.RefreshToken != "" {
		s.RefreshToken = tok.RefreshToken // rotated
	}
	if idt, _ := tok.Extra("id_token").(string); idt != "" {
		s.IDToken = idt
	}
	// Expiry from expires_in on our clock (x/oauth2's Expiry uses the
	// wall clock); a token response without expires_in has no expiry.
	s.Expiry, s.Obtained = time.Time{}, now
	if tok.ExpiresIn > 0 {
		s.Expiry = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	} else if !tok.Expiry.IsZero() {
		s.Expiry = tok.Expiry
	}
	if rexp, ok := tok.Extra("refresh_expires_in").(float64); ok && rexp > 0 {
		if end := now.Add(time.Duration(rexp) * time.Second); end.Before(s.Until) {
			s.Until = end
		}
	}
	s.Version++
}

// Active is the live session of a request.
type Active struct {
	Key    string // store key
	Record *Record
}

// ErrUnavailable: the session could not be read or its token refreshed,
// for a reason that may pass (store or issuer down). Only this request
// fails; the session stays.
var ErrUnavailable = errors.New("login: sessions unavailable")

// errEnded: the session ended while we looked (logout, refused refresh).
var errEnded = errors.New("login: session ended")

func (l *Login) cookieID(r *http.Request) (string, error) {
	c, err := r.Cookie(l.cookie)
	if err != nil {
		return "", err
	}
	return l.keys.sessionID(c.Value)
}

// Session returns the request's live session, its access token refreshed
// when due, or nil when it has none (no cookie, a forged one, an ended or
// expired session). err is ErrUnavailable-wrapped when the answer cannot
// be known now.
func (l *Login) Session(rc *phase.RequestCtx, r *http.Request) (*Active, error) {
	id, err := l.cookieID(r)
	if err != nil {
		return nil, nil
	}
	key := storeKey(id)
	rec, err := l.load(r.Context(), key)
	if errors.Is(err, session.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	now := l.cfg.Now()
	if !now.Before(rec.Until) {
		l.end(r.Context(), key)
		return nil, nil
	}
	if l.needsRefresh(rec, now) {
		fresh, err := l.refresh(r.Context(), key, rec)
		switch {
		case errors.Is(err, errEnded):
			return nil, nil
		case err != nil && (rec.Expiry.IsZero() || now.Before(rec.Expiry)):
			// The token still works: serve with it, and try again on a
			// later request.
			l.cfg.Events.Warn("session refresh failed; using the current token", "request_id", rc.RequestID, "err", err)
		case err != nil:
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		default:
			rec = fresh
		}
	}
	return &Active{Key: key, Record: rec}, nil
}

// Track ties a request to its session: when the session ends (logout,
// refused refresh, max lifetime) the request's context is cancelled, which
// closes a WebSocket or event stream it holds open. It needs rc.Cancel.
func (l *Login) Track(rc *phase.RequestCtx, a *Active) {
	if rc.Cancel == nil {
		return
	}
	remove := l.sh.streams.add(a.Key, rc.Cancel)
	t := time.AfterFunc(a.Record.Until.Sub(l.cfg.Now()), rc.Cancel)
	rc.OnEnd(func() {
		t.Stop()
		remove()
	})
}

// needsRefresh: the access token is within the refresh margin of its
// expiry. The margin is at most half the token's lifetime, so a short-lived
// token is not refreshed on every request.
func (l *Login) needsRefresh(rec *Record, now time.Time) bool {
	if rec.Expiry.IsZero() {
		return false
	}
	margin := min(l.cfg.RefreshMargin, rec.Expiry.Sub(rec.Obtained)/2)
	return !now.Before(rec.Expiry.Add(-margin))
}

const (
	lockTTL  = 15 * time.Second // longest a refresh may hold its session's lock
	lockPoll = 50 * time.Millisecond
)

// refresh renews a session's access token: once per session in this
// process (single-flight), once per session across instances (a store lock
// with a timeout). A caller that waited on another's refresh takes its
// result. The rotated refresh token is saved with the new access token in
// one write.
func (l *Login) refresh(ctx context.Context, key string, stale *Record) (*Record, error) {
	v, err, _ := l.sh.refresh.Do(key, func() (any, error) {
		// Not the first caller's context: its client leaving must not
		// fail the others waiting on the same refresh.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockTTL)
		defer cancel()
		return l.refreshLocked(ctx, key, stale)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Record), nil
}

func (l *Login) refreshLocked(ctx context.Context, key string, stale *Record) (*Record, error) {
	for {
		unlock, ok, err := l.sh.Store.Lock(ctx, key, lockTTL) // locks are a namespace of their own
		if err != nil {
			return nil, err
		}
		if ok {
			defer unlock()
			break
		}
		// Another instance is refreshing: wait for its result.
		cur, err := l.loadLive(ctx, key)
		switch {
		case err != nil:
			return nil, err
		case cur.Version != stale.Version:
			return cur, nil
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("refresh: waiting for another instance: %w", ctx.Err())
		case <-t.C:
		}
	}
	cur, err := l.loadLive(ctx, key)
	if err != nil {
		return nil, err
	}
	now := l.cfg.Now()
	if cur.Version != stale.Version || !l.needsRefresh(cur, now) {
		return cur, nil
	}
	if cur.RefreshToken == "" {
		if now.Before(cur.Expiry) {
			return cur, nil
		}
		l.end(ctx, key)
		return nil, errEnded
	}
	md, err := l.metadata(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := l.oauth2Config(md).TokenSource(l.clientCtx(ctx), &oauth2.Token{RefreshToken: cur.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			// Refused for good (expired, revoked, or reused elsewhere):
			// the session ends everywhere.
			l.cfg.Events.Info("session ended: refresh refused", "subject", cur.Subject, "error", re.ErrorCode)
			l.end(ctx, key)
			return nil, errEnded
		}
		return nil, fmt.Errorf("refresh: %w", err)
	}
	next := *cur // records are shared once decoded: change a copy
	next.setToken(tok, now)
	cur = &next
	if err := l.save(ctx, key, cur); err != nil {
		return nil, err
	}
	return cur, nil
}

// end removes a session and tells every instance to close its streams.
// It reports whether the store let go of the record: when the delete
// failed, the session may still be good wherever its cookie is.
func (l *Login) end(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	derr := l.sh.Store.Delete(ctx, key)
	if derr != nil {
		l.cfg.Events.Warn("session end: delete failed", "err", derr)
	}
	l.sh.streams.end(key)
	if err := l.sh.Store.Publish(ctx, key); err != nil {
		l.cfg.Events.Warn("session end: publish failed", "err", err)
	}
	return derr
}

func (l *Login) save(ctx context.Context, key string, rec *Record) error {
	ttl := rec.Until.Sub(l.cfg.Now())
	if ttl <= 0 {
		return l.sh.Store.Delete(ctx, key)
	}
	plain, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return l.sh.Store.Save(ctx, key, []byte(seal(l.keys.store, plain, key)), ttl)
}

// loadLive is load for a session being refreshed: a missing record means
// the session ended meanwhile.
func (l *Login) loadLive(ctx context.Context, key string) (*Record, error) {
	rec, err := l.load(ctx, key)
	if errors.Is(err, session.ErrNotFound) {
		return nil, errEnded
	}
	return rec, err
}

// load reads a session record. The store stays the source of truth (one
// lookup per request), but decrypting and decoding are skipped when the
// stored bytes are those decoded last time for this key: records are
// immutable once decoded (a refresh saves a new one).
func (l *Login) load(ctx context.Context, key string) (*Record, error) {
	b, err := l.sh.Store.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	if rec := l.decoded.get(key, b); rec != nil {
		return rec, nil
	}
	plain, err := open(l.keys.store, string(b), key)
	if err != nil {
		// Another cookie secret wrote it (a rotated secret): unusable.
		return nil, session.ErrNotFound
	}
	rec := &Record{}
	if err := json.Unmarshal(plain, rec); err != nil {
		return nil, session.ErrNotFound
	}
	l.decoded.put(key, b, rec)
	return rec, nil
}

// decodedCache remembers, per store key, a 128-bit fingerprint of the
// last stored bytes decoded (keyed maphash; only Gatehouse writes the
// store) and their record. It belongs to one Login (one cookie secret),
// and is bounded: when full, an arbitrary entry makes room.
type decodedCache struct {
	seeds [2]maphash.Seed

	mu sync.Mutex // guards m
	m  map[string]decodedEntry
}

type decodedEntry struct {
	sum [2]uint64
	rec *Record
}

const maxDecoded = 10000

func newDecodedCache() *decodedCache {
	return &decodedCache{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, m: map[string]decodedEntry{}}
}

func (c *decodedCache) sum(b []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(c.seeds[0], b), maphash.Bytes(c.seeds[1], b)}
}

func (c *decodedCache) get(key string, sealed []byte) *Record {
	sum := c.sum(sealed)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok && e.sum == sum {
		return e.rec
	}
	return nil
}

func (c *decodedCache) put(key string, sealed []byte, rec *Record) {
	sum := c.sum(sealed)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxDecoded {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = decodedEntry{sum: sum, rec: rec}
}
