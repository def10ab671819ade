package wecom

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/silenceper/wechat/v2/cache"

	"github.com/wecampus/wecampus/app"
)

// Token kinds: one access token per secret (WECOM.md §0, §1).
const (
	tokApp      = "app"      // the 微校园助手 app secret
	tokContacts = "contacts" // the 通讯录同步 secret
)

// tokHoldFor is how long a configuration failure of gettoken (wrong secret, untrusted IP, …) is
// answered from memory instead of calling WeCom again: repeated gettoken calls with a wrong
// secret get the server's IP banned for an hour (WECOM.md §1, 45009 notes).
const tokHoldFor = 10 * time.Second

// tokConfigCode reports gettoken errcodes that retrying cannot fix (WECOM.md §1).
func tokConfigCode(code int) bool {
	switch code {
	case 40001, 40013, 40091, 41002, 41004, 60020:
		return true
	}
	return false
}

// tokTTL is how long a token with WeCom's expires_in (seconds) stays in the cache: like
// silenceper, 1500 s less than its lifetime, or a quarter less for short-lived tokens (simulator).
func tokTTL(expiresIn int64) time.Duration {
	d := time.Duration(expiresIn) * time.Second
	if expiresIn > 3000 {
		return d - 1500*time.Second
	}
	return max(d*3/4, time.Second)
}

// tokCacheKey is the cache key of one secret's token. silenceper keys work tokens by corp id
// alone, so two secrets in one cache would overwrite each other; ours names the kind and a hash of
// the API base and secret (a rotated secret or another API base never sees a stale token).
func tokCacheKey(which, corpID, apiBase, secret string) string {
	sum := sha256.Sum256([]byte(apiBase + "\n" + secret))
	return "wecampus_wecom_" + which + "_token_" + corpID + "_" + hex.EncodeToString(sum[:6])
}

// tokMemoryMu serialises access to silenceper's cache.Memory, whose Get and IsExist read its map
// without taking its lock (a data race with Set from another goroutine). It is global because
// several Clients may share one Memory.
var tokMemoryMu sync.Mutex

// tokLockedCache wraps a *cache.Memory with tokMemoryMu.
type tokLockedCache struct{ c cache.Cache }

func (l tokLockedCache) Get(key string) any {
	tokMemoryMu.Lock()
	defer tokMemoryMu.Unlock()
	return l.c.Get(key)
}

func (l tokLockedCache) Set(key string, val any, timeout time.Duration) error {
	tokMemoryMu.Lock()
	defer tokMemoryMu.Unlock()
	return l.c.Set(key, val, timeout)
}

func (l tokLockedCache) IsExist(key string) bool {
	tokMemoryMu.Lock()
	defer tokMemoryMu.Unlock()
	return l.c.IsExist(key)
}

func (l tokLockedCache) Delete(key string) error {
	tokMemoryMu.Lock()
	defer tokMemoryMu.Unlock()
	return l.c.Delete(key)
}

// tokSafeCache makes c safe for concurrent use if it is silenceper's in-memory cache; other
// caches (Redis, memcache) are safe already.
func tokSafeCache(c cache.Cache) cache.Cache {
	if m, ok := c.(*cache.Memory); ok {
		return tokLockedCache{c: m}
	}
	return c
}

// tokSource hands out the access token of one secret: from the cache while valid, else fetched
// once (single flight) and cached.
type tokSource struct {
	which string
	key   string
	cache cache.Cache
	log   *slog.Logger
	fetch func(ctx context.Context) (token string, expiresIn int64, err error)
	now   func() time.Time

	shared TokenStore // the fleet's tokens (redis.*); nil: this process's only

	sem chan struct{} // single flight of refreshes; a channel so that waiting honours ctx

	mu        sync.Mutex
	held      error // last configuration failure, answered until heldUntil
	heldUntil time.Time
}

func newTokSource(which, key string, c cache.Cache, log *slog.Logger,
	fetch func(ctx context.Context) (string, int64, error)) *tokSource {
	return &tokSource{which: which, key: key, cache: c, log: log, fetch: fetch, now: time.Now, sem: make(chan struct{}, 1)}
}

// cached returns the cached token or "".
func (t *tokSource) cached() string {
	switch v := t.cache.Get(t.key).(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// get returns a valid token, fetching one if the cache has none.
func (t *tokSource) get(ctx context.Context) (string, error) {
	if tok := t.cached(); tok != "" {
		return tok, nil
	}
	if err := t.lock(ctx); err != nil {
		return "", err
	}
	defer t.unlock()
	if tok := t.cached(); tok != "" {
		return tok, nil // another caller refreshed it while we waited
	}
	if err := t.heldErr(); err != nil {
		return "", err
	}
	if t.shared != nil {
		return t.fromStore(ctx)
	}
	return t.refresh(ctx)
}

// probe fetches a token from WeCom even if one is cached or a failure is held.
func (t *tokSource) probe(ctx context.Context) error {
	if err := t.lock(ctx); err != nil {
		return err
	}
	defer t.unlock()
	_, err := t.refresh(ctx)
	return err
}

// drop removes bad from the cache after WeCom rejected it (40014/42001). A token another caller
// has refreshed meanwhile is kept, so a burst of rejected calls causes one gettoken, not many;
// the check and the delete happen under the single-flight lock, atomically with refreshes. The
// shared store, if any, drops bad too, unless another replica has replaced it already.
func (t *tokSource) drop(ctx context.Context, bad string) error {
	if err := t.lock(ctx); err != nil {
		return err
	}
	defer t.unlock()
	switch cur := t.cached(); {
	case cur == bad:
		if err := t.cache.Delete(t.key); err != nil {
			t.log.Warn("wecom: drop cached token", "token", t.which, "err", err)
		}
	case cur != "" || t.shared == nil:
		return nil
	}
	if t.shared != nil {
		if err := t.shared.DropToken(ctx, t.key, bad); err != nil {
			t.log.Warn("wecom: drop shared token", "token", t.which, "err", err)
		}
	}
	return nil
}

func (t *tokSource) lock(ctx context.Context) error {
	select {
	case t.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &app.WeComError{Op: "gettoken", Unknown: true, Msg: "waiting for token: " + ctx.Err().Error()}
	}
}

func (t *tokSource) unlock() { <-t.sem }

func (t *tokSource) heldErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.held != nil && t.now().Before(t.heldUntil) {
		return t.held
	}
	return nil
}

// refresh fetches a token and caches it. Callers hold the single-flight lock.
func (t *tokSource) refresh(ctx context.Context) (string, error) {
	tok, ttl, err := t.fetchTTL(ctx)
	if err != nil {
		return "", err
	}
	if err := t.cache.Set(t.key, tok, ttl); err != nil {
		// The token is good; without the cache the next call simply fetches again.
		t.log.Warn("wecom: cache token", "token", t.which, "err", err)
	}
	return tok, nil
}

// fetchTTL fetches a token from WeCom and says how long to keep it; a configuration failure is
// held (answered from memory) for tokHoldFor.
func (t *tokSource) fetchTTL(ctx context.Context) (string, time.Duration, error) {
	tok, expiresIn, err := t.fetch(ctx)
	t.mu.Lock()
	t.held = nil
	var we *app.WeComError
	if errors.As(err, &we) && tokConfigCode(we.Code) {
		t.held, t.heldUntil = err, t.now().Add(tokHoldFor)
	}
	t.mu.Unlock()
	if err != nil {
		return "", 0, err
	}
	return tok, tokTTL(expiresIn), nil
}
