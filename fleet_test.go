package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/redis/redistest"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// smsLog records the codes sent by every instance of a fleet test.
type smsLog struct {
	mu   sync.Mutex
	sent []string // mobiles
}

func (l *smsLog) Send(_ context.Context, mobile, _ string, _ app.Purpose, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, mobile)
	return nil
}

func (l *smsLog) count(mobile string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.sent {
		if m == mobile {
			n++
		}
	}
	return n
}

// probe answers GET path from d's HTTP service.
func probe(d *deps, path string) (int, string) {
	rec := httptest.NewRecorder()
	d.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// TestFleetSharesRedis builds two serving instances from one config (as two replicas would, here
// in one process) on one database, one WeCom simulator and one Redis, which a proxy can cut away.
func TestFleetSharesRedis(t *testing.T) {
	redisAddr := redistest.Addr(t)
	proxy := redistest.NewProxy(t, redisAddr)
	sim := newSimulated(t)
	setKey(t, sim.tree, "redis.addr", proxy.Addr())
	setKey(t, sim.tree, "redis.key_prefix", redistest.Prefix(t, redisAddr))
	setKey(t, sim.tree, "server.rate_limit.per_minute", 3)
	cfg, err := LoadConfig(sim.path(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.wecom.AddMember(wecomtest.Member{UserID: "zs", Name: "张三", Mobile: "13800000001", Department: []int64{2}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sent := &smsLog{}
	fleet := make([]*deps, 2)
	for i := range fleet {
		d, err := build(ctx, cfg, log, withServing(), withSMS(sent))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.close() })
		fleet[i] = d
	}
	each := func(n int, f func(d *deps, i int)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { f(fleet[i%len(fleet)], i) })
		}
		wg.Wait()
	}

	// One access token per secret for the fleet.
	each(40, func(d *deps, i int) {
		var err error
		if i/2%2 == 0 {
			err = d.wecom.SendText(ctx, "zs", "hi", 0)
		} else {
			_, err = d.wecom.UserIDByMobile(ctx, "13800000001")
		}
		if err != nil {
			t.Error(err)
		}
	})
	perSecret := map[string]int{}
	for _, c := range sim.wecom.Calls() {
		if c.Endpoint == "gettoken" {
			perSecret[c.Query.Get("corpsecret")]++
		}
	}
	t.Logf("gettoken calls per secret for 2 instances: app %d, contacts %d", perSecret[testAppSecret], perSecret[testContactsSecret])
	if perSecret[testAppSecret] != 1 || perSecret[testContactsSecret] != 1 {
		t.Errorf("gettoken calls per secret = %v, want 1 each for the fleet", perSecret)
	}

	// Simultaneous SMS sends for one mobile on both instances: one SMS.
	each(2, func(d *deps, _ int) {
		if err := d.svc.SendCode(ctx, "13800000002", app.PurposeVerify, "10.0.0.1"); err != nil && app.ErrorCode(err) != app.ETOOMANY {
			t.Error(err)
		}
	})
	t.Logf("SMS sent for 2 simultaneous requests on 2 instances: %d", sent.count("13800000002"))
	if n := sent.count("13800000002"); n != 1 {
		t.Errorf("simultaneous sends on two instances: %d SMS, want 1", n)
	}
	// server.rate_limit holds across the fleet: 3 requests with a ticket a minute from one address.
	limited := 0
	for i := range 6 {
		if code, _ := probe(fleet[i%2], "/bind/cas?ticket=ST-junk"); code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 3 {
		t.Errorf("6 requests with a ticket from one address over two instances at 3 a minute: %d answered 429, want 3", limited)
	}
	for _, d := range fleet {
		if code, body := probe(d, "/readyz"); code != http.StatusOK || !strings.Contains(body, "redis: ok") {
			t.Errorf("/readyz with Redis up: %d %q", code, body)
		}
		if _, body := probe(d, "/metrics"); !strings.Contains(body, "\nwecampus_redis_up 1\n") {
			t.Error("/metrics lacks wecampus_redis_up 1")
		}
	}

	// Redis goes away: the service goes on; the database holds the limits.
	proxy.Cut()
	if err := fleet[0].svc.SendCode(ctx, "13800000003", app.PurposeVerify, ""); err != nil {
		t.Fatalf("send with Redis cut: %v", err)
	}
	if err := fleet[1].svc.SendCode(ctx, "13800000003", app.PurposeVerify, ""); app.ErrorCode(err) != app.ETOOMANY {
		t.Errorf("second send within the cooldown, other instance, Redis cut: %v; want the database's cooldown", err)
	}
	if err := fleet[1].svc.SendCode(ctx, "13800000005", app.PurposeVerify, ""); err != nil {
		t.Fatalf("send with Redis cut: %v", err)
	}
	if err := fleet[1].wecom.SendText(ctx, "zs", "still here", 0); err != nil {
		t.Errorf("WeCom call with Redis cut: %v", err)
	}
	for _, d := range fleet {
		waitFor(t, 3*time.Second, "/readyz 200 naming redis: degraded and gauge 0", func() bool {
			code, body := probe(d, "/readyz")
			_, metrics := probe(d, "/metrics")
			return code == http.StatusOK && strings.Contains(body, "redis: degraded") && strings.Contains(metrics, "\nwecampus_redis_up 0\n")
		})
	}

	// Redis returns: every instance uses it again, without a restart.
	proxy.Restore()
	for _, d := range fleet {
		waitFor(t, 4*time.Second, "/readyz naming redis: ok and gauge 1 after Redis returned", func() bool {
			_, body := probe(d, "/readyz")
			_, metrics := probe(d, "/metrics")
			return strings.Contains(body, "redis: ok") && strings.Contains(metrics, "\nwecampus_redis_up 1\n")
		})
	}
	each(2, func(d *deps, _ int) {
		if err := d.svc.SendCode(ctx, "13800000004", app.PurposeVerify, ""); err != nil && app.ErrorCode(err) != app.ETOOMANY {
			t.Error(err)
		}
	})
	if n := sent.count("13800000004"); n != 1 {
		t.Errorf("simultaneous sends after recovery: %d SMS, want 1", n)
	}
	if n := sim.wecom.CallCount("gettoken"); n != 2 {
		t.Errorf("gettoken calls in all = %d, want 2 (the tokens outlived the outage)", n)
	}
}

// TestConfigCheckRedis: config check probes Redis when redis.addr is set.
func TestConfigCheckRedis(t *testing.T) {
	redisAddr := redistest.Addr(t)
	sim := newSimulated(t)
	setKey(t, sim.tree, "redis.addr", redisAddr)
	if r := runCLI(t, "--config", sim.path(t), "config", "check"); r.code != 0 || !strings.Contains(r.stdout, "ok   redis\n") {
		t.Errorf("config check with Redis up: exit %d\n%s", r.code, r.stdout)
	}
	proxy := redistest.NewProxy(t, redisAddr)
	proxy.Cut()
	setKey(t, sim.tree, "redis.addr", proxy.Addr())
	if r := runCLI(t, "--config", sim.path(t), "config", "check"); r.code == 0 || !strings.Contains(r.stdout, "FAIL redis: ") {
		t.Errorf("config check with Redis down: exit %d\n%s", r.code, r.stdout)
	}
}

// waitFor fails the test unless cond holds within d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("not within %v: %s", d, what)
		}
	}
}
