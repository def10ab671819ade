package main

import (
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// TestReconcile: drift is printed with exit 4; --fix marks the binding of a member gone from
// WeCom unbound and leaves members without a binding alone; then there is no drift (exit 0)
// except the reported unbound member.
func TestReconcile(t *testing.T) {
	sim := newSimulated(t)
	path := sim.path(t)
	list := seedBindings(t, path) // 20210001 active, T0042 pending
	if err := sim.wecom.AddMember(wecomtest.Member{UserID: "20210001", Name: "张三", Mobile: "13800000001", Department: []int64{2}, Status: 1}); err != nil {
		t.Fatal(err)
	}
	// T0042's member is gone from WeCom; admin01 was added by hand in the console.
	if err := sim.wecom.AddMember(wecomtest.Member{UserID: "admin01", Name: "管理员", Mobile: "13900000009", Department: []int64{1}, Status: 1}); err != nil {
		t.Fatal(err)
	}

	r := runCLI(t, "--config", path, "reconcile")
	if r.code != exitDrift || !strings.Contains(r.stdout, "missing T0042") || !strings.Contains(r.stdout, "unbound userid=admin01") {
		t.Fatalf("reconcile: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b := bindingByID(t, path, list[1].ID); b.Status != app.StatusPending {
		t.Fatalf("a report changed the binding: %s", b.Status)
	}

	r = runCLI(t, "--config", path, "reconcile", "--fix")
	if r.code != exitDrift || !strings.Contains(r.stdout, "fixed   T0042") {
		t.Fatalf("reconcile --fix: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b := bindingByID(t, path, list[1].ID); b.Status != app.StatusUnbound {
		t.Fatalf("after --fix: %s", b.Status)
	}
	if _, ok := sim.wecom.Member("admin01"); !ok {
		t.Fatal("reconcile deleted a member it did not bind")
	}

	r = runCLI(t, "--config", path, "reconcile")
	if r.code != exitDrift || strings.Contains(r.stdout, "missing T0042") || !strings.Contains(r.stdout, "drift: 0 missing, 1 unbound") {
		t.Fatalf("after --fix: exit %d\n%s", r.code, r.stdout)
	}
}

// TestReconcileNoDrift: every live binding has its member and every member its binding: exit 0.
func TestReconcileNoDrift(t *testing.T) {
	sim := newSimulated(t)
	path := sim.path(t)
	seedBindings(t, path)
	for _, m := range []wecomtest.Member{
		{UserID: "20210001", Name: "张三", Mobile: "13800000001", Department: []int64{2}, Status: 1},
		{UserID: "T0042", Name: "李四", Mobile: "13800000042", Department: []int64{3}, Status: 4},
	} {
		if err := sim.wecom.AddMember(m); err != nil {
			t.Fatal(err)
		}
	}
	r := runCLI(t, "--config", path, "reconcile")
	if r.code != 0 || !strings.Contains(r.stdout, "ok   no drift") {
		t.Fatalf("reconcile: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
