package app_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// 张三 moved from a 预科 number to a 本科 number and keeps his mobile.
const (
	oldNumber  = "2019000001"
	newNumber  = "2023000001"
	heldMobile = "13800001234"
)

// startRebind seeds 张三's earlier active binding, checks that binding the new number with the
// held mobile offers 换绑, and sends the code. It returns the new person, the old binding and
// the code.
func startRebind(t *testing.T, f *fixture) (*app.Person, *app.Binding, string) {
	t.Helper()
	old := f.seed(oldNumber, "张三", heldMobile, app.StatusActive)
	p := student(newNumber, "张三")
	res, err := f.svc.Bind(f.ctx, f.flow(), p, heldMobile)
	if err != nil || res.Conflict == nil || res.Conflict.RebindFrom != old.ID {
		t.Fatalf("bind with the held mobile: %+v %v", res, err)
	}
	if err := f.svc.SendRebindCode(f.ctx, f.flow(), p, old.ID, res.Conflict.Mobile, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	sent := f.sms.last(t)
	if sent.mobile != heldMobile || sent.purpose != app.PurposeRebind {
		t.Fatalf("sent %+v", sent)
	}
	return p, old, sent.code
}

// wantRebound checks the end state of a completed 换绑 of old and returns the new binding.
func wantRebound(t *testing.T, f *fixture, old *app.Binding) *app.Binding {
	t.Helper()
	nb := f.live(newNumber)
	if nb == nil || nb.Mobile != heldMobile || nb.Status != app.StatusPending {
		t.Fatalf("new binding %+v", nb)
	}
	ob := f.binding(old.ID)
	if ob.Status != app.StatusRebound || ob.ReboundTo != nb.ID || !strings.Contains(ob.Reason, newNumber) {
		t.Fatalf("old binding %+v", ob)
	}
	f.noMember(oldNumber)
	if m := f.member(newNumber); m.Mobile != heldMobile || m.Status != 4 {
		t.Fatalf("new member %+v", m)
	}
	evs, err := f.svc.Events(f.ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := 0
	for _, ev := range evs {
		if ev.Kind == app.EventRebound {
			kinds++
		}
	}
	if kinds != 2 { // released, then linked to the new binding
		t.Fatalf("%d %s events on the old binding: %+v", kinds, app.EventRebound, evs)
	}
	return nb
}

func TestRebind(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := newFixture(t, 0)
		p, old, code := startRebind(t, f)
		res, err := f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, code)
		if err != nil || res.Binding == nil {
			t.Fatalf("%+v %v", res, err)
		}
		nb := wantRebound(t, f, old)
		if res.Binding.ID != nb.ID || res.Binding.Label != "学生" || !strings.HasPrefix(res.QRCodeURL, testJoinQR) {
			t.Fatalf("result %+v", res)
		}
		f.wantIntents("bound")
		// A second click after success shows the binding; the code is not checked again.
		res, err = f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, code)
		if err != nil || res.AlreadyBound == nil || res.AlreadyBound.ID != nb.ID {
			t.Fatalf("second click: %+v %v", res, err)
		}
	})

	t.Run("ErrWrongCode", func(t *testing.T) {
		f := newFixture(t, 0)
		p, old, code := startRebind(t, f)
		wrong := "000000"
		if code == wrong {
			wrong = "000001"
		}
		res, err := f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, wrong)
		if app.ErrorCode(err) != app.EINVALID || res != nil || errors.Is(err, app.ErrRebindPending) {
			t.Fatalf("%+v %v", res, err)
		}
		if f.writes() != 0 || f.binding(old.ID).Status != app.StatusActive {
			t.Fatal("a wrong code changed something")
		}
		f.wantIntents()
	})

	t.Run("ErrNotOwnBinding", func(t *testing.T) {
		f := newFixture(t, 0)
		old := f.seed(oldNumber, "李四", heldMobile, app.StatusActive)
		p := student(newNumber, "张三")
		if err := f.svc.SendRebindCode(f.ctx, f.flow(), p, old.ID, heldMobile, ""); app.ErrorCode(err) != app.EFORBIDDEN {
			t.Fatalf("code for another person's binding: %v", err)
		}
		if _, err := f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, "123456"); app.ErrorCode(err) != app.EFORBIDDEN {
			t.Fatalf("rebind of another person's binding: %v", err)
		}
		if f.sms.count() != 0 || f.writes() != 0 {
			t.Fatal("something was sent or written")
		}
	})

	t.Run("CreateFailsAfterReleaseThenRetry", func(t *testing.T) {
		// The old member is released, then WeCom refuses the create: the 换绑 stays recorded and
		// a retry without a code finishes it.
		f := newFixture(t, 0)
		p, old, code := startRebind(t, f)
		f.sim.Inject("user/create", 1, wecomtest.Fault{ErrCode: -1})
		res, err := f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, code)
		if app.ErrorCode(err) != app.EUNAVAILABLE || !errors.Is(err, app.ErrRebindPending) || res != nil {
			t.Fatalf("%+v %v", res, err)
		}
		if app.ErrorMessage(err) == "" || strings.Contains(app.ErrorMessage(err), "rebind") {
			t.Fatalf("member-facing message %q", app.ErrorMessage(err))
		}
		if b := f.binding(old.ID); b.Status != app.StatusRebound {
			t.Fatalf("old binding %+v: its member is released", b)
		}
		f.noMember(oldNumber)
		f.wantIntents("")
		res, err = f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, "")
		if err != nil || res.Binding == nil {
			t.Fatalf("retry: %+v %v", res, err)
		}
		wantRebound(t, f, old)
		f.wantIntents("bound")
	})

	t.Run("DeleteFailsThenRetry", func(t *testing.T) {
		f := newFixture(t, 0)
		p, old, code := startRebind(t, f)
		f.sim.Inject("user/delete", 1, wecomtest.Fault{ErrCode: 45009})
		_, err := f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, code)
		if app.ErrorCode(err) != app.EUNAVAILABLE || !errors.Is(err, app.ErrRebindPending) {
			t.Fatalf("%v", err)
		}
		if b := f.binding(old.ID); b.Status != app.StatusActive {
			t.Fatalf("old binding %+v: its member was not released", b)
		}
		f.member(oldNumber)
		if _, err := f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, ""); err != nil {
			t.Fatalf("retry: %v", err)
		}
		wantRebound(t, f, old)
	})
}

