package session

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Memory is a Store in one process's memory, for a single instance or for
// tests. Its clock is injected.
//
// It is bounded: saving a new key while max records are held first drops
// every expired record, then, if still full, the record that expires
// soonest (the one with the least life left, hence the cheapest to lose:
// its user logs in again). Records sit in a min-heap by expiry, so both
// steps cost O(log n) per dropped record. Replacing an existing key never
// evicts.
//
// Locks live in their own map on the same clock; an expired lock is
// replaced when taken again, and expired ones are swept when the lock map
// reaches max. A lock's token is a per-store sequence number, unique for
// the store's lifetime, which is all the compare needs in one process.
type Memory struct {
	max int
	now func() time.Time

	mu      sync.Mutex // guards the following fields
	records map[string]*record
	byExp   expiryHeap // the same records, soonest expiry first
	locks   map[string]memLock
	seq     uint64 // last lock token handed out
	subs    map[*memSub]struct{}
}

type record struct {
	key string
	val []byte
	exp time.Time
	idx int // position in byExp
}

type memLock struct {
	token uint64
	exp   time.Time
}

// memSub is one running Subscribe: Publish queues keys on ch, and the
// subscriber's own goroutine calls fn, so a slow fn never runs under mu.
type memSub struct {
	ch   chan string
	done chan struct{} // closed when Subscribe returns
}

// subBuffer is how many ended keys may wait for a subscriber before
// Publish blocks (until its ctx ends).
const subBuffer = 64

var _ Store = (*Memory)(nil)

// NewMemory returns an empty store holding at most max records (max <= 0:
// unbounded). now is its clock; nil means time.Now.
func NewMemory(max int, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{
		max:     max,
		now:     now,
		records: make(map[string]*record),
		locks:   make(map[string]memLock),
		subs:    make(map[*memSub]struct{}),
	}
}

// expired reports whether exp has passed at t: a record saved at t0 with
// ttl lives during [t0, t0+ttl).
func expired(exp, t time.Time) bool { return !t.Before(exp) }

// Len returns the number of records held, including expired ones not yet
// dropped (for tests and metrics).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}

// Load implements Store.
func (m *Memory) Load(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[key]
	if !ok {
		return nil, ErrNotFound
	}
	if expired(r.exp, m.now()) {
		m.remove(r)
		return nil, ErrNotFound
	}
	return slices.Clone(r.val), nil
}

// Save implements Store.
func (m *Memory) Save(_ context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("session: memory save: %w", errBadTTL)
	}
	val = append(make([]byte, 0, len(val)), val...) // never alias the caller's slice
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	exp := now.Add(ttl)
	if r, ok := m.records[key]; ok {
		r.val, r.exp = val, exp
		heap.Fix(&m.byExp, r.idx)
		return nil
	}
	if m.max > 0 && len(m.records) >= m.max {
		m.evict(now)
	}
	r := &record{key: key, val: val, exp: exp}
	m.records[key] = r
	heap.Push(&m.byExp, r)
	return nil
}

// evict makes room for one record: every expired record goes, then, if
// the store is still full, the one that expires soonest.
func (m *Memory) evict(now time.Time) {
	for len(m.byExp) > 0 && expired(m.byExp[0].exp, now) {
		m.remove(m.byExp[0])
	}
	if len(m.records) >= m.max && len(m.byExp) > 0 {
		m.remove(m.byExp[0])
	}
}

// remove drops r from both indexes. m.mu must be held.
func (m *Memory) remove(r *record) {
	heap.Remove(&m.byExp, r.idx)
	delete(m.records, r.key)
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.records[key]; ok {
		m.remove(r)
	}
	return nil
}

// Lock implements Store.
func (m *Memory) Lock(_ context.Context, key string, ttl time.Duration) (unlock func(), ok bool, err error) {
	if ttl <= 0 {
		return noUnlock, false, fmt.Errorf("session: memory lock: %w", errBadTTL)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if l, held := m.locks[key]; held && !expired(l.exp, now) {
		return noUnlock, false, nil
	}
	if m.max > 0 && len(m.locks) >= m.max {
		for k, l := range m.locks {
			if expired(l.exp, now) {
				delete(m.locks, k)
			}
		}
	}
	m.seq++
	token := m.seq
	m.locks[key] = memLock{token: token, exp: now.Add(ttl)}
	var once sync.Once
	return func() { once.Do(func() { m.unlock(key, token) }) }, true, nil
}

// unlock deletes the lock named key if token still holds it.
func (m *Memory) unlock(key string, token uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.locks[key]; ok && l.token == token {
		delete(m.locks, key)
	}
}

// Publish implements Store. It queues key for every running Subscribe and
// blocks while a subscriber's queue is full, until ctx ends: an ended
// session is never dropped silently.
func (m *Memory) Publish(ctx context.Context, key string) error {
	m.mu.Lock()
	subs := make([]*memSub, 0, len(m.subs))
	for s := range m.subs {
		subs = append(subs, s)
	}
	m.mu.Unlock()
	for _, s := range subs {
		select {
		case s.ch <- key: // room in the queue: never fail for a done ctx
			continue
		default:
		}
		select {
		case s.ch <- key:
		case <-s.done: // it returned meanwhile
		case <-ctx.Done():
			return fmt.Errorf("session: memory publish: %w", ctx.Err())
		}
	}
	return nil
}

// Subscribe implements Store. fn runs on the caller's goroutine, one key at
// a time; Subscribe returns nil once ctx ends.
func (m *Memory) Subscribe(ctx context.Context, fn func(key string)) error {
	s := &memSub{ch: make(chan string, subBuffer), done: make(chan struct{})}
	m.mu.Lock()
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.subs, s)
		m.mu.Unlock()
		close(s.done)
	}()
	for {
		select {
		case key := <-s.ch:
			fn(key)
		case <-ctx.Done():
			return nil
		}
	}
}

// subscribers returns the number of running Subscribe calls (for tests).
func (m *Memory) subscribers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.subs)
}

// expiryHeap orders records by expiry, soonest first (container/heap).
type expiryHeap []*record

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h *expiryHeap) Push(x any) {
	r := x.(*record)
	r.idx = len(*h)
	*h = append(*h, r)
}

func (h *expiryHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}
