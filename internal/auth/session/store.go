// Package session is the server-side store for browser login sessions: a
// byte-level key/value store with a TTL per record, short named locks and a
// "session ended" broadcast (the shape of oauth2-proxy's persistence.Store).
//
// Invariants every implementation keeps:
//   - Values are opaque bytes. The caller encrypts them before Save; the
//     store never inspects, logs or puts them in errors. Save and Load copy,
//     so a caller's slice never aliases the store's.
//   - Keys are already hashed by the caller (the cookie holds the secret,
//     the store sees only a derived key), so the store never sees a value
//     that would open a session by itself. Errors name no keys either.
//   - A record lives for exactly its TTL: Load of an expired record returns
//     ErrNotFound, never stale bytes. Save replaces the value and the TTL in
//     one write.
//   - A lock is released only by the taker that holds it (a per-take token
//     is compared), so a holder whose lock expired and was taken by another
//     cannot release the new holder's lock. Locks and records are separate
//     namespaces: Lock("k") never touches the record "k".
//   - Publish/Subscribe is a hint to drop local caches, not a source of
//     truth: a store delivers to the subscribers active at the time, and a
//     subscriber that is disconnected (Redis) misses what was published
//     meanwhile. Ending a session must always Delete its record as well.
//
// Memory keeps everything in one process; Redis shares it between every
// Gatehouse instance using the same server and key prefix. RunStoreTests is
// the conformance suite both pass.
package session

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Load for a missing or expired key.
var ErrNotFound = errors.New("session: not found")

// Store keeps opaque session records by key, each with a TTL, and short
// locks. Implementations are safe for concurrent use.
type Store interface {
	// Load returns the value saved under key, or ErrNotFound.
	Load(ctx context.Context, key string) ([]byte, error)
	// Save stores val under key for ttl, replacing any value, in one atomic write.
	Save(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Lock takes the lock named key for at most ttl. ok is false (and err nil)
	// when someone else holds it. unlock releases it only if this taker still
	// holds it (compare a random token), so a lock that expired and was taken
	// by another is never released by the first holder.
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), ok bool, err error)
	// Publish tells every subscriber (in every Gatehouse instance sharing the
	// store) that the session key ended; Subscribe calls fn for each published
	// key until ctx ends, then returns (it blocks; its owner runs it in a goroutine).
	Publish(ctx context.Context, key string) error
	Subscribe(ctx context.Context, fn func(key string)) error
}

// errBadTTL is returned by Save and Lock for a TTL that is not positive:
// a record or lock without a lifetime is a caller bug, not "forever".
var errBadTTL = errors.New("ttl must be positive")

// noUnlock is the unlock returned when Lock did not take the lock, so
// callers may always defer the result.
func noUnlock() {}
