package handlers

import (
	"context"
	"fmt"
	"testing"
	"time"
)

type stepClock struct{ t time.Time }

func (c *stepClock) now() time.Time { return c.t }

func TestLocalRateLimiter(t *testing.T) {
	ctx := context.Background()
	t.Run("BurstThenSustained", func(t *testing.T) {
		clock := &stepClock{t: time.Unix(1_700_000_000, 0)}
		l := NewLocalRateLimiter(300, 0, clock.now)
		for i := range 300 {
			if ok, _, _ := l.Allow(ctx, "a"); !ok {
				t.Fatalf("request %d of the burst refused", i+1)
			}
		}
		ok, wait, err := l.Allow(ctx, "a")
		if ok || err != nil || wait != 200*time.Millisecond {
			t.Fatalf("301st: ok=%v wait=%v err=%v, want refused for 200ms", ok, wait, err)
		}
		// Refusals are not counted: after 200 ms exactly one more, then refused again.
		clock.t = clock.t.Add(200 * time.Millisecond)
		if ok, _, _ := l.Allow(ctx, "a"); !ok {
			t.Fatal("refused after the wait")
		}
		if ok, _, _ := l.Allow(ctx, "a"); ok {
			t.Fatal("a second request passed after one interval")
		}
		// Other keys are independent.
		if ok, _, _ := l.Allow(ctx, "b"); !ok {
			t.Fatal("another key refused")
		}
		// A minute of rest refills the whole burst.
		clock.t = clock.t.Add(time.Minute)
		for i := range 300 {
			if ok, _, _ := l.Allow(ctx, "a"); !ok {
				t.Fatalf("request %d after a minute refused", i+1)
			}
		}
	})

	t.Run("BoundedMemory", func(t *testing.T) {
		clock := &stepClock{t: time.Unix(1_700_000_000, 0)}
		l := NewLocalRateLimiter(2, 4, clock.now)
		// Busy keys fill the map; a new key evicts one, never growing it beyond 4.
		for i := range 100 {
			l.Allow(ctx, fmt.Sprint("busy", i))
			if len(l.tat) > 4 {
				t.Fatalf("%d keys remembered, bound is 4", len(l.tat))
			}
		}
		// Idle keys are dropped first, and dropping them changes no decision: a key used up
		// long ago is exactly a fresh key.
		l = NewLocalRateLimiter(2, 4, clock.now)
		l.Allow(ctx, "x")
		l.Allow(ctx, "x")
		if ok, _, _ := l.Allow(ctx, "x"); ok {
			t.Fatal("x over its limit passed")
		}
		for _, k := range []string{"i1", "i2", "i3"} {
			l.Allow(ctx, k)
		}
		clock.t = clock.t.Add(2 * time.Second)
		l.Allow(ctx, "hot") // still busy: x (until 60 s), i1..i3 (until 30 s)
		if len(l.tat) > 4 {
			t.Fatalf("%d keys", len(l.tat))
		}
		clock.t = clock.t.Add(2 * time.Minute) // everyone idle now
		l.Allow(ctx, "new")
		if len(l.tat) != 1 {
			t.Fatalf("%d keys after a sweep with everyone idle, want only the new one", len(l.tat))
		}
		if ok, _, _ := l.Allow(ctx, "x"); !ok {
			t.Fatal("x refused after its idle entry was dropped")
		}
	})
}

func TestRateKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":             "203.0.113.7",
		"::ffff:203.0.113.7":      "203.0.113.7",
		"2001:db8:1:2::1":         "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9":    "2001:db8:1:2::/64",
		"2001:db8:1:3::1":         "2001:db8:1:3::/64",
		"not an address":          "not an address",
		"fe80::1%eth0":            "fe80::/64",
		"2001:0db8:0001:0002::ab": "2001:db8:1:2::/64",
	} {
		if got := rateKey(in); got != want {
			t.Errorf("rateKey(%q) = %q, want %q", in, got, want)
		}
	}
}
