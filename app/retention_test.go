package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store/storetest"
)

// TestPurge: one purge forgets each kind of expired personal data, a dry run before it counts
// the same without changing anything, and a second purge finds nothing.
func TestPurge(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)}
	db := storetest.Open(t, "sqlite", clock.now)
	svc := &app.Service{Store: db, SMS: &smsRecorder{}, Now: clock.now,
		SMSPolicy: app.SMSPolicy{Secret: []byte("k"), IPWindow: time.Hour},
		Retention: app.RetentionPolicy{UnboundAfter: 48 * time.Hour, SMSAfter: 24 * time.Hour}}
	b := &app.Binding{Number: "20260001", UserID: "20260001", Mobile: "13800000001", Name: "张三",
		Type: "student", Department: 2, Status: app.StatusPending}
	if err := db.CreateBinding(ctx, b, app.Event{Kind: app.EventBound, Actor: app.ActorMember}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateBinding(ctx, b.ID, app.BindingUpdate{Status: app.Ptr(app.StatusUnbound)},
		app.Event{Kind: app.EventUnbound, Actor: app.ActorMember}); err != nil {
		t.Fatal(err)
	}
	if err := svc.SendCode(ctx, "13800000002", app.PurposeVerify, "10.1.2.3"); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishFlow(ctx, "f1", clock.now().Add(15*time.Minute)); err != nil {
		t.Fatal(err)
	}
	clock.advance(72 * time.Hour)

	want := []app.PurgeCount{{Kind: "bindings", Count: 1}, {Kind: "sms_ips", Count: 1},
		{Kind: "sms_codes", Count: 1}, {Kind: "finished_flows", Count: 1}, {Kind: "admin_sessions", Count: 0}}
	for _, dry := range []bool{true, false} {
		got, err := svc.Purge(ctx, dry)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("dry=%v: %+v", dry, got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("dry=%v: %+v, want %+v", dry, got[i], want[i])
			}
		}
	}
	after, err := db.FindBindingByID(ctx, b.ID)
	if err != nil || after.Mobile != "" || after.Name != "" || after.Number != "20260001" {
		t.Fatalf("after purge: %+v, %v", after, err)
	}
	got, err := svc.Purge(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c.Count != 0 {
			t.Errorf("second purge: %+v", c)
		}
	}
}
