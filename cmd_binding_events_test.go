package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
)

// TestBindingGetEvents: `binding get KEY --json --events` prints the number's audit trail as
// `events`, oldest first, including the console's views with the admin's userid (CONTRACT §9);
// without --events there is no such field.
func TestBindingGetEvents(t *testing.T) {
	path := writeConfig(t, baseConfig(t))
	seedBindings(t, path)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, storeConfig(cfg), time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := &app.Service{Store: db, WeCom: stubWeCom{}}
	if _, err := svc.ViewPerson(ctx, &app.Admin{UserID: "helpdesk.li", Role: app.RoleViewer}, "20210001"); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	r := runCLI(t, "--config", path, "binding", "get", "13800000001", "--json", "--events")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	var got struct {
		Number string       `json:"number"`
		Events []*app.Event `json:"events"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if got.Number != "20210001" || len(got.Events) != 2 || got.Events[0].Kind != app.EventBound ||
		got.Events[1].Kind != app.EventAdminView || got.Events[1].Actor != app.ActorAdmin ||
		!strings.Contains(got.Events[1].Detail, "[admin helpdesk.li]") {
		t.Fatalf("events %s", r.stdout)
	}

	r = runCLI(t, "--config", path, "binding", "get", "20210001", "--json")
	if strings.Contains(r.stdout, `"events"`) {
		t.Errorf("events without --events:\n%s", r.stdout)
	}
	r = runCLI(t, "--config", path, "binding", "get", "20210001", "--events")
	if r.code != 0 || !strings.Contains(r.stdout, "admin.view") || !strings.Contains(r.stdout, "events (2)") {
		t.Errorf("text with --events: exit %d\n%s", r.code, r.stdout)
	}
}

// stubWeCom answers user/get with "no such member" and fails everything else.
type stubWeCom struct{ app.WeCom }

func (stubWeCom) GetUser(context.Context, string) (*app.Member, error) {
	return nil, &app.WeComError{Op: "user/get", Code: app.WeComUserNotFound}
}
