package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Token refresh timings.
const (
	tokenPoll        = 20 * time.Millisecond // how often a replica waiting for another's refresh looks
	tokenLockDefault = 10 * time.Second      // lock lifetime when the caller's ctx has no deadline
)

// tokenRead returns the token and its remaining lifetime in ms in one step.
var tokenRead = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return {'', 0} end
return {v, redis.call('PTTL', KEYS[1])}
`)

// tokenPublish stores a fresh token and releases the refresh lock, but only while the caller
// still owns the lock: a refresh that outlived its lock leaves the token to the new owner.
var tokenPublish = goredis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
`)

// compareAndDelete deletes KEYS[1] if its value is still ARGV[1]: releasing a lock one owns, or
// dropping the token WeCom refused but not a fresher one another replica stored meanwhile.
var compareAndDelete = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Token returns the access token stored under key and how long it stays valid. When none is
// stored, one replica of the fleet calls fetch under a lock (SET NX PX with a random owner) and
// stores what it returns for the lifetime fetch gives; the others poll until it is there (or the
// lock is gone, then one of them takes it), for as long as their ctx allows. So the fleet calls
// gettoken once per secret and token lifetime. An error of fetch is returned as it is.
//
// While Redis is down, or if it fails during the call, Token calls fetch itself: the caller keeps
// the token in its process-local cache until Redis is back.
func (c *Client) Token(ctx context.Context, key string, fetch func(context.Context) (string, time.Duration, error)) (string, time.Duration, error) {
	tk := c.key("token", key)
	lk := tk + ":lock"
	owner := newID()
	for c.Up() {
		tok, ttl, err := c.readToken(ctx, tk)
		if err != nil {
			return c.tokenFallback(ctx, err, fetch)
		}
		if tok != "" {
			return tok, ttl, nil
		}
		got, err := c.rdb.SetNX(ctx, lk, owner, lockTTL(ctx)).Result()
		if err != nil {
			return c.tokenFallback(ctx, err, fetch)
		}
		if got {
			return c.refreshToken(ctx, tk, lk, owner, fetch)
		}
		if err := sleep(ctx, tokenPoll); err != nil {
			return "", 0, fmt.Errorf("redis: waiting for another replica's token refresh: %w", err)
		}
	}
	return fetch(ctx)
}

// refreshToken fetches a token while holding the refresh lock lk and publishes it.
func (c *Client) refreshToken(ctx context.Context, tk, lk, owner string, fetch func(context.Context) (string, time.Duration, error)) (string, time.Duration, error) {
	// The previous owner may have published between our read and our SET NX.
	tok, ttl, err := c.readToken(ctx, tk)
	if err == nil && tok != "" {
		c.release(ctx, lk, owner)
		return tok, ttl, nil
	}
	tok, ttl, err = fetch(ctx)
	if err != nil {
		c.release(ctx, lk, owner)
		return "", 0, err
	}
	if ttl < time.Millisecond {
		c.release(ctx, lk, owner)
		return tok, ttl, nil // nothing worth sharing
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := tokenPublish.Run(pctx, c.rdb, []string{tk, lk}, owner, tok, ttl.Milliseconds()).Err(); err != nil {
		c.observe(pctx, err)
		c.log.Warn("redis: store token", "err", err) // the token is good; it is cached by the caller
	}
	return tok, ttl, nil
}

// readToken returns the token under tk ("" if none) and its remaining lifetime.
func (c *Client) readToken(ctx context.Context, tk string) (string, time.Duration, error) {
	v, err := tokenRead.Run(ctx, c.rdb, []string{tk}).Slice()
	if err != nil {
		c.observe(ctx, err)
		return "", 0, err
	}
	tok, _ := v[0].(string)
	ms, _ := v[1].(int64)
	if tok == "" || ms == -2 {
		return "", 0, nil // no token, or it expired between GET and PTTL
	}
	if ms < 0 {
		ms = time.Minute.Milliseconds() // stored without expiry (never by us): trust it briefly
	}
	return tok, time.Duration(ms) * time.Millisecond, nil
}

// tokenFallback is Token after Redis failed: fetch without Redis, unless the caller gave up.
func (c *Client) tokenFallback(ctx context.Context, err error, fetch func(context.Context) (string, time.Duration, error)) (string, time.Duration, error) {
	if ctx.Err() != nil {
		return "", 0, fmt.Errorf("redis: token: %w", errors.Join(ctx.Err(), err))
	}
	return fetch(ctx)
}

// DropToken deletes the token under key if it is still bad (WeCom answered 40014 or 42001 to
// it). A fresher token another replica stored meanwhile stays, so a burst of refused calls across
// the fleet causes one gettoken, not one per replica. While Redis is down it does nothing.
func (c *Client) DropToken(ctx context.Context, key, bad string) error {
	if !c.Up() {
		return nil
	}
	err := compareAndDelete.Run(ctx, c.rdb, []string{c.key("token", key)}, bad).Err()
	if err != nil {
		c.observe(ctx, err)
		return fmt.Errorf("redis: drop token: %w", err)
	}
	return nil
}

// release deletes lock lk if owner still holds it; it runs even when ctx is done.
func (c *Client) release(ctx context.Context, lk, owner string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	if err := compareAndDelete.Run(ctx, c.rdb, []string{lk}, owner).Err(); err != nil {
		c.observe(ctx, err) // the lock expires by itself
	}
}

// lockTTL is how long a refresh lock lives: as long as its holder may be fetching (its ctx
// deadline), so that a holder that died frees it soon and a slow one keeps it.
func lockTTL(ctx context.Context) time.Duration {
	d, ok := ctx.Deadline()
	if !ok {
		return tokenLockDefault
	}
	return min(max(time.Until(d)+500*time.Millisecond, time.Second), time.Minute)
}
