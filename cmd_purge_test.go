package main

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
)

// openConfigStore opens the store of the config at path with a clock.
func openConfigStore(t *testing.T, path string, now func() time.Time) *store.DB {
	t.Helper()
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), storeConfig(cfg), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestPurgeCommand(t *testing.T) {
	path := writeConfig(t, baseConfig(t))
	list := seedBindings(t, path) // created 2025-09-01
	ctx := context.Background()
	db := openConfigStore(t, path, func() time.Time { return time.Date(2025, 9, 2, 8, 0, 0, 0, time.UTC) })
	if _, err := db.UpdateBinding(ctx, list[0].ID, app.BindingUpdate{Status: app.Ptr(app.StatusUnbound)},
		app.Event{Kind: app.EventUnbound, Actor: app.ActorAdmin}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSMSCode(ctx, &app.SMSCode{Mobile: "13800000009", Purpose: app.PurposeVerify, Hash: "h", IP: "10.0.0.1",
		ExpiresAt: time.Date(2025, 9, 2, 8, 5, 0, 0, time.UTC), CreatedAt: time.Date(2025, 9, 2, 8, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	// Today is more than a year after the unbind: both the binding and the SMS row are due.
	r := runCLI(t, "--config", path, "purge", "--dry-run")
	want := "would purge 1 bindings\nwould purge 1 sms_ips\nwould purge 1 sms_codes\nwould purge 0 finished_flows\nwould purge 0 admin_sessions\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("purge --dry-run: exit %d\n%s\nwant\n%s\n%s", r.code, r.stdout, want, r.stderr)
	}
	r = runCLI(t, "--config", path, "purge")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "purged 1 bindings\n") {
		t.Fatalf("purge: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "--config", path, "binding", "get", "20210001", "--json")
	if r.code != 0 || strings.Contains(r.stdout, "13800000001") || strings.Contains(r.stdout, "张三") || !strings.Contains(r.stdout, `"status": "unbound"`) {
		t.Fatalf("purged binding: exit %d\n%s", r.code, r.stdout)
	}
	r = runCLI(t, "--config", path, "purge")
	if r.code != 0 || r.stdout != "purged 0 bindings\npurged 0 sms_ips\npurged 0 sms_codes\npurged 0 finished_flows\npurged 0 admin_sessions\n" {
		t.Fatalf("second purge: exit %d\n%s", r.code, r.stdout)
	}
}

// TestBindingListCSVFormula: a cell that a spreadsheet would run as a formula is written as text.
func TestBindingListCSVFormula(t *testing.T) {
	path := writeConfig(t, baseConfig(t))
	seedBindings(t, path)
	db := openConfigStore(t, path, time.Now)
	evil := &app.Binding{Number: "20219999", UserID: "20219999", Mobile: "13800009999", Name: `=HYPERLINK("http://evil","点我")`,
		Type: "student", Department: 2, Status: app.StatusPending}
	if err := db.CreateBinding(context.Background(), evil, app.Event{Kind: app.EventBound, Actor: app.ActorAdmin}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	r := runCLI(t, "--config", path, "binding", "list", "--csv")
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v\n%s", r.code, err, r.stdout)
	}
	for _, row := range rows {
		if row[0] == "20219999" && row[3] != `'=HYPERLINK("http://evil","点我")` {
			t.Fatalf("formula cell written as %q", row[3])
		}
	}
}
