package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// shortTimeout ends a WeCom call whose answer is dropped quickly.
const shortTimeout = 300 * time.Millisecond

func TestRepairIntents(t *testing.T) {
	t.Run("CreateTimedOutAfterApplying", func(t *testing.T) {
		// user/create is applied but its answer lost, and the read that should settle it fails
		// too: the intent stays open; the member's retry at once resolves it by reading.
		f := newFixture(t, shortTimeout)
		p := student("2021123456", "张三")
		f.sim.Inject("user/create", 1, wecomtest.Fault{Drop: true})
		f.sim.Inject("user/get", 1, wecomtest.Fault{ErrCode: -1})
		res, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if app.ErrorCode(err) != app.EUNAVAILABLE || res != nil {
			t.Fatalf("%+v %v", res, err)
		}
		f.member(p.UserID)
		if f.live(p.Number) != nil {
			t.Fatal("binding stored although the outcome was unknown")
		}
		f.wantIntents("")

		// A retry at once reads WeCom (never a second create) and finds the member.
		res, err = f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if err != nil || res.AlreadyBound == nil || res.AlreadyBound.Status != app.StatusPending || res.AlreadyBound.Mobile != "13800001234" {
			t.Fatalf("retry: %+v %v", res, err)
		}
		f.wantIntents("bound")
		if n := f.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create calls = %d", n)
		}
		if f.writes() != 1 {
			t.Fatalf("%d WeCom writes, want the one create", f.writes())
		}

		// Idempotent: nothing left to repair, nothing written.
		writes, reads := f.writes(), f.sim.CallCount("user/get")
		f.clock.advance(3 * time.Minute)
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 0 {
			t.Fatalf("repair: %d %v", n, err)
		}
		if f.writes() != writes || f.sim.CallCount("user/get") != reads {
			t.Fatal("a repair with nothing to do called WeCom")
		}
	})

	t.Run("CreateLandsLate", func(t *testing.T) {
		// The create times out and the read right after it finds nothing: WeCom lands the create
		// later. The intent stays open (not "failed", which would leave a member without a
		// binding) until a later read finds the member.
		f := newFixture(t, shortTimeout)
		p := student("2021123456", "张三")
		f.sim.Inject("user/create", 1, wecomtest.Fault{ApplyAfter: 2 * time.Second})
		_, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if app.ErrorCode(err) != app.EUNAVAILABLE || !strings.Contains(app.ErrorMessage(err), "请约 60 秒后") {
			t.Fatalf("bind: %v", err)
		}
		f.noMember(p.UserID)
		f.wantIntents("")
		// The repair reads again: nothing yet, and too early to conclude.
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 0 {
			t.Fatalf("early repair: %d %v", n, err)
		}
		f.wantIntents("")
		waitMember(t, f, p.UserID)
		f.clock.advance(30 * time.Second)
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 1 {
			t.Fatalf("repair: %d %v", n, err)
		}
		if b := f.live(p.Number); b == nil || b.Status != app.StatusPending || b.Mobile != "13800001234" {
			t.Fatalf("binding after repair: %+v", b)
		}
		f.wantIntents("bound")
		if n := f.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create calls = %d", n)
		}
	})

	t.Run("CreateLostBeforeApplying", func(t *testing.T) {
		// The request never reached WeCom: reads find no member, but only once WeCom can no
		// longer land it is the intent closed; the member's next submission creates it.
		f := newFixture(t, shortTimeout)
		p := student("2021123456", "张三")
		f.sim.Inject("user/create", 1, wecomtest.Fault{Drop: true, NotApplied: true})
		if _, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234"); app.ErrorCode(err) != app.EUNAVAILABLE {
			t.Fatal(err)
		}
		f.noMember(p.UserID)
		f.clock.advance(20 * time.Second)
		// A retry reads, finds nothing and is told the real wait; it creates nothing.
		_, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if app.ErrorCode(err) != app.EUNAVAILABLE || !strings.Contains(app.ErrorMessage(err), "请约 40 秒后") {
			t.Fatalf("early retry: %v", err)
		}
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 0 {
			t.Fatalf("early repair: %d %v", n, err)
		}
		f.clock.advance(41 * time.Second)
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 1 {
			t.Fatalf("repair: %d %v", n, err)
		}
		f.wantIntents("not_created")
		f.noMember(p.UserID)
		if n := f.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create calls = %d: the repair must never create", n)
		}
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 0 {
			t.Fatalf("second repair: %d %v", n, err)
		}
		if res, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234"); err != nil || res.Binding == nil {
			t.Fatalf("bind again: %+v %v", res, err)
		}
		f.wantIntents("not_created", "bound")
	})

	t.Run("CreateTimedOutSettledByReading", func(t *testing.T) {
		// The common case of a timeout: the read right after it finds the member.
		f := newFixture(t, shortTimeout)
		p := student("2021123456", "张三")
		f.sim.Inject("user/create", 1, wecomtest.Fault{Latency: time.Second})
		res, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234")
		if err != nil || res.Binding == nil || res.Binding.Status != app.StatusPending {
			t.Fatalf("%+v %v", res, err)
		}
		f.wantIntents("bound")
		if n := f.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create calls = %d", n)
		}
	})

	t.Run("NumberBoundMeanwhile", func(t *testing.T) {
		// A stale intent of a number that has a live binding is closed without asking WeCom.
		f := newFixture(t, 0)
		f.seed("2021123456", "张三", "13800001234", app.StatusActive)
		if err := f.db.CreateIntent(f.ctx, &app.Intent{Op: app.OpBind, Number: "2021123456", UserID: "2021123456",
			Mobile: "13800001234", Name: "张三", Type: "student", Department: 2, CreatedAt: f.clock.now()}); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(3 * time.Minute)
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 1 {
			t.Fatalf("repair: %d %v", n, err)
		}
		f.wantIntents("already_bound")
		if n := len(f.sim.Calls()); n != 0 {
			t.Fatalf("%d WeCom calls", n)
		}
	})

	t.Run("ReadFailsKeepsIntentOpen", func(t *testing.T) {
		// WeCom cannot be read during the repair: the intent stays open for the next run.
		f := newFixture(t, 0)
		if err := f.db.CreateIntent(f.ctx, &app.Intent{Op: app.OpBind, Number: "2021123456", UserID: "2021123456",
			Mobile: "13800001234", Name: "张三", Type: "student", Department: 2, CreatedAt: f.clock.now()}); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(3 * time.Minute)
		f.sim.Inject("user/get", 1, wecomtest.Fault{ErrCode: -1})
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 0 {
			t.Fatalf("repair: %d %v", n, err)
		}
		f.wantIntents("")
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 1 {
			t.Fatalf("next repair: %d %v", n, err)
		}
		f.wantIntents("not_created")
	})
}

// waitMember waits (in real time) until the simulator has the member userID.
func waitMember(t *testing.T, f *fixture, userID string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, ok := f.sim.Member(userID); ok {
			return
		}
	}
	t.Fatalf("member %s never appeared", userID)
}
