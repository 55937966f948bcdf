package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Gate limits in-flight requests per key (a concurrency limit): a request
// takes a slot when it starts and gives it back when it ends, however it
// ends.
type Gate interface {
	// Acquire takes one of max slots of key. When ok, release must be
	// called exactly once (later calls do nothing).
	Acquire(ctx context.Context, key Key, max int) (release func(), ok bool, err error)
}

// MemoryGate counts in-flight requests per key in this process. It needs
// no bound: an entry exists only while a request holds it, so there are
// never more entries than requests in flight.
type MemoryGate struct {
	shards [64]gateShard
}

type gateShard struct {
	mu sync.Mutex // guards n
	n  map[uint64]int
}

// NewMemoryGate returns an empty gate.
func NewMemoryGate() *MemoryGate {
	g := &MemoryGate{}
	for i := range g.shards {
		g.shards[i].n = map[uint64]int{}
	}
	return g
}

// Acquire implements Gate.
func (g *MemoryGate) Acquire(_ context.Context, key Key, max int) (func(), bool, error) {
	s := &g.shards[key.Hash%uint64(len(g.shards))]
	s.mu.Lock()
	if s.n[key.Hash] >= max {
		s.mu.Unlock()
		return func() {}, false, nil
	}
	s.n[key.Hash]++
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.n[key.Hash]--; s.n[key.Hash] <= 0 {
				delete(s.n, key.Hash)
			}
		})
	}, true, nil
}

// InFlight is the number held under key, for tests and the status page.
func (g *MemoryGate) InFlight(key Key) int {
	s := &g.shards[key.Hash%uint64(len(g.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[key.Hash]
}

// acquireScript takes a slot: INCR, refused (and undone) past the limit.
// The counter expires ARGV[2] ms after the last take, so slots held by an
// instance that died are given back eventually (see GateTTL).
var acquireScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1
`)

// releaseScript gives a slot back; the key goes when no slot is held.
var releaseScript = redis.NewScript(`
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
`)

// GateTTL bounds how long the Redis counter of a key outlives its last
// acquisition: slots taken by an instance that died without releasing
// them come back after at most this long.
const GateTTL = 10 * time.Minute

// Acquire implements Gate on Redis: one round trip to take a slot, one to
// give it back (sent even when the request's context has ended).
func (r *Redis) Acquire(ctx context.Context, key Key, max int) (func(), bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	k := r.Prefix + "conc:" + key.Text
	ok, err := acquireScript.Run(ctx, r.Client, []string{k}, max, GateTTL.Milliseconds()).Int()
	if err != nil {
		return func() {}, false, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if ok != 1 {
		return func() {}, false, nil
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
			defer cancel()
			_ = releaseScript.Run(ctx, r.Client, []string{k}).Err() // lost: the TTL gives it back
		})
	}, true, nil
}
