package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/redis"
	"github.com/wecampus/wecampus/redis/redistest"
)

// replicas opens n Clients on one key prefix: n replicas of one fleet.
func replicas(t *testing.T, n int) []*redis.Client {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	cs := make([]*redis.Client, n)
	for i := range cs {
		cs[i] = redistest.Open(t, addr, prefix)
	}
	return cs
}

// gauge reads wecampus_redis_up from reg.
func gauge(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "wecampus_redis_up" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("wecampus_redis_up is not registered")
	return 0
}

// eventually fails the test unless cond holds within d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", d, what)
		}
	}
}

func TestOpenConfig(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []redis.Config{{}, {Addr: "localhost"}, {Addr: ":6379"}, {Addr: "127.0.0.1:6379", DB: -1},
		{Addr: "127.0.0.1:6379", KeyPrefix: "a b:"}} {
		if c, err := redis.Open(ctx, cfg, nil, nil); err == nil {
			c.Close()
			t.Errorf("Open(%+v) = nil error", cfg)
		}
	}
}

func TestOpenRefused(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	// A database Redis does not have (or a refused password) is a configuration mistake: Open
	// fails rather than serving degraded for ever.
	for _, cfg := range []redis.Config{
		{Addr: addr, DB: 100000, KeyPrefix: "x:"},
	} {
		if c, err := redis.Open(ctx, cfg, nil, nil); err == nil {
			c.Close()
			t.Errorf("Open(%+v) = nil error", cfg)
		}
	}
}

func TestOpenUnreachableStartsDegraded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	reg := prometheus.NewRegistry()
	c, err := redis.Open(context.Background(), redis.Config{Addr: addr}, nil, reg)
	if err != nil {
		t.Fatalf("Open with Redis down: %v (want degraded, no error)", err)
	}
	defer c.Close()
	if c.Up() || gauge(t, reg) != 0 {
		t.Errorf("Up %v, gauge %v; want false, 0", c.Up(), gauge(t, reg))
	}
	if _, err := c.Allow(context.Background(), app.Limit{Key: "k", Max: 1, Window: time.Second}); !errors.Is(err, redis.ErrUnavailable) {
		t.Errorf("Allow while down: %v, want ErrUnavailable", err)
	}
}

func TestDeleteKeysOnlyOwnPrefix(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	mine := redistest.Open(t, addr, redistest.Prefix(t, addr))
	other := redistest.Open(t, addr, redistest.Prefix(t, addr))
	l := app.Limit{Key: "k", Max: 1, Window: time.Minute}
	for _, c := range []*redis.Client{mine, other} {
		if d, err := c.Allow(ctx, l); err != nil || !d.OK {
			t.Fatalf("Allow: %+v, %v", d, err)
		}
	}
	if n, err := mine.DeleteKeys(ctx); err != nil || n != 1 {
		t.Fatalf("DeleteKeys = %d, %v; want 1", n, err)
	}
	if d, _ := mine.Allow(ctx, l); !d.OK {
		t.Error("own key survived DeleteKeys")
	}
	if d, _ := other.Allow(ctx, l); d.OK {
		t.Error("another prefix's key was deleted")
	}
}

// fetcher counts calls of a token fetch that takes a little while, like gettoken.
type fetcher struct {
	calls atomic.Int32
	delay time.Duration
	err   error
}

func (f *fetcher) fetch(ctx context.Context) (string, time.Duration, error) {
	n := f.calls.Add(1)
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return "", 0, ctx.Err()
	}
	if f.err != nil {
		return "", 0, f.err
	}
	return fmt.Sprintf("token-%d", n), time.Hour, nil
}

