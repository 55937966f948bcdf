package session

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"gatehouse/internal/testutil"
)

func newFakeClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

func TestMemoryConformance(t *testing.T) {
	testutil.CheckGoroutines(t)
	clock := newFakeClock()
	RunStoreTests(t, Harness{
		New:     func(*testing.T) Store { return NewMemory(1000, clock.Now) },
		Advance: clock.Advance,
	})
}

func TestMemoryBound(t *testing.T) {
	t.Parallel()
	type save struct {
		key string
		ttl time.Duration
	}
	for _, tc := range []struct {
		name    string
		initial []save        // saved in order, at max=3
		advance time.Duration // before the last save
		last    save
		want    []string // keys left, in any order
	}{
		{
			name:    "evicts the soonest to expire",
			initial: []save{{"a", 3 * time.Minute}, {"b", time.Minute}, {"c", 2 * time.Minute}},
			last:    save{"d", 4 * time.Minute},
			want:    []string{"a", "c", "d"},
		},
		{
			name:    "evicts the soonest even if the new one expires sooner",
			initial: []save{{"a", 3 * time.Minute}, {"b", 2 * time.Minute}, {"c", 4 * time.Minute}},
			last:    save{"d", time.Minute},
			want:    []string{"a", "c", "d"},
		},
		{
			name:    "drops every expired one first, then nothing else",
			initial: []save{{"a", 10 * time.Second}, {"b", 5 * time.Minute}, {"c", 20 * time.Second}},
			advance: 30 * time.Second,
			last:    save{"d", time.Minute},
			want:    []string{"b", "d"},
		},
		{
			name:    "replacing a held key evicts nothing",
			initial: []save{{"a", 3 * time.Minute}, {"b", time.Minute}, {"c", 2 * time.Minute}},
			last:    save{"b", time.Second},
			want:    []string{"a", "b", "c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			clock := newFakeClock()
			m := NewMemory(3, clock.Now)
			for _, s := range tc.initial {
				if err := m.Save(ctx, s.key, []byte(s.key), s.ttl); err != nil {
					t.Fatal(err)
				}
			}
			clock.Advance(tc.advance)
			if err := m.Save(ctx, tc.last.key, []byte(tc.last.key), tc.last.ttl); err != nil {
				t.Fatal(err)
			}
			if got := m.Len(); got != len(tc.want) {
				t.Errorf("Len = %d, want %d", got, len(tc.want))
			}
			for _, k := range tc.want {
				if v, err := m.Load(ctx, k); err != nil || string(v) != k {
					t.Errorf("Load(%s) = %q, %v; want it kept", k, v, err)
				}
			}
		})
	}
}

func TestMemoryUnbounded(t *testing.T) {
	t.Parallel()
	m := NewMemory(0, newFakeClock().Now)
	for i := range 100 {
		if err := m.Save(t.Context(), fmt.Sprint(i), nil, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Len(); got != 100 {
		t.Fatalf("Len = %d, want 100 (max <= 0 is unbounded)", got)
	}
}

func TestMemoryLoadDropsExpired(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := NewMemory(10, clock.Now)
	ctx := t.Context()
	if err := m.Save(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if got := m.Len(); got != 1 {
		t.Fatalf("before Load, Len = %d, want 1 (expired entries go lazily)", got)
	}
	if _, err := m.Load(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load err = %v, want ErrNotFound", err)
	}
	if got := m.Len(); got != 0 {
		t.Fatalf("after Load, Len = %d, want 0", got)
	}
}

func TestMemoryBadTTL(t *testing.T) {
	t.Parallel()
	m := NewMemory(10, nil)
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := m.Save(t.Context(), "k", nil, ttl); err == nil {
			t.Errorf("Save with ttl %v: no error", ttl)
		}
		unlock, ok, err := m.Lock(t.Context(), "k", ttl)
		if err == nil || ok {
			t.Errorf("Lock with ttl %v = ok %v, err %v; want an error", ttl, ok, err)
		}
		unlock() // still safe to call
	}
}

func TestMemorySubscribeUnregisters(t *testing.T) {
	testutil.CheckGoroutines(t)
	m := NewMemory(10, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Subscribe(ctx, func(string) {}) }()
	if !testutil.WaitFor(5*time.Second, func() bool { return m.subscribers() == 1 }) {
		t.Fatal("Subscribe never registered")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Subscribe = %v, want nil", err)
	}
	if got := m.subscribers(); got != 0 {
		t.Fatalf("after Subscribe returned, %d subscribers, want 0", got)
	}
	// Publishing with nobody listening neither blocks nor fails.
	if err := m.Publish(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryPublishBlockedByStuckSubscriberEndsWithCtx(t *testing.T) {
	testutil.CheckGoroutines(t)
	m := NewMemory(10, nil)
	subCtx, stopSub := context.WithCancel(t.Context())
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- m.Subscribe(subCtx, func(string) { <-release }) }()
	defer func() { close(release); stopSub(); <-done }()
	if !testutil.WaitFor(5*time.Second, func() bool { return m.subscribers() == 1 }) {
		t.Fatal("Subscribe never registered")
	}
	// One key is taken by the stuck fn, subBuffer more fill the queue.
	for i := range subBuffer + 1 {
		if err := m.Publish(t.Context(), fmt.Sprint(i)); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Publish(ctx, "overflow"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish to a full queue with a done ctx = %v, want context.Canceled", err)
	}
}
