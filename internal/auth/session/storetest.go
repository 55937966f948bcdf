package session

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Harness tells RunStoreTests how to make and age the stores under test.
type Harness struct {
	// New returns an empty store (for Redis: a fresh key prefix).
	New func(t *testing.T) Store
	// Advance moves the store's clock forward by d. Nil for stores on a real
	// clock (Redis): the suite then waits, polling with a deadline, for expiry
	// to happen instead (use TTLs of ~100ms there), never a bare sleep.
	Advance func(d time.Duration)
}

const (
	shortTTL    = 100 * time.Millisecond // expires within a test
	longTTL     = time.Hour              // never expires within a test
	waitTimeout = 5 * time.Second        // bound on every poll
	pollEvery   = 10 * time.Millisecond
)

// RunStoreTests is the conformance suite every Store passes. Subtests run
// one after another (Advance moves a clock the stores may share).
func RunStoreTests(t *testing.T, h Harness) {
	ctx := t.Context()
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("RoundTripCopies", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			val  []byte
		}{
			{"binary", []byte{0, 1, 0xfe, 0xff, '\n', 0}},
			{"empty", []byte{}},
			{"large", bytes.Repeat([]byte("0123456789abcdef"), 4096)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := h.New(t)
				in := bytes.Clone(tc.val)
				must(t, s.Save(ctx, "k", in, longTTL))
				if len(in) > 0 {
					in[0]++ // the store kept its own copy
				}
				got := load(t, s, "k")
				if !bytes.Equal(got, tc.val) {
					t.Fatalf("Load = %q, want %q", got, tc.val)
				}
				if len(got) > 0 {
					got[0]++ // and hands out a fresh one
				}
				if got := load(t, s, "k"); !bytes.Equal(got, tc.val) {
					t.Fatalf("after mutating a loaded slice, Load = %q, want %q", got, tc.val)
				}
			})
		}
	})

	t.Run("MissingIsNotFound", func(t *testing.T) {
		s := h.New(t)
		if _, err := s.Load(ctx, "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load(missing) err = %v, want ErrNotFound", err)
		}
	})

	t.Run("SaveReplacesValueAndTTL", func(t *testing.T) {
		s := h.New(t)
		must(t, s.Save(ctx, "longer", []byte("v1"), shortTTL))
		must(t, s.Save(ctx, "longer", []byte("v2"), longTTL))
		must(t, s.Save(ctx, "shorter", []byte("v1"), longTTL))
		must(t, s.Save(ctx, "shorter", []byte("v2"), shortTTL))
		if got := load(t, s, "longer"); string(got) != "v2" {
			t.Fatalf("Load = %q, want the replacement v2", got)
		}
		pass(t, h, s, shortTTL)
		if got := load(t, s, "longer"); string(got) != "v2" {
			t.Fatalf("after the first TTL passed, Load = %q, want v2 (the new TTL)", got)
		}
		if _, err := s.Load(ctx, "shorter"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after the new, shorter TTL passed, Load err = %v, want ErrNotFound", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := h.New(t)
		must(t, s.Save(ctx, "k", []byte("v"), longTTL))
		must(t, s.Delete(ctx, "k"))
		if _, err := s.Load(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load after Delete err = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "k"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		s := h.New(t)
		must(t, s.Save(ctx, "k", []byte("v"), shortTTL))
		if h.Advance != nil {
			h.Advance(shortTTL - time.Millisecond)
			if got := load(t, s, "k"); string(got) != "v" {
				t.Fatalf("just before the TTL, Load = %q, want v", got)
			}
		}
		pass(t, h, s, shortTTL)
		if _, err := s.Load(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after the TTL, Load err = %v, want ErrNotFound", err)
		}
	})

	t.Run("LockExclusive", func(t *testing.T) {
		s := h.New(t)
		unlock := lock(t, s, "k", longTTL, true)
		lock(t, s, "k", longTTL, false)
		unlock()
		unlock() // a second call is harmless
		lock(t, s, "k", longTTL, true)()
	})

	t.Run("LockIsNotARecord", func(t *testing.T) {
		s := h.New(t)
		must(t, s.Save(ctx, "k", []byte("v"), longTTL))
		unlock := lock(t, s, "k", longTTL, true)
		defer unlock()
		if got := load(t, s, "k"); string(got) != "v" {
			t.Fatalf("with the lock k taken, Load(k) = %q, want v", got)
		}
		must(t, s.Delete(ctx, "k"))
		lock(t, s, "k", longTTL, false)
	})

	t.Run("LockExpiryAndLateUnlock", func(t *testing.T) {
		s := h.New(t)
		first := lock(t, s, "k", shortTTL, true)
		pass(t, h, s, shortTTL)
		second := lock(t, s, "k", longTTL, true)
		first() // late: must not release the second holder's lock
		lock(t, s, "k", longTTL, false)
		second()
		lock(t, s, "k", longTTL, true)()
	})

	t.Run("LockConcurrent", func(t *testing.T) {
		s := h.New(t)
		var wg sync.WaitGroup
		var won, failed atomic.Int32
		for range 20 {
			wg.Go(func() {
				_, ok, err := s.Lock(ctx, "k", longTTL)
				switch {
				case err != nil:
					failed.Add(1)
				case ok:
					won.Add(1)
				}
			})
		}
		wg.Wait()
		if won.Load() != 1 || failed.Load() != 0 {
			t.Fatalf("20 concurrent Locks: %d took it, %d failed; want exactly 1 and 0", won.Load(), failed.Load())
		}
	})

	t.Run("PublishReachesEverySubscriber", func(t *testing.T) {
		s := h.New(t)
		a, b := subscribe(t, s), subscribe(t, s)
		publishUntil(t, s, "ended-1", a)
		publishUntil(t, s, "ended-1", b)
	})

	t.Run("PrefixIsolation", func(t *testing.T) {
		s1, s2 := h.New(t), h.New(t)
		must(t, s1.Save(ctx, "k", []byte("one"), longTTL))
		if _, err := s2.Load(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load from the other store err = %v, want ErrNotFound", err)
		}
		must(t, s2.Save(ctx, "k", []byte("two"), longTTL))
		must(t, s2.Delete(ctx, "k"))
		if got := load(t, s1, "k"); string(got) != "one" {
			t.Fatalf("after the other store saved and deleted k, Load = %q, want one", got)
		}
		defer lock(t, s1, "k", longTTL, true)()
		defer lock(t, s2, "k", longTTL, true)()

		// Redis delivers in order per connection, so once sub2 sees
		// "after", anything s1 published before it has had its chance.
		sub1, sub2 := subscribe(t, s1), subscribe(t, s2)
		publishUntil(t, s2, "before", sub2)
		publishUntil(t, s1, "only-1", sub1)
		publishUntil(t, s2, "after", sub2)
		if sub2.saw("only-1") {
			t.Fatal("a key published on one store reached the other store's subscriber")
		}
	})
}

// load returns the value under key, failing the test on any error.
func load(t *testing.T, s Store, key string) []byte {
	t.Helper()
	v, err := s.Load(t.Context(), key)
	if err != nil {
		t.Fatalf("Load(%s): %v", key, err)
	}
	return v
}

// lock takes the lock named key and checks ok against want. Its unlock is
// safe to call either way.
func lock(t *testing.T, s Store, key string, ttl time.Duration, want bool) func() {
	t.Helper()
	unlock, ok, err := s.Lock(t.Context(), key, ttl)
	if err != nil {
		t.Fatalf("Lock(%s): %v", key, err)
	}
	if ok != want {
		t.Fatalf("Lock(%s) ok = %v, want %v", key, ok, want)
	}
	return unlock
}

// pass makes at least d go by on s's clock: Advance when the harness has
// one; otherwise a witness record saved now with TTL d is polled until it
// has expired, so everything saved before it with TTL <= d has too.
func pass(t *testing.T, h Harness, s Store, d time.Duration) {
	t.Helper()
	if h.Advance != nil {
		h.Advance(d)
		return
	}
	const witness = "storetest-witness"
	if err := s.Save(t.Context(), witness, []byte{1}, d); err != nil {
		t.Fatal(err)
	}
	gone := poll(t, d+waitTimeout, func() bool {
		_, err := s.Load(t.Context(), witness)
		return errors.Is(err, ErrNotFound)
	})
	if !gone {
		t.Fatalf("a record with TTL %v still there after %v", d, d+waitTimeout)
	}
}

// poll checks cond every pollEvery until it holds or timeout passes.
func poll(t *testing.T, timeout time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// subscriber records the keys one Subscribe call has received.
type subscriber struct {
	mu   sync.Mutex // guards the following fields
	keys map[string]bool
}

func (s *subscriber) saw(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

// subscribe runs s.Subscribe in a goroutine until the test ends, then
// checks that it returned nil promptly.
func subscribe(t *testing.T, s Store) *subscriber {
	t.Helper()
	sub := &subscriber{keys: make(map[string]bool)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.Subscribe(ctx, func(key string) {
			sub.mu.Lock()
			sub.keys[key] = true
			sub.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Subscribe returned %v after its ctx ended, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Subscribe did not return within %v of its ctx ending", waitTimeout)
		}
	})
	return sub
}

// publishUntil publishes key on s until sub has received it. A subscriber
// may not be active yet when Subscribe is called, so one Publish is not
// enough to prove anything; repeating it bounds the wait at waitTimeout.
func publishUntil(t *testing.T, s Store, key string, sub *subscriber) {
	t.Helper()
	var pubErr error
	ok := poll(t, waitTimeout, func() bool {
		if sub.saw(key) {
			return true
		}
		if err := s.Publish(t.Context(), key); err != nil {
			pubErr = err
		}
		return sub.saw(key)
	})
	if !ok {
		t.Fatalf("subscriber did not receive %q within %v (last Publish error: %v)", key, waitTimeout, pubErr)
	}
}
