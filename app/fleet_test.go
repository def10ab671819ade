package app_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/redis"
	"github.com/wecampus/wecampus/redis/redistest"
)

// smsReplicas returns two Services over one database and one SMS provider, as two replicas: each
// has its own per-mobile lock, and with redisAddr set each its own connection to that Redis.
func smsReplicas(t *testing.T, policy app.SMSPolicy, redisAddr, prefix string) ([]*app.Service, *smsRecorder, *fakeClock) {
	t.Helper()
	a, rec, clock, _ := newSMSService(t, policy)
	a.Store = slowChecks{a.Store} // both replicas read the database before either writes
	b := &app.Service{Store: a.Store, SMS: rec, SMSPolicy: a.SMSPolicy, Now: a.Now}
	if redisAddr != "" {
		a.Limits = redistest.Open(t, redisAddr, prefix)
		b.Limits = redistest.Open(t, redisAddr, prefix)
	}
	return []*app.Service{a, b}, rec, clock
}

// sendTogether sends a code for mobile on every replica at once and counts the refusals.
func sendTogether(t *testing.T, svcs []*app.Service, mobile string) {
	t.Helper()
	var wg sync.WaitGroup
	for i, svc := range svcs {
		wg.Go(func() {
			err := svc.SendCode(context.Background(), mobile, app.PurposeVerify, "10.0.0.9")
			if err != nil && app.ErrorCode(err) != app.ETOOMANY {
				t.Errorf("replica %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

func TestFleetSMSSimultaneousSends(t *testing.T) {
	addr := redistest.Addr(t)
	for _, tc := range []struct {
		name  string
		redis bool
		want  int
	}{
		{"database only (the defect Redis fixes)", false, 2},
		{"with Redis", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redisAddr := ""
			if tc.redis {
				redisAddr = addr
			}
			svcs, rec, _ := smsReplicas(t, app.SMSPolicy{}, redisAddr, redistest.Prefix(t, addr))
			sendTogether(t, svcs, "13800000101")
			if n := rec.count(); n != tc.want {
				t.Errorf("simultaneous sends on two replicas: %d SMS, want %d", n, tc.want)
			}
			t.Logf("simultaneous sends on two replicas: %d SMS", rec.count())
		})
	}
}

func TestFleetSMSDailyCap(t *testing.T) {
	addr := redistest.Addr(t)
	const cooldown = 50 * time.Millisecond // real time: Redis keeps its own clock
	svcs, rec, clock := smsReplicas(t, app.SMSPolicy{Cooldown: cooldown, DailyLimit: 3}, addr, redistest.Prefix(t, addr))
	for range 5 {
		sendTogether(t, svcs, "13800000102")
		time.Sleep(cooldown + 10*time.Millisecond)
		clock.advance(cooldown + 10*time.Millisecond)
	}
	if n := rec.count(); n != 3 {
		t.Errorf("5 rounds of simultaneous sends on two replicas with a daily cap of 3: %d SMS", n)
	}
}

// With Redis gone the sends go on, held by the database's limits; when it is back the fleet
// limits return without a restart.
func TestFleetSMSRedisOutage(t *testing.T) {
	addr := redistest.Addr(t)
	proxy := redistest.NewProxy(t, addr)
	svcs, rec, clock := smsReplicas(t, app.SMSPolicy{}, proxy.Addr(), redistest.Prefix(t, addr))
	ctx := context.Background()
	proxy.Cut()
	if err := svcs[0].SendCode(ctx, "13800000103", app.PurposeVerify, ""); err != nil {
		t.Fatalf("send with Redis down: %v", err)
	}
	wantCode(t, svcs[1].SendCode(ctx, "13800000103", app.PurposeVerify, ""), app.ETOOMANY)
	clock.advance(time.Minute)
	if err := svcs[1].SendCode(ctx, "13800000103", app.PurposeVerify, ""); err != nil {
		t.Fatalf("send after the cooldown with Redis down: %v", err)
	}
	if n := rec.count(); n != 2 {
		t.Errorf("%d SMS, want 2", n)
	}

	proxy.Restore()
	for _, svc := range svcs {
		rc := svc.Limits.(*redis.Client)
		for end := time.Now().Add(4 * time.Second); !rc.Up(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatal("Redis not back in use 4 s after it returned")
			}
		}
	}
	sendTogether(t, svcs, "13800000104")
	if n := rec.count(); n != 3 {
		t.Errorf("simultaneous sends after recovery: %d SMS in all, want 3", n)
	}
}

// 换绑 codes are capped per requesting number fleet-wide too.
func TestFleetRebindCodeCap(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := redistest.Prefix(t, addr)
	const cooldown = 50 * time.Millisecond
	f := newFixture(t, 0)
	f.svc.SMSPolicy.Cooldown = cooldown
	f.svc.SMSPolicy.RebindDailyLimit = 3
	f.svc.Store = slowChecks{f.svc.Store}
	f.svc.Limits = redistest.Open(t, addr, prefix)
	other := &app.Service{Store: f.svc.Store, WeCom: f.svc.WeCom, SMS: f.svc.SMS, Identity: f.svc.Identity,
		SMSPolicy: f.svc.SMSPolicy, BaseURL: f.svc.BaseURL, Now: f.svc.Now, Log: f.svc.Log, Limits: redistest.Open(t, addr, prefix)}
	old := f.seed(oldNumber, "张三", heldMobile, app.StatusActive)
	p := student(newNumber, "张三")
	for range 4 {
		var wg sync.WaitGroup
		for _, svc := range []*app.Service{f.svc, other} {
			wg.Go(func() {
				if err := svc.SendRebindCode(f.ctx, f.flow(), p, old.ID, heldMobile, "10.0.0.1"); err != nil && app.ErrorCode(err) != app.ETOOMANY {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		time.Sleep(cooldown + 10*time.Millisecond)
		f.clock.advance(cooldown + 10*time.Millisecond)
	}
	if n := f.sms.count(); n != 3 {
		t.Errorf("4 rounds of simultaneous 换绑 codes on two replicas with a cap of 3: %d SMS", n)
	}
}

// slowChecks delays the reads of the SMS limit checks, so that replicas sending at once all read
// before any of them writes.
type slowChecks struct{ app.Store }

func (s slowChecks) LatestSMSCode(ctx context.Context, mobile string, purpose app.Purpose) (*app.SMSCode, error) {
	defer time.Sleep(20 * time.Millisecond)
	return s.Store.LatestSMSCode(ctx, mobile, purpose)
}

func (s slowChecks) CountSMSCodes(ctx context.Context, mobile string, since time.Time) (int, error) {
	defer time.Sleep(20 * time.Millisecond)
	return s.Store.CountSMSCodes(ctx, mobile, since)
}

func (s slowChecks) CountSMSCodesByRequester(ctx context.Context, number string, since time.Time) (int, error) {
	defer time.Sleep(20 * time.Millisecond)
	return s.Store.CountSMSCodesByRequester(ctx, number, since)
}
