package redis_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/redis"
	"github.com/wecampus/wecampus/redis/redistest"
)

// TestOutageDegradesAndRecovers cuts Redis away from a replica (a proxy in between, so the
// shared Redis keeps running) and restores it: the replica degrades at once and recovers without
// a restart.
func TestOutageDegradesAndRecovers(t *testing.T) {
	for _, mode := range []string{"cut", "blackhole"} {
		t.Run(mode, func(t *testing.T) { testOutage(t, mode) })
	}
}

func testOutage(t *testing.T, mode string) {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	proxy := redistest.NewProxy(t, addr)
	reg := prometheus.NewRegistry()
	ctx := context.Background()
	c, err := redis.Open(ctx, redis.Config{Addr: proxy.Addr(), KeyPrefix: prefix}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Up() || gauge(t, reg) != 1 {
		t.Fatalf("Up %v, gauge %v at start", c.Up(), gauge(t, reg))
	}
	f := &fetcher{}
	tok, _, err := c.Token(ctx, "app", f.fetch)
	if err != nil {
		t.Fatal(err)
	}
	cooldown := app.Limit{Key: "cooldown", Max: 1, Window: time.Minute}
	if d, err := c.Allow(ctx, cooldown); err != nil || !d.OK {
		t.Fatalf("Allow: %+v, %v", d, err)
	}

	if mode == "cut" {
		proxy.Cut()
	} else {
		proxy.Blackhole()
	}
	// The first call after the outage began notices it (within go-redis's 1 s timeouts at most)
	// and answers from the fallback; so does the monitor.
	start := time.Now()
	if _, err := c.Allow(ctx, cooldown); err == nil {
		t.Error("Allow during the outage: no error (the caller must fall back to the database)")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Allow during the outage took %v", d)
	}
	eventually(t, 3*time.Second, "Up false and gauge 0", func() bool { return !c.Up() && gauge(t, reg) == 0 })
	start = time.Now()
	if _, err := c.Allow(ctx, cooldown); err != redis.ErrUnavailable {
		t.Errorf("Allow while down: %v, want ErrUnavailable", err)
	}
	if _, _, err := c.RateLimiter(60).Allow(ctx, "192.0.2.1"); err != redis.ErrUnavailable {
		t.Errorf("RateLimiter.Allow while down: %v, want ErrUnavailable", err)
	}
	// Tokens: fetched directly (the caller caches it in its process), at once.
	if got, _, err := c.Token(ctx, "app", f.fetch); err != nil || got == tok || f.calls.Load() != 2 {
		t.Errorf("Token while down: %q, %v, fetches %d; want a direct fetch", got, err, f.calls.Load())
	}
	if err := c.DropToken(ctx, "app", tok); err != nil {
		t.Errorf("DropToken while down: %v", err)
	}
	// The concurrency cap holds in the process.
	var h holders
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			release, err := c.Acquire(ctx, "tfa", 2, time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer release()
			h.hold(10 * time.Millisecond)
		})
	}
	wg.Wait()
	if h.peak.Load() != 2 {
		t.Errorf("local cap: peak %d, want 2", h.peak.Load())
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("degraded calls took %v; they must not wait for Redis", d)
	}

	proxy.Restore()
	eventually(t, 4*time.Second, "Up true and gauge 1 after Redis returned", func() bool { return c.Up() && gauge(t, reg) == 1 })
	// Redis kept its state: the cooldown counted before the outage still holds, and the shared
	// token is the one stored before.
	if d, err := c.Allow(ctx, cooldown); err != nil || d.OK {
		t.Errorf("Allow after recovery: %+v, %v; want refused by the cooldown", d, err)
	}
	if got, _, err := c.Token(ctx, "app", f.fetch); err != nil || got != tok {
		t.Errorf("Token after recovery: %q, %v; want the shared %q", got, err, tok)
	}
}
