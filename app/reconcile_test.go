package app_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/wecom"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// newService is an app.Service over a real SQLite store and the wecom client pointed at the
// wecomtest simulator.
func newService(t *testing.T) (*app.Service, *wecomtest.Server) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "w.db")}, time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sim := wecomtest.New("wwreconcile000001")
	t.Cleanup(sim.Close)
	wc, err := wecom.New(wecom.Config{CorpID: sim.CorpID(), AppSecret: sim.AppSecret(), ContactsSecret: sim.ContactsSecret(),
		AgentID: sim.AgentID(), APIBase: sim.URL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &app.Service{Store: db, WeCom: wc, BaseURL: "https://x.edu.cn"}, sim
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	svc, sim := newService(t)
	add := func(number, mobile string, inWeCom bool) {
		t.Helper()
		b := &app.Binding{Number: number, UserID: number, Mobile: mobile, Name: "n" + number, Type: "student", Department: 2, Status: app.StatusActive}
		if err := svc.Store.CreateBinding(ctx, b, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
			t.Fatal(err)
		}
		if inWeCom {
			if err := sim.AddMember(wecomtest.Member{UserID: number, Name: b.Name, Mobile: mobile, Department: []int64{2}, Status: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("20210001", "13800000001", true)
	add("20210002", "13800000002", false) // deleted in WeCom, callback lost
	if err := sim.AddMember(wecomtest.Member{UserID: "admin01", Name: "管理员", Mobile: "13900000000", Department: []int64{1}, Status: 1}); err != nil {
		t.Fatal(err)
	}

	d, err := svc.Reconcile(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Missing) != 1 || d.Missing[0].Number != "20210002" || len(d.Unbound) != 1 || d.Unbound[0] != "admin01" {
		t.Fatalf("drift = missing %v, unbound %v", d.Missing, d.Unbound)
	}
	if b, _ := svc.Store.FindLatestBinding(ctx, "20210002"); b.Status != app.StatusActive {
		t.Fatal("a report without --fix changed a binding")
	}

	if _, err := svc.Reconcile(ctx, true); err != nil {
		t.Fatal(err)
	}
	b, _ := svc.Store.FindLatestBinding(ctx, "20210002")
	if b.Status != app.StatusUnbound || b.Reason == "" {
		t.Fatalf("after fix: %+v", b)
	}
	d, err = svc.Reconcile(ctx, false)
	if err != nil || len(d.Missing) != 0 || len(d.Unbound) != 1 {
		t.Fatalf("after fix: %+v %v", d, err)
	}
	if _, ok := sim.Member("admin01"); !ok {
		t.Fatal("reconcile must never touch members it did not bind")
	}
}
