package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/internal/redisx"
)

// gcraScript is GCRA in one atomic round trip. KEYS[1] holds the TAT in
// microseconds; it expires once the key has fully recovered, so Redis
// forgets idle keys by itself. ARGV: now, interval, burst (µs, µs, n).
// Returns {allowed, remaining or retry-after µs, reset µs}.
var gcraScript = redis.NewScript(`
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
if tat < now then tat = now end
local new = tat + t
local allow_at = new - burst * t
if now < allow_at then
  return {0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new, 'PX', math.floor((new - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / t), new - now}
`)

// Redis is a Limiter shared by every Gatehouse instance using the same
// Redis (a single node, Sentinel or Cluster, through go-redis's universal
// client). Every decision is one round trip, bounded by Timeout.
type Redis struct {
	Client  redis.UniversalClient
	Prefix  string // key prefix, e.g. "gatehouse:rl:"
	Timeout time.Duration
	// LeaseTTL: how long a concurrency slot's lease lasts unless renewed;
	// 0 is GateTTL. For tests.
	LeaseTTL time.Duration
}

// NewRedis connects (lazily) to the Redis of c: one server, a Sentinel
// primary or a Cluster (redisx).
func NewRedis(c redisx.Config) (*Redis, error) {
	if c.PoolSize == 0 {
		c.PoolSize = 64
	}
	client, err := redisx.New(c)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	return &Redis{Client: client, Prefix: "gatehouse:rl:", Timeout: c.Timeout}, nil
}

// NeedsText implements TextLimiter: Redis keys must be the same on every
// instance, so they are built from the key's text.
func (r *Redis) NeedsText() bool { return true }

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key Key, l Limit, now time.Time) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	t := max(l.Interval().Microseconds(), 1)
	v, err := gcraScript.Run(ctx, r.Client, []string{r.Prefix + key.Text}, now.UnixMicro(), t, max(l.Burst, 1)).Int64Slice()
	if err != nil {
		return Result{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(v) != 3 {
		return Result{}, fmt.Errorf("ratelimit: redis: unexpected reply %v", v)
	}
	if v[0] == 1 {
		return Result{Allowed: true, Remaining: int(v[1]), Reset: time.Duration(v[2]) * time.Microsecond}, nil
	}
	return Result{RetryAfter: time.Duration(v[1]) * time.Microsecond, Reset: time.Duration(v[2]) * time.Microsecond}, nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.Client.Close() }

// Run closes the connections when ctx ends (the Registry owns the store).
func (r *Redis) Run(ctx context.Context) {
	<-ctx.Done()
	_ = r.Close()
}

// TextLimiter is a Limiter that needs Key.Text.
type TextLimiter interface {
	NeedsText() bool
}
