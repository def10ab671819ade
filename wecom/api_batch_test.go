package wecom_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// TestClientDeleteUsers: user/batchdelete with the contacts token, all or nothing, at most 200
// userids, never resent after a lost answer, counted in the metrics.
func TestClientDeleteUsers(t *testing.T) {
	f := newAPIFixture(t, nil)
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		f.addMember(t, wecomtest.Member{UserID: id, Mobile: "1380000000" + fmt.Sprint(len(f.sim.Members()))})
	}
	if err := f.c.DeleteUsers(ctx); err != nil || len(f.sim.Calls()) != 0 {
		t.Fatalf("no userids: %v, %d calls", err, len(f.sim.Calls()))
	}
	many := make([]string, 201)
	if err := f.c.DeleteUsers(ctx, many...); err == nil || len(f.sim.Calls()) != 0 {
		t.Fatalf("201 userids: %v, %d calls", err, len(f.sim.Calls()))
	}
	err := f.c.DeleteUsers(ctx, "a", "ghost")
	if we := apiWeComError(t, err); we.Code != app.WeComUserNotFound || we.Op != "user/batchdelete" {
		t.Fatalf("with an unknown userid: %v", err)
	}
	if n := len(f.sim.Members()); n != 3 {
		t.Fatalf("%d members left after a refused batch", n)
	}
	if err := f.c.DeleteUsers(ctx, "a", "B"); err != nil {
		t.Fatal(err)
	}
	if m := f.sim.Members(); len(m) != 1 || m[0].UserID != "c" {
		t.Fatalf("members left: %v", m)
	}
	f.sim.Inject("user/batchdelete", 1, wecomtest.Fault{Reset: true})
	if we := apiWeComError(t, f.c.DeleteUsers(ctx, "c")); !we.Unknown {
		t.Fatalf("lost answer: %v", we)
	}
	var bodies []string
	for _, c := range f.sim.Calls() {
		if c.Endpoint == "user/batchdelete" {
			if c.Secret != wecomtest.SecretContacts {
				t.Errorf("called with the %s token", c.Secret)
			}
			bodies = append(bodies, string(c.Body))
		}
	}
	if len(bodies) != 3 {
		t.Fatalf("%d user/batchdelete calls, want 3 (a write is never resent)", len(bodies))
	}
	var body struct {
		UserIDList []string `json:"useridlist"`
	}
	if err := json.Unmarshal([]byte(bodies[1]), &body); err != nil || len(body.UserIDList) != 2 || body.UserIDList[1] != "B" {
		t.Fatalf("body %s: %v", bodies[1], err)
	}
	if n := apiCounter(t, f.reg, "user/batchdelete", "60111"); n != 1 {
		t.Errorf("metric errcode 60111 = %v", n)
	}
	if n := apiCounter(t, f.reg, "user/batchdelete", "transport"); n != 1 {
		t.Errorf("metric transport = %v", n)
	}
}
