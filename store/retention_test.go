package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
)

func TestPurgeBindings(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		unbind := func(b *app.Binding, status app.Status) {
			t.Helper()
			_, err := db.UpdateBinding(ctx, b.ID, app.BindingUpdate{Status: &status},
				app.Event{Kind: app.EventUnbound, Actor: app.ActorAdmin})
			if err != nil {
				t.Fatal(err)
			}
		}
		old := mustCreate(t, db, newBinding("20250001"))
		oldMigrated := mustCreate(t, db, newBinding("20250002"))
		unbind(old, app.StatusUnbound)
		unbind(oldMigrated, app.StatusRebound)
		clk.Add(48 * time.Hour)
		recent := mustCreate(t, db, newBinding("20250003"))
		unbind(recent, app.StatusUnbound)
		live := mustCreate(t, db, newBinding("20250004"))
		clk.Add(time.Hour)
		cut := clk.Now().Add(-24 * time.Hour) // old ones were released 49 h ago, recent 1 h ago

		n, err := db.PurgeBindings(ctx, cut, true)
		wantEqual(t, "dry-run count", n, 2)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := db.FindBindingByID(ctx, old.ID); b.Mobile == "" {
			t.Fatal("dry run changed a binding")
		}
		n, err = db.PurgeBindings(ctx, cut, false)
		if err != nil || n != 2 {
			t.Fatalf("purge = %d, %v; want 2", n, err)
		}
		for _, tc := range []struct {
			b      *app.Binding
			purged bool
		}{{old, true}, {oldMigrated, true}, {recent, false}, {live, false}} {
			got, err := db.FindBindingByID(ctx, tc.b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if purged := got.Mobile == "" && got.Name == ""; purged != tc.purged {
				t.Errorf("%s: mobile %q name %q, purged=%v want %v", got.Number, got.Mobile, got.Name, purged, tc.purged)
			}
			if got.Number != tc.b.Number || got.UserID != tc.b.UserID {
				t.Errorf("%s: number/userid changed: %+v", tc.b.Number, got)
			}
			evs, err := db.FindEvents(ctx, tc.b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if last := evs[len(evs)-1]; (last.Kind == app.EventPurged) != tc.purged {
				t.Errorf("%s: last event %q", tc.b.Number, last.Kind)
			}
		}
		if n, err := db.PurgeBindings(ctx, cut, false); err != nil || n != 0 {
			t.Fatalf("second purge = %d, %v; want 0 (idempotent)", n, err)
		}
	})
}

func TestPurgeSMSCodes(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		for _, mobile := range []string{"13800000001", "13800000002", "13800000003"} {
			c := &app.SMSCode{Mobile: mobile, Purpose: "verify", Hash: "h", IP: "10.0.0.1", ExpiresAt: clk.Now().Add(5 * time.Minute)}
			if err := db.CreateSMSCode(ctx, c); err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Hour)
		}
		// Codes at t0, t0+1h, t0+2h; now t0+3h.
		n, err := db.ForgetSMSIPs(ctx, t0.Add(90*time.Minute), false)
		if err != nil || n != 2 {
			t.Fatalf("forget ips = %d, %v; want 2", n, err)
		}
		if n, _ := db.CountSMSCodesByIP(ctx, "10.0.0.1", t0); n != 1 {
			t.Fatalf("codes still holding the IP = %d, want 1", n)
		}
		if n, err := db.PurgeSMSCodes(ctx, t0.Add(30*time.Minute), true); err != nil || n != 1 {
			t.Fatalf("dry-run purge = %d, %v; want 1", n, err)
		}
		n, err = db.PurgeSMSCodes(ctx, t0.Add(30*time.Minute), false)
		if err != nil || n != 1 {
			t.Fatalf("purge = %d, %v; want 1", n, err)
		}
		if n, _ := db.CountSMSCodes(ctx, "13800000001", t0); n != 0 {
			t.Fatal("old code row still there")
		}
		if n, _ := db.CountSMSCodes(ctx, "13800000002", t0); n != 1 {
			t.Fatal("newer code row deleted")
		}
	})
}

func TestFinishedFlows(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		if err := db.FinishFlow(ctx, "flow-a", t0.Add(15*time.Minute)); err != nil {
			t.Fatal(err)
		}
		wantOneWinner(t, runConcurrently(10, func(int) error { return db.FinishFlow(ctx, "flow-b", t0.Add(time.Hour)) }))
		wantCode(t, db.FinishFlow(ctx, "flow-a", t0.Add(time.Hour)), app.ECONFLICT)
		for id, want := range map[string]bool{"flow-a": true, "flow-b": true, "flow-c": false} {
			if got, err := db.FlowFinished(ctx, id); err != nil || got != want {
				t.Errorf("FlowFinished(%s) = %v, %v; want %v", id, got, err, want)
			}
		}
		if n, err := db.PurgeFinishedFlows(ctx, t0.Add(30*time.Minute), false); err != nil || n != 1 {
			t.Fatalf("purge = %d, %v; want 1", n, err)
		}
		if got, _ := db.FlowFinished(ctx, "flow-a"); got {
			t.Fatal("expired record kept")
		}
	})
}
