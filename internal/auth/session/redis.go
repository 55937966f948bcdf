package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/internal/redisx"
)

// unlockScript deletes KEYS[1] only while it still holds this taker's
// token ARGV[1]: the compare and the delete are one atomic step, so a lock
// that expired and was taken by another is left alone (the pattern from
// https://redis.io/docs/latest/develop/use/patterns/distributed-locks/).
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Redis is a Store shared by every Gatehouse instance using the same
// server and prefix. Records are plain keys prefix+key set with PX, so
// Redis expires them itself; the lock named k is the key prefix+"lock:"+k
// (the caller's hashed keys never start with "lock:"); ended sessions are
// published on the channel prefix+"ended". Every call is bounded by the
// timeout given to NewRedis, and no command is retried: a slow Redis
// fails a request fast instead of stacking waits.
type Redis struct {
	client  redis.UniversalClient
	timeout time.Duration
	prefix  string
}

var _ Store = (*Redis)(nil)

// NewRedis returns a store on the Redis of c (one server, a Sentinel
// primary or a Cluster: redisx), keys under prefix. It connects lazily: a
// bad address shows up as errors from the first calls. No command is
// retried: a retried SET NX could report a lock we took as held.
func NewRedis(c redisx.Config, prefix string) (*Redis, error) {
	client, err := redisx.New(c)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return &Redis{client: client, timeout: c.Timeout, prefix: prefix}, nil
}

// Close closes the connections. A running Subscribe ends with an error.
func (r *Redis) Close() error { return r.client.Close() }

func (r *Redis) lockKey(key string) string { return r.prefix + "lock:" + key }
func (r *Redis) channel() string           { return r.prefix + "ended" }

// pxMillis is ttl in whole milliseconds for PX, rounded up so that a
// sub-millisecond TTL still expires rather than being rejected.
func pxMillis(ttl time.Duration) int64 {
	return int64((ttl + time.Millisecond - 1) / time.Millisecond)
}

// Load implements Store.
func (r *Redis) Load(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	val, err := r.client.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("session: redis load: %w", err)
	}
	return val, nil // a fresh slice from the reply: nothing else aliases it
}

// Save implements Store: SET key val PX ttl.
func (r *Redis) Save(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("session: redis save: %w", errBadTTL)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Do(ctx, "SET", r.prefix+key, val, "PX", pxMillis(ttl)).Err(); err != nil {
		return fmt.Errorf("session: redis save: %w", err)
	}
	return nil
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Del(ctx, r.prefix+key).Err(); err != nil {
		return fmt.Errorf("session: redis delete: %w", err)
	}
	return nil
}

// Lock implements Store: SET lockkey token NX PX ttl, with a random token.
// unlock runs the compare-and-delete script under its own timeout, detached
// from ctx's cancellation (it usually runs after the request ended); if it
// fails, the lock simply expires after ttl.
func (r *Redis) Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), ok bool, err error) {
	if ttl <= 0 {
		return noUnlock, false, fmt.Errorf("session: redis lock: %w", errBadTTL)
	}
	token := rand.Text() // 128 random bits; never fails (Go >= 1.24)
	lk := r.lockKey(key)
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	err = r.client.Do(cctx, "SET", lk, token, "NX", "PX", pxMillis(ttl)).Err()
	if errors.Is(err, redis.Nil) {
		return noUnlock, false, nil // held by someone else
	}
	if err != nil {
		return noUnlock, false, fmt.Errorf("session: redis lock: %w", err)
	}
	detached := context.WithoutCancel(ctx)
	var once sync.Once
	return func() {
		once.Do(func() {
			uctx, cancel := context.WithTimeout(detached, r.timeout)
			defer cancel()
			_ = unlockScript.Run(uctx, r.client, []string{lk}, token).Err()
		})
	}, true, nil
}

// Publish implements Store.
func (r *Redis) Publish(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Publish(ctx, r.channel(), key).Err(); err != nil {
		return fmt.Errorf("session: redis publish: %w", err)
	}
	return nil
}

// Subscribe implements Store. It returns an error if the subscription is
// not confirmed within the timeout; once it is, go-redis pings the
// connection and resubscribes by itself after a disconnect (keys published
// while disconnected are lost). fn runs on the caller's goroutine, one key
// at a time; Subscribe returns nil once ctx ends, or an error if the store
// is closed first.
func (r *Redis) Subscribe(ctx context.Context, fn func(key string)) error {
	sctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	ps := r.client.Subscribe(sctx, r.channel())
	defer ps.Close()
	if _, err := ps.Receive(sctx); err != nil { // the SUBSCRIBE confirmation
		return fmt.Errorf("session: redis subscribe: %w", err)
	}
	ch := ps.Channel()
	for {
		select {
		case msg, ok := <-ch:
			if !ok {
				return errors.New("session: redis subscribe: client closed")
			}
			fn(msg.Payload)
		case <-ctx.Done():
			return nil
		}
	}
}
