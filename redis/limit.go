package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/wecampus/wecampus/app"
)

var _ app.Limiter = (*Client)(nil)

// limitAllow is a sliding log per limit: KEYS[i] is a sorted set of event ids scored by their
// time in ms. ARGV[1] is the new event's id, ARGV[2i] and ARGV[2i+1] the max and the window (ms)
// of KEYS[i]. It answers {0, 0} after counting the event in every set, or {i, wait ms} for the
// first full limit i, counting nothing.
var limitAllow = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local max, win = tonumber(ARGV[2*i]), tonumber(ARGV[2*i+1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - win)
  local n = redis.call('ZCARD', KEYS[i])
  if n >= max then
    local e = redis.call('ZRANGE', KEYS[i], n - max, n - max, 'WITHSCORES')
    local wait = 1
    if e[2] then wait = math.max(tonumber(e[2]) + win - now, 1) end
    return {i, wait}
  end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2*i+1])
end
return {0, 0}
`)

// Allow counts one event against every limit, or, if one of them is full, against none (one
// Lua script, so two replicas racing for the last slot cannot both get it). It implements
// app.Limiter; while Redis is down it answers ErrUnavailable at once.
func (c *Client) Allow(ctx context.Context, limits ...app.Limit) (app.Decision, error) {
	if len(limits) == 0 {
		return app.Decision{OK: true}, nil
	}
	keys := make([]string, len(limits))
	args := make([]any, 1, 1+2*len(limits))
	args[0] = newID()
	for i, l := range limits {
		if l.Key == "" || l.Max < 1 || l.Window < time.Millisecond {
			return app.Decision{}, fmt.Errorf("redis: limit %q: need a key, a max of at least 1 and a window of at least 1ms", l.Key)
		}
		keys[i] = c.key("limit", l.Key)
		args = append(args, l.Max, l.Window.Milliseconds())
	}
	if !c.Up() {
		return app.Decision{}, ErrUnavailable
	}
	res, err := limitAllow.Run(ctx, c.rdb, keys, args...).Int64Slice()
	if err == nil && len(res) != 2 {
		err = errors.New("unexpected answer")
	}
	if err != nil {
		c.observe(ctx, err)
		return app.Decision{}, fmt.Errorf("redis: allow: %w", err)
	}
	if res[0] == 0 {
		return app.Decision{OK: true, ID: args[0].(string)}, nil
	}
	return app.Decision{Refused: int(res[0]) - 1, RetryAfter: time.Duration(res[1]) * time.Millisecond}, nil
}

// Undo removes the event id that Allow counted from limits, as if it never happened.
func (c *Client) Undo(ctx context.Context, id string, limits ...app.Limit) error {
	if len(limits) == 0 || id == "" {
		return nil
	}
	if !c.Up() {
		return ErrUnavailable
	}
	pipe := c.rdb.Pipeline()
	for _, l := range limits {
		pipe.ZRem(ctx, c.key("limit", l.Key), id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		c.observe(ctx, err)
		return fmt.Errorf("redis: undo: %w", err)
	}
	return nil
}
