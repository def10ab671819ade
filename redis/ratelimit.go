package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// rateGCRA is the generic cell rate algorithm over one key: its value is the theoretical arrival
// time (µs) of the key's next request. ARGV[1] is the spacing of requests (µs), ARGV[2] the
// burst tolerance (µs). It answers {1, 0} after counting the request, or {0, wait µs}, counting
// nothing. It is the same algorithm as the replicas' in-process limiter, so a replica that falls
// back to its own limit while Redis is down decides alike.
var rateGCRA = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - now - tolerance
if wait > 0 then return {0, wait} end
local next = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000))
return {1, 0}
`)

// RateLimiter holds a request rate per key (a client address) for the whole fleet: perMinute
// requests a minute with a burst of perMinute. It implements handlers.RateLimiter.
type RateLimiter struct {
	c         *Client
	interval  int64 // µs
	tolerance int64 // µs
}

// RateLimiter returns the fleet-wide limiter of perMinute requests per key and minute
// (server.rate_limit.per_minute; at least 1).
func (c *Client) RateLimiter(perMinute int) *RateLimiter {
	perMinute = max(perMinute, 1)
	iv := time.Minute.Microseconds() / int64(perMinute)
	return &RateLimiter{c: c, interval: iv, tolerance: iv * int64(perMinute-1)}
}

// Allow counts one request of key if it is within the limit, else says how long until the next
// one would be. While Redis is down it answers ErrUnavailable at once: the caller applies its
// own, per-replica limit.
func (r *RateLimiter) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	if !r.c.Up() {
		return false, 0, ErrUnavailable
	}
	res, err := rateGCRA.Run(ctx, r.c.rdb, []string{r.c.key("rate", key)}, r.interval, r.tolerance).Int64Slice()
	if err == nil && len(res) != 2 {
		err = errors.New("unexpected answer")
	}
	if err != nil {
		r.c.observe(ctx, err)
		return false, 0, fmt.Errorf("redis: rate limit: %w", err)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}
