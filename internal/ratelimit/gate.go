package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
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

// The Redis gate keeps one lease per request in flight: a sorted set per
// key, each member a request's lease id, scored by when the lease runs
// out. A lease whose holder is gone (an instance killed while it held
// slots, or a take that ran after its caller had given up on it) is
// dropped at its expiry by the next take, GateTTL after it was taken or
// last renewed; a request that holds its slot longer renews its lease
// (see Acquire).
// Times are Redis's own (TIME), so instances need not agree on the clock.

// acquireScript takes a slot: KEYS[1] the leases, ARGV[1] the limit,
// ARGV[2] the lease in ms, ARGV[3] the lease id. Expired leases go
// first; a refused take changes nothing, its key's expiry included.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// renewScript extends a lease still held (ARGV[1] ms from now, ARGV[2]
// the id) and the key's expiry with it.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
`)

// GateTTL is how long a lease lasts unless renewed: slots taken by an
// instance that died, or by a take whose answer was lost (a stall longer
// than the timeout: the take runs when Redis resumes), come back after
// at most this long. A request in flight renews its lease every
// GateTTL/3, so one lost renewal does not cost it its slot.
const GateTTL = 30 * time.Second

// Acquire implements Gate on Redis: one round trip to take a slot, one to
// give it back (sent even when the request's context has ended), and one
// per GateTTL/3 in between for a request that lasts that long.
//
// A take that fails (a timeout while Redis stalls) may still run once
// Redis answers again. Its lease is then never renewed, and runs out.
func (r *Redis) Acquire(ctx context.Context, key Key, max int) (func(), bool, error) {
	k := r.Prefix + "inflight:" + key.Text // a sorted set; "conc:" held the counter of earlier versions
	id := newLeaseID()
	actx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	ok, err := acquireScript.Run(actx, r.Client, []string{k}, max, r.gateTTL().Milliseconds(), id).Int()
	if err != nil {
		return func() {}, false, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if ok != 1 {
		return func() {}, false, nil
	}
	l := &lease{r: r, key: k, id: id}
	l.mu.Lock()
	l.timer = time.AfterFunc(r.gateTTL()/3, l.renew)
	l.mu.Unlock()
	return l.release, true, nil
}

// lease is a slot held in Redis, renewed until it is released.
type lease struct {
	r       *Redis
	key, id string

	mu    sync.Mutex // guards the following fields
	timer *time.Timer
	done  bool
}

// renew extends the lease by GateTTL from now and re-arms itself.
func (l *lease) renew() {
	ctx, cancel := context.WithTimeout(context.Background(), l.r.Timeout)
	defer cancel()
	_ = renewScript.Run(ctx, l.r.Client, []string{l.key}, l.r.gateTTL().Milliseconds(), l.id).Err() // lost: the next renewal tries again
	l.mu.Lock()
	if !l.done {
		l.timer.Reset(l.r.gateTTL() / 3)
	}
	l.mu.Unlock()
}

// release gives the slot back; later calls do nothing.
func (l *lease) release() {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return
	}
	l.done = true
	l.timer.Stop()
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), l.r.Timeout)
	defer cancel()
	_ = l.r.Client.ZRem(ctx, l.key, l.id).Err() // lost: the lease runs out by itself
}

// gateTTL is GateTTL, or the LeaseTTL a test sets.
func (r *Redis) gateTTL() time.Duration {
	if r.LeaseTTL > 0 {
		return r.LeaseTTL
	}
	return GateTTL
}

// leasePrefix and leaseSeq make lease ids: a random prefix that tells
// processes apart, then the process's count of leases.
var (
	leasePrefix = func() string {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:]) + ":"
	}()
	leaseSeq atomic.Uint64
)

func newLeaseID() string {
	return leasePrefix + strconv.FormatUint(leaseSeq.Add(1), 36)
}
