package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// TestBindingUnbind: `binding unbind NUMBER` deletes the member in WeCom and marks the binding
// unbound with the reason and an admin audit event; a member already gone still unbinds; an
// unknown or released number exits 3; a WeCom failure changes nothing.
func TestBindingUnbind(t *testing.T) {
	sim := newSimulated(t)
	path := sim.path(t)
	list := seedBindings(t, path) // 20210001 active, T0042 pending
	if err := sim.wecom.AddMember(wecomtest.Member{UserID: "20210001", Name: "张三", Mobile: "13800000001", Department: []int64{2}, Status: 1}); err != nil {
		t.Fatal(err)
	}
	// T0042's member was already deleted in the admin console: user/delete answers 60111.

	// WeCom busy: nothing changes, exit non-zero.
	sim.wecom.Inject("user/delete", 1, wecomtest.Fault{ErrCode: -1})
	r := runCLI(t, "--config", path, "binding", "unbind", "20210001")
	if r.code == 0 || !strings.Contains(r.stderr, "user/delete") {
		t.Fatalf("WeCom busy: exit %d, stderr %q", r.code, r.stderr)
	}
	if b := bindingByID(t, path, list[0].ID); b.Status != app.StatusActive {
		t.Fatalf("binding after a failed delete: %s", b.Status)
	}
	if _, ok := sim.wecom.Member("20210001"); !ok {
		t.Fatal("member gone after a failed delete")
	}

	r = runCLI(t, "--config", path, "binding", "unbind", "20210001", "--reason", "毕业离校")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ok   20210001 unbound") {
		t.Fatalf("unbind: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, ok := sim.wecom.Member("20210001"); ok {
		t.Error("member still in WeCom")
	}
	b := bindingByID(t, path, list[0].ID)
	if b.Status != app.StatusUnbound || b.Reason != "毕业离校" {
		t.Errorf("binding %+v, want unbound with the reason", b)
	}
	evs := eventsOf(t, path, list[0].ID)
	if last := evs[len(evs)-1]; last.Kind != app.EventUnbound || last.Actor != app.ActorAdmin || !strings.Contains(last.Detail, "毕业离校") {
		t.Errorf("last event %+v", last)
	}

	// Member already gone in WeCom (60111): still unbound, with the default reason.
	r = runCLI(t, "--config", path, "binding", "unbind", "T0042")
	if r.code != 0 {
		t.Fatalf("unbind of a member gone in WeCom: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b := bindingByID(t, path, list[1].ID); b.Status != app.StatusUnbound || b.Reason != "unbound by admin" {
		t.Errorf("binding %+v", b)
	}
	var codes []int
	for _, c := range sim.wecom.Calls() {
		if c.Endpoint == "user/delete" {
			codes = append(codes, c.ErrCode)
		}
	}
	if len(codes) != 3 || codes[0] != -1 || codes[1] != 0 || codes[2] != 60111 {
		t.Errorf("user/delete answers %v, want [-1 0 60111]", codes)
	}

	// Released or unknown numbers: exit 3 with a clear message, no WeCom call.
	calls := len(sim.wecom.Calls())
	r = runCLI(t, "--config", path, "binding", "unbind", "20210001")
	if r.code != exitNotFound || !strings.Contains(r.stderr, `"20210001" has no live binding`) || !strings.Contains(r.stderr, "unbound") {
		t.Errorf("second unbind: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, "--config", path, "binding", "unbind", "99999999")
	if r.code != exitNotFound || !strings.Contains(r.stderr, `"99999999" has no live binding`) {
		t.Errorf("unknown number: exit %d, stderr %q", r.code, r.stderr)
	}
	if len(sim.wecom.Calls()) != calls {
		t.Error("WeCom was called for a number without a live binding")
	}

	if r := runCLI(t, "--config", path, "binding", "unbind"); r.code != exitUsage {
		t.Errorf("no number: exit %d", r.code)
	}
}

func openTestStore(t *testing.T, path string) *store.DB {
	t.Helper()
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), storeConfig(cfg), time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func bindingByID(t *testing.T, path string, id int64) *app.Binding {
	t.Helper()
	b, err := openTestStore(t, path).FindBindingByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func eventsOf(t *testing.T, path string, id int64) []*app.Event {
	t.Helper()
	evs, err := openTestStore(t, path).FindEvents(context.Background(), id)
	if err != nil || len(evs) == 0 {
		t.Fatalf("events of %d: %v %v", id, evs, err)
	}
	return evs
}