func TestRepairRebind(t *testing.T) {
	t.Run("AbandonedAfterRelease", func(t *testing.T) {
		// The member leaves after the old member was released and the create failed: the repair
		// finishes the 换绑 they confirmed with a code.
		f := newFixture(t, 0)
		p, old, code := startRebind(t, f)
		f.sim.Inject("user/create", 1, wecomtest.Fault{ErrCode: -1})
		if _, err := f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, code); !errors.Is(err, app.ErrRebindPending) {
			t.Fatal(err)
		}
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 0 {
			t.Fatalf("repair of a fresh intent: %d %v", n, err)
		}
		f.clock.advance(3 * time.Minute)
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 1 {
			t.Fatalf("repair: %d %v", n, err)
		}
		wantRebound(t, f, old)
		f.wantIntents("bound")
		writes := f.writes()
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 0 || f.writes() != writes {
			t.Fatalf("second repair: %d %v, %d writes", n, err, f.writes()-writes)
		}
	})

	t.Run("AbandonedBeforeRelease", func(t *testing.T) {
		// The old member was never released: the repair abandons the 换绑, nothing changes.
		f := newFixture(t, 0)
		p, old, code := startRebind(t, f)
		f.sim.Inject("user/delete", 1, wecomtest.Fault{ErrCode: -1})
		if _, err := f.svc.Rebind(f.ctx, f.flow(), p, old.ID, heldMobile, code); !errors.Is(err, app.ErrRebindPending) {
			t.Fatal(err)
		}
		f.clock.advance(3 * time.Minute)
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 1 {
			t.Fatalf("repair: %d %v", n, err)
		}
		f.wantIntents("not_released")
		if b := f.binding(old.ID); b.Status != app.StatusActive || b.ReboundTo != 0 {
			t.Fatalf("old binding %+v", b)
		}
		f.member(oldNumber)
		f.noMember(newNumber)
		if n, err := f.svc.RepairIntents(f.ctx); err != nil || n != 0 {
			t.Fatalf("second repair: %d %v", n, err)
		}
	})
}
