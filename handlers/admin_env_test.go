package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// Console users of the admin tests.
const (
	opUser      = "op.zhang"  // admin.operators
	viewerUser  = "viewer.li" // admin.viewers
	outsider    = "teacher.wang"
	desktopUA   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
	wecomAppUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 wxwork/4.1.22 MicroMessenger/7.0.1"
	adminCookie = "wecampus_admin"
)

// newAdminEnv is an env whose console lists opUser as operator and viewerUser as viewer; both,
// and outsider (not listed), are WeCom members.
func newAdminEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := newEnv(t, append(opts, withLocalBaseURL())...)
	e.svc.Admins = app.AdminPolicy{Operators: []string{opUser}, Viewers: []string{viewerUser}}
	for i, u := range []string{opUser, viewerUser, outsider} {
		m := wecomtest.Member{UserID: u, Name: "职员" + u, Mobile: fmt.Sprintf("1390000000%d", i), Department: []int64{1}, Status: 1}
		if err := e.sim.AddMember(m); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// adminSignIn walks GET /admin → WeCom OAuth (302, CONTRACT §9's URL) → GET /admin?code&state
// with a code for userID, and returns that last answer.
func (m *member) adminSignIn(userID string) response {
	m.e.t.Helper()
	state := m.e.oauthLocation(m.get("/admin"), "/admin")
	return m.get("/admin?code=" + m.e.sim.IssueOAuthCode(userID) + "&state=" + state)
}

// newAdmin is a browser signed in to the console as userID, on the dashboard.
func (e *env) newAdmin(userID string) *member {
	e.t.Helper()
	m := e.newMember()
	r := m.adminSignIn(userID)
	expectStatus(e.t, "sign-in of "+userID, r, http.StatusSeeOther)
	if loc := r.header.Get("Location"); loc != "/admin" {
		e.t.Fatalf("sign-in of %s: Location %q, want /admin", userID, loc)
	}
	r = m.get("/admin")
	expectStatus(e.t, "dashboard of "+userID, r, http.StatusOK)
	return m
}

// cookie returns the Set-Cookie of name in r, or nil.
func setCookie(r response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// adminEvents returns the audit events of number, oldest first.
func (e *env) adminEvents(number string) []*app.Event {
	e.t.Helper()
	evs, err := e.db.FindEventsByNumber(context.Background(), number, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs
}

// hasEvent reports whether evs hold an event of kind by the admin actor whose detail names
// every one of subs.
func hasEvent(evs []*app.Event, kind string, subs ...string) bool {
	for _, ev := range evs {
		if ev.Kind != kind || ev.Actor != app.ActorAdmin {
			continue
		}
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(ev.Detail, s)
		}
		if ok {
			return true
		}
	}
	return false
}

// openIntent stores an open bind intent for number created age ago, with its member in WeCom
// when inWeCom (as if the process died between user/create and the binding insert).
func (e *env) openIntent(number, mobile string, age time.Duration, inWeCom bool) {
	e.t.Helper()
	in := &app.Intent{Op: app.OpBind, Number: number, UserID: number, Mobile: mobile, Name: "测试" + number,
		Type: "student", Department: 2, CreatedAt: time.Now().Add(-age)}
	if err := e.db.CreateIntent(context.Background(), in); err != nil {
		e.t.Fatal(err)
	}
	if inWeCom {
		if err := e.sim.AddMember(wecomtest.Member{UserID: number, Name: in.Name, Mobile: mobile, Department: []int64{2}, Status: 4}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// reasonForm is a console action's form with a reason.
func reasonForm(reason string) url.Values { return url.Values{"reason": {reason}} }
