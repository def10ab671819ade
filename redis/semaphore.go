package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Polling bounds of a caller waiting for a free slot.
const (
	semPollMin = 5 * time.Millisecond
	semPollMax = 100 * time.Millisecond
)

// semAcquire takes a slot of the semaphore KEYS[1], a sorted set of leases scored by their
// expiry in ms: expired leases are dropped, and if fewer than ARGV[1] remain, lease ARGV[3] is
// added for ARGV[2] ms. It answers 1 when the slot is taken, else 0.
var semAcquire = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`)

// Acquire takes one of limit slots named key for the whole fleet, waiting (polling) while all
// are taken, until ctx is done. A slot is a lease: release returns it, and a replica that dies
// holding it loses it after lease. Choose lease longer than the work it guards.
//
// While Redis is down, or if it fails during the call, the cap is held by an in-process
// semaphore of limit slots instead (per replica, so the fleet may exceed it then).
func (c *Client) Acquire(ctx context.Context, key string, limit int, lease time.Duration) (release func(), err error) {
	if limit < 1 || lease < time.Millisecond {
		return nil, fmt.Errorf("redis: semaphore %q: limit must be at least 1 and lease at least 1ms", key)
	}
	sk := c.key("sem", key)
	id := newID()
	wait := semPollMin
	for c.Up() {
		got, err := semAcquire.Run(ctx, c.rdb, []string{sk}, limit, lease.Milliseconds(), id).Int()
		if err != nil {
			c.observe(ctx, err)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("redis: semaphore %q: %w", key, ctx.Err())
			}
			break
		}
		if got == 1 {
			return sync.OnceFunc(func() { c.releaseLease(ctx, sk, id) }), nil
		}
		// Jitter spreads the waiters of several replicas over the interval.
		if err := sleep(ctx, wait/2+rand.N(wait/2+1)); err != nil {
			return nil, fmt.Errorf("redis: semaphore %q: all %d slots taken: %w", key, limit, err)
		}
		wait = min(wait*2, semPollMax)
	}
	return c.acquireLocal(ctx, key, limit)
}

// releaseLease returns a lease; if Redis cannot be told, the lease expires by itself.
func (c *Client) releaseLease(ctx context.Context, sk, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := c.rdb.ZRem(ctx, sk, id).Err(); err != nil {
		c.observe(ctx, err)
	}
}

// acquireLocal is Acquire on the process-local fallback semaphore of key.
func (c *Client) acquireLocal(ctx context.Context, key string, limit int) (func(), error) {
	c.semMu.Lock()
	sem := c.sems[key]
	if sem == nil || cap(sem) != limit {
		sem = make(chan struct{}, limit)
		c.sems[key] = sem
	}
	c.semMu.Unlock()
	select {
	case sem <- struct{}{}:
		return sync.OnceFunc(func() { <-sem }), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("redis: semaphore %q: all %d local slots taken: %w", key, limit, ctx.Err())
	}
}