func TestTokenOncePerFleet(t *testing.T) {
	fleet := replicas(t, 2)
	app, contacts := &fetcher{delay: 50 * time.Millisecond}, &fetcher{delay: 50 * time.Millisecond}
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	for i := range 100 {
		c := fleet[i%2]
		key, f := "app", app
		if i%3 == 0 {
			key, f = "contacts", contacts
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tok, ttl, err := c.Token(ctx, key, f.fetch)
			if err != nil || ttl <= 0 || ttl > time.Hour {
				t.Errorf("Token(%s) = %q, %v, %v", key, tok, ttl, err)
			}
			mu.Lock()
			seen[key+"="+tok]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if app.calls.Load() != 1 || contacts.calls.Load() != 1 {
		t.Errorf("fetches: app %d, contacts %d; want 1 each for the fleet", app.calls.Load(), contacts.calls.Load())
	}
	if len(seen) != 2 {
		t.Errorf("tokens handed out: %v; want one per secret", seen)
	}
}

func TestDropTokenKeepsFresherToken(t *testing.T) {
	fleet := replicas(t, 2)
	a, b := fleet[0], fleet[1]
	ctx := context.Background()
	f := &fetcher{}
	t1, _, err := a.Token(ctx, "app", f.fetch)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Token(ctx, "app", f.fetch); got != t1 {
		t.Fatalf("replica b got %q, want the shared %q", got, t1)
	}
	// WeCom refuses t1 (40014) to both replicas. a drops it first and refreshes.
	if err := a.DropToken(ctx, "app", t1); err != nil {
		t.Fatal(err)
	}
	t2, _, err := a.Token(ctx, "app", f.fetch)
	if err != nil || t2 == t1 {
		t.Fatalf("after drop: %q, %v; want a fresh token", t2, err)
	}
	// b's drop of the refused t1 must not delete a's fresher t2.
	if err := b.DropToken(ctx, "app", t1); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := b.Token(ctx, "app", f.fetch); got != t2 {
		t.Errorf("b after its drop got %q, want %q", got, t2)
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2", n)
	}
}

func TestTokenFetchErrorReleasesLock(t *testing.T) {
	fleet := replicas(t, 2)
	ctx := context.Background()
	bad := &fetcher{err: &app.WeComError{Op: "gettoken", Code: 40001, Msg: "invalid credential"}}
	if _, _, err := fleet[0].Token(ctx, "app", bad.fetch); app.WeComCode(err) != 40001 {
		t.Fatalf("Token = %v, want the fetch's 40001", err)
	}
	// The lock is gone at once: the other replica fetches without waiting for it to expire.
	good := &fetcher{}
	start := time.Now()
	if _, _, err := fleet[1].Token(ctx, "app", good.fetch); err != nil || good.calls.Load() != 1 {
		t.Fatalf("Token after a failed refresh: %v, fetches %d", err, good.calls.Load())
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("second replica waited %v for a released lock", d)
	}
}

func TestTokenWaiterGivesUpWithCtx(t *testing.T) {
	fleet := replicas(t, 2)
	slow := &fetcher{delay: time.Second}
	done := make(chan struct{})
	defer func() { <-done }() // its token is stored before the test's keys are deleted
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, _, _ = fleet[0].Token(ctx, "app", slow.fetch)
	}()
	eventually(t, time.Second, "first replica fetching", func() bool { return slow.calls.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	other := &fetcher{}
	if _, _, err := fleet[1].Token(ctx, "app", other.fetch); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting replica: %v, want its deadline", err)
	}
	if other.calls.Load() != 0 {
		t.Error("waiting replica fetched a token itself while Redis was up")
	}
}

func TestAllowAtomicAcrossReplicas(t *testing.T) {
	fleet := replicas(t, 2)
	for _, max := range []int{1, 3} {
		key := fmt.Sprintf("sms:mobile:1380000000%d", max)
		var ok atomic.Int32
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Go(func() {
				d, err := fleet[i%2].Allow(context.Background(), app.Limit{Key: key, Max: max, Window: time.Minute})
				if err != nil {
					t.Error(err)
				}
				if d.OK {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if int(ok.Load()) != max {
			t.Errorf("max %d: %d of 60 simultaneous events allowed", max, ok.Load())
		}
	}
}

func TestAllowAllOrNone(t *testing.T) {
	c := replicas(t, 1)[0]
	ctx := context.Background()
	daily := app.Limit{Key: "daily", Max: 5, Window: 24 * time.Hour}
	cooldown := app.Limit{Key: "cooldown", Max: 1, Window: time.Minute}
	if d, err := c.Allow(ctx, daily, cooldown); err != nil || !d.OK || d.ID == "" {
		t.Fatalf("first: %+v, %v", d, err)
	}
	d, err := c.Allow(ctx, daily, cooldown)
	if err != nil || d.OK || d.Refused != 1 {
		t.Fatalf("second: %+v, %v; want refused by limit 1 (cooldown)", d, err)
	}
	if d.RetryAfter <= 59*time.Second || d.RetryAfter > time.Minute {
		t.Errorf("RetryAfter = %v, want just under a minute", d.RetryAfter)
	}
	// The refused event did not count against the daily cap: it holds one event, not two.
	twice := app.Limit{Key: "daily", Max: 2, Window: 24 * time.Hour}
	if d, _ := c.Allow(ctx, twice); !d.OK {
		t.Error("a refused event was counted against another limit")
	}
	if d, _ := c.Allow(ctx, twice); d.OK || d.Refused != 0 {
		t.Errorf("third daily event: %+v, want refused", d)
	}
}

func TestAllowSlidingWindowAndUndo(t *testing.T) {
	c := replicas(t, 1)[0]
	ctx := context.Background()
	l := app.Limit{Key: "ip:192.0.2.1", Max: 2, Window: time.Second}
	first, _ := c.Allow(ctx, l)
	second, _ := c.Allow(ctx, l)
	if !first.OK || !second.OK {
		t.Fatal("two events within a max of 2 refused")
	}
	if d, _ := c.Allow(ctx, l); d.OK {
		t.Fatal("third event allowed")
	}
	if err := c.Undo(ctx, second.ID, l); err != nil {
		t.Fatal(err)
	}
	if d, _ := c.Allow(ctx, l); !d.OK {
		t.Fatal("undone event still counted")
	}
	time.Sleep(1100 * time.Millisecond)
	if d, _ := c.Allow(ctx, l); !d.OK {
		t.Error("events older than the window still counted")
	}
	if _, err := c.Allow(ctx, app.Limit{Key: "k", Max: 0, Window: time.Second}); err == nil {
		t.Error("a limit of max 0 accepted")
	}
}

// holders counts concurrent holders of a semaphore and remembers the most.
type holders struct{ now, peak atomic.Int32 }

func (h *holders) hold(d time.Duration) {
	n := h.now.Add(1)
	for {
		p := h.peak.Load()
		if n <= p || h.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(d)
	h.now.Add(-1)
}

func TestAcquireCapsTheFleet(t *testing.T) {
	fleet := replicas(t, 2)
	var h holders
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			release, err := fleet[i%2].Acquire(ctx, "wecom:tfa", 3, 5*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			defer release()
			h.hold(50 * time.Millisecond)
		})
	}
	wg.Wait()
	if p := h.peak.Load(); p != 3 {
		t.Errorf("peak concurrent holders = %d, want the cap 3", p)
	}
}

func TestAcquireLeaseExpires(t *testing.T) {
	fleet := replicas(t, 2)
	ctx := context.Background()
	if _, err := fleet[0].Acquire(ctx, "k", 1, time.Second); err != nil {
		t.Fatal(err)
	}
	// Replica 0 "dies" holding the only slot: replica 1 gets it once the lease runs out.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := fleet[1].Acquire(short, "k", 1, time.Second); err == nil {
		t.Fatal("second slot of a semaphore of 1")
	}
	long, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	release, err := fleet[1].Acquire(long, "k", 1, time.Second)
	if err != nil {
		t.Fatalf("slot of an expired lease: %v", err)
	}
	release()
	release() // a second call is harmless
	again, cancel3 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel3()
	if r, err := fleet[0].Acquire(again, "k", 1, time.Second); err != nil {
		t.Errorf("slot after release: %v", err)
	} else {
		r()
	}
}

func TestRateLimiterAcrossReplicas(t *testing.T) {
	fleet := replicas(t, 2)
	limiters := []*redis.RateLimiter{fleet[0].RateLimiter(5), fleet[1].RateLimiter(5)}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			allowed, wait, err := limiters[i%2].Allow(context.Background(), "192.0.2.7")
			switch {
			case err != nil:
				t.Error(err)
			case allowed:
				ok.Add(1)
			case wait <= 0 || wait > 12*time.Second:
				t.Errorf("refused with wait %v, want up to a fifth of a minute", wait)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 {
		t.Errorf("%d of 40 simultaneous requests allowed at 5 a minute (burst 5)", ok.Load())
	}
	if allowed, _, err := limiters[0].Allow(context.Background(), "192.0.2.8"); err != nil || !allowed {
		t.Errorf("another address: %v, %v", allowed, err)
	}
}

// After the burst, requests are let through at the sustained rate.
func TestRateLimiterRefills(t *testing.T) {
	c := replicas(t, 1)[0]
	l := c.RateLimiter(1200) // one per 50 ms, burst 1200
	ctx := context.Background()
	n := 0
	for ; n < 2000; n++ {
		allowed, _, err := l.Allow(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if !allowed {
			break
		}
	}
	if n < 1200 || n > 1210 { // a few more drip in while the burst is spent
		t.Fatalf("burst of %d, want 1200", n)
	}
	allowed, wait, _ := l.Allow(ctx, "k")
	if allowed || wait <= 0 || wait > 50*time.Millisecond {
		t.Fatalf("right after the burst: %v, wait %v", allowed, wait)
	}
	time.Sleep(wait + 5*time.Millisecond)
	if allowed, _, _ := l.Allow(ctx, "k"); !allowed {
		t.Error("refused after waiting the time it was told")
	}
}
