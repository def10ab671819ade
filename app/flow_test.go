package app_test

import (
	"errors"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

func TestFinishedFlow(t *testing.T) {
	t.Run("Bind", func(t *testing.T) {
		f := newFixture(t, 0)
		p := student("2021123456", "张三")
		fl := f.flow()
		res, err := f.svc.Bind(f.ctx, fl, p, "13800001234")
		if err != nil || res.Binding == nil {
			t.Fatalf("bind: %+v %v", res, err)
		}
		if done, err := f.db.FlowFinished(f.ctx, fl.ID); err != nil || !done {
			t.Fatalf("flow finished = %v, %v after binding", done, err)
		}

		// The same flow again: the finished state, nothing written.
		res, err = f.svc.Bind(f.ctx, fl, p, "13900001234")
		if err != nil || res.AlreadyBound == nil || res.AlreadyBound.Mobile != "13800001234" {
			t.Fatalf("replayed bind: %+v %v", res, err)
		}
		// Unbound since: the replay is refused, and the number is not bound again.
		if _, err := f.svc.AdminUnbind(f.ctx, p.Number, "test"); err != nil {
			t.Fatal(err)
		}
		writes := f.writes()
		if _, err := f.svc.Bind(f.ctx, fl, p, "13800001234"); !errors.Is(err, app.ErrFlowFinished) || app.ErrorCode(err) != app.ECONFLICT {
			t.Fatalf("replay after unbind: %v, want ECONFLICT with ErrFlowFinished", err)
		}
		if _, err := f.svc.Rebind(f.ctx, fl, p, 1, "13800001234", "123456"); !errors.Is(err, app.ErrFlowFinished) {
			t.Fatalf("rebind in a finished flow: %v", err)
		}
		if err := f.svc.SendRebindCode(f.ctx, fl, p, 1, "13800001234", "10.0.0.1"); !errors.Is(err, app.ErrFlowFinished) {
			t.Fatalf("rebind code in a finished flow: %v", err)
		}
		if f.live(p.Number) != nil || f.writes() != writes || f.sms.count() != 0 {
			t.Fatalf("a finished flow wrote: live %v, writes %d -> %d, sms %d", f.live(p.Number), writes, f.writes(), f.sms.count())
		}

		// A new flow binds again.
		if res, err := f.svc.Bind(f.ctx, f.flow(), p, "13800001234"); err != nil || res.Binding == nil {
			t.Fatalf("bind in a new flow: %+v %v", res, err)
		}
	})

	t.Run("Unbind", func(t *testing.T) {
		f := newFixture(t, 0)
		b := f.seed("2021123456", "张三", "13800001234", app.StatusActive)
		fl := f.flow()
		if _, err := f.svc.SendUnbindCode(f.ctx, fl, b.UserID, "10.0.0.1"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Unbind(f.ctx, fl, b.UserID, f.sms.last(t).code); err != nil {
			t.Fatal(err)
		}
		// Bound again (a new flow), then the old unbind flow is replayed: no code, no delete.
		if _, err := f.svc.Bind(f.ctx, f.flow(), student("2021123456", "张三"), "13800001234"); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(2 * time.Minute) // past the SMS cooldown
		sent, deletes := f.sms.count(), f.sim.CallCount("user/delete")
		if _, err := f.svc.SendUnbindCode(f.ctx, fl, b.UserID, "10.0.0.1"); !errors.Is(err, app.ErrFlowFinished) {
			t.Fatalf("unbind code in a finished flow: %v", err)
		}
		if _, err := f.svc.Unbind(f.ctx, fl, b.UserID, "123456"); !errors.Is(err, app.ErrFlowFinished) {
			t.Fatalf("unbind in a finished flow: %v", err)
		}
		if f.sms.count() != sent || f.sim.CallCount("user/delete") != deletes || f.live("2021123456") == nil {
			t.Fatal("a finished unbind flow had an effect")
		}
	})

	t.Run("ErrNoID", func(t *testing.T) {
		f := newFixture(t, 0)
		_, err := f.svc.Bind(f.ctx, app.Flow{}, student("2021123456", "张三"), "13800001234")
		if app.ErrorCode(err) != app.EINTERNAL || f.writes() != 0 {
			t.Fatalf("bind without a flow id: %v, writes %d", err, f.writes())
		}
	})
}
