package ratelimit

import (
	"context"
	"sync"
	"time"
)

const shards = 64

// Memory is an in-memory Limiter: keys spread over 64 shards, each with
// its own lock. It holds at most MaxKeys keys. When a shard is full it
// first forgets keys that have fully recovered (their TAT has passed),
// which changes no decision; if every key in it is still limited, the new
// key shares one overflow bucket with all other untracked keys, so a flood
// of new keys can neither exhaust memory nor reset a limited client.
type Memory struct {
	perShard int
	shards   [shards]shard
}

type shard struct {
	mu       sync.Mutex // guards the following fields
	tat      map[uint64]int64
	overflow int64 // TAT of the shared overflow bucket
}

// NewMemory returns a store of at most maxKeys keys.
func NewMemory(maxKeys int) *Memory {
	m := &Memory{perShard: max(maxKeys/shards, 1)}
	for i := range m.shards {
		m.shards[i].tat = make(map[uint64]int64)
	}
	return m
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, k Key, l Limit, now time.Time) (Result, error) {
	key := k.Hash
	s := &m.shards[key%shards]
	n := now.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tat[key]
	if !ok && len(s.tat) >= m.perShard && !s.evict(n) {
		res, next := gcra(s.overflow, l, n)
		s.overflow = next
		return res, nil
	}
	res, next := gcra(tat, l, n)
	s.tat[key] = next
	return res, nil
}

// evict forgets up to a few recovered keys; it reports whether room was
// made. Go's map iteration order is random, so this samples the shard.
// Called with s.mu held.
func (s *shard) evict(now int64) bool {
	freed, looked := 0, 0
	for k, tat := range s.tat {
		if tat <= now {
			delete(s.tat, k)
			freed++
		}
		if looked++; looked >= 32 || freed >= 4 {
			break
		}
	}
	return freed > 0
}

// Len is the number of keys held.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}
