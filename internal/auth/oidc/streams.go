package oidc

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"gatehouse/internal/auth/session"
)

// Shared is the login state that outlives a config snapshot: the session
// store, the in-process refresh single-flight and the requests each session
// has open. It is a Registry service; Run listens for sessions ended by
// any instance (logout, a refused refresh) and ends their streams here.
type Shared struct {
	Store  session.Store
	Events *slog.Logger

	refresh singleflight.Group // by store key: one refresh per session in this process
	streams streams
}

// NewShared returns the shared state over store.
func NewShared(store session.Store, events *slog.Logger) *Shared {
	if events == nil {
		events = slog.New(slog.DiscardHandler)
	}
	return &Shared{Store: store, Events: events, streams: streams{m: map[string]map[*stream]struct{}{}}}
}

// RecheckEvery is how often the sessions of open streams are looked up
// again, so a stream outlives its session by at most this long even when
// the "session ended" broadcast was missed (an instance disconnected from
// Redis at that moment).
const RecheckEvery = 30 * time.Second

// Run ends local streams of sessions that any instance ends, until ctx
// ends, then closes the store. A lost subscription (Redis down) is retried
// with backoff; meanwhile, and always, the sessions of open streams are
// checked every RecheckEvery.
func (s *Shared) Run(ctx context.Context) {
	// The registry ends Run when no snapshot uses this store any more:
	// its connections go with it.
	defer func() {
		if c, ok := s.Store.(interface{ Close() error }); ok {
			_ = c.Close()
		}
	}()
	done := make(chan struct{})
	defer func() { <-done }()
	go func() {
		defer close(done)
		s.recheck(ctx, RecheckEvery)
	}()
	s.subscribe(ctx)
}

// recheck ends the streams of sessions no longer in the store, every
// interval until ctx ends.
func (s *Shared) recheck(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.recheckOnce(ctx)
	}
}

func (s *Shared) recheckOnce(ctx context.Context) {
	for _, key := range s.streams.keys() {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.Store.Load(lctx, key)
		cancel()
		if errors.Is(err, session.ErrNotFound) {
			s.streams.end(key)
		}
	}
}

func (s *Shared) subscribe(ctx context.Context) {
	backoff := time.Second
	for {
		err := s.Store.Subscribe(ctx, s.streams.end)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.Events.Warn("session events: subscription lost; retrying", "err", err, "in", backoff.String())
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// OpenRequests is the number of requests registered under sessions.
func (s *Shared) OpenRequests() int { return s.streams.len() }

// streams tracks the requests (and so the WebSockets and event streams)
// each session has open, to cut them when the session ends.
type streams struct {
	mu sync.Mutex // guards m
	m  map[string]map[*stream]struct{}
}

type stream struct{ cancel func() }

// add registers cancel under key until the returned func is called.
func (s *streams) add(key string, cancel func()) func() {
	e := &stream{cancel: cancel}
	s.mu.Lock()
	set := s.m[key]
	if set == nil {
		set = map[*stream]struct{}{}
		s.m[key] = set
	}
	set[e] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(set, e)
		if cur := s.m[key]; len(cur) == 0 && cur != nil {
			delete(s.m, key)
		}
	}
}

// end cancels every request open under key.
func (s *streams) end(key string) {
	s.mu.Lock()
	var cancels []func()
	for e := range s.m[key] {
		cancels = append(cancels, e.cancel)
	}
	delete(s.m, key)
	s.mu.Unlock()
	for _, c := range cancels {
		c()
	}
}

func (s *streams) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for k := range s.m {
		out = append(out, k)
	}
	return out
}

func (s *streams) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, set := range s.m {
		n += len(set)
	}
	return n
}
