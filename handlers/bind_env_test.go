package handlers_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// withWeComTimeout sets the deadline of one WeCom call (token refresh and retry included).
func withWeComTimeout(d time.Duration) envOption { return func(c *envConfig) { c.wecomTimeout = d } }

// testClock is a controllable clock for app.Service.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// useClock makes the service's clock controllable, starting at the wall clock.
func (e *env) useClock() *testClock {
	c := &testClock{t: time.Now()}
	e.svc.Now = c.Now
	return c
}

// rawDB opens the env's database (SQLite file or MariaDB DSN) with database/sql.
func (e *env) rawDB() *sql.DB {
	e.t.Helper()
	driver := "mysql"
	if _, err := os.Stat(e.dbPath); err == nil {
		driver = "sqlite"
	}
	db, err := sql.Open(driver, e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = db.Close() })
	return db
}

// tally counts what is stored, on either engine.
type tally struct {
	Bindings, LiveBindings, Events, Intents, OpenIntents, SMSCodes int
}

func (e *env) tally() tally {
	e.t.Helper()
	db := e.rawDB()
	var t tally
	for _, q := range []struct {
		sql string
		dst *int
	}{
		{"SELECT COUNT(*) FROM bindings", &t.Bindings},
		{"SELECT COUNT(*) FROM bindings WHERE status IN ('pending','active')", &t.LiveBindings},
		{"SELECT COUNT(*) FROM binding_events", &t.Events},
		{"SELECT COUNT(*) FROM intents", &t.Intents},
		{"SELECT COUNT(*) FROM intents WHERE done_at IS NULL", &t.OpenIntents},
		{"SELECT COUNT(*) FROM sms_codes", &t.SMSCodes},
	} {
		if err := db.QueryRow(q.sql).Scan(q.dst); err != nil {
			e.t.Fatalf("%s: %v", q.sql, err)
		}
	}
	return t
}

// intentResults lists the result of every intent, oldest first ("" while open).
func (e *env) intentResults() []string {
	e.t.Helper()
	rows, err := e.rawDB().Query("SELECT result FROM intents ORDER BY id")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// wecomWrites are the simulator endpoints that change members.
var wecomWrites = []string{"user/create", "user/update", "user/delete", "batch/invite"}

// writeCalls counts the member-changing WeCom calls received so far.
func (e *env) writeCalls() int {
	n := 0
	for _, ep := range wecomWrites {
		n += e.sim.CallCount(ep)
	}
	return n
}

// callsExceptToken counts every WeCom call but gettoken.
func (e *env) callsExceptToken() int {
	n := 0
	for _, c := range e.sim.Calls() {
		if c.Endpoint != "gettoken" {
			n++
		}
	}
	return n
}

// seedBinding stores a binding of name (status pending, then moved to status) and its member in
// the simulator (not yet joined).
func (e *env) seedBinding(number, name, mobile string, status app.Status) *app.Binding {
	e.t.Helper()
	ctx := context.Background()
	b := &app.Binding{Number: number, UserID: number, Mobile: mobile, Name: name, Type: "student",
		Department: 2, Status: app.StatusPending}
	if err := e.db.CreateBinding(ctx, b, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.sim.AddMember(wecomtest.Member{UserID: number, Name: name, Mobile: mobile, Department: []int64{2}, Status: 4}); err != nil {
		e.t.Fatal(err)
	}
	if status != app.StatusPending {
		var err error
		b, err = e.db.UpdateBinding(ctx, b.ID, app.BindingUpdate{Status: app.Ptr(status)}, app.Event{Kind: app.EventActivated, Actor: app.ActorSystem})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return b
}

// liveBinding returns the live binding of number, or nil.
func (e *env) liveBinding(number string) *app.Binding {
	e.t.Helper()
	b, err := e.db.FindLiveBinding(context.Background(), "number", number)
	if app.ErrorCode(err) == app.ENOTFOUND {
		return nil
	} else if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// person registers a CAS account and returns a browser logged in as it, on the mobile form.
func (e *env) person(number, name, typ string) *member {
	e.t.Helper()
	e.cas.AddUser(number, "pw", name, typ)
	m := e.newMember()
	r := m.login(number)
	if r.status != http.StatusOK || !hasForm(string(r.body), "/bind/mobile", "mobile") {
		e.t.Fatalf("login %s: %d %s", number, r.status, r.body)
	}
	return m
}

// submitMobile posts the mobile form.
func (m *member) submitMobile(mobile string) response {
	m.e.t.Helper()
	return m.post("/bind/mobile", url.Values{"mobile": {mobile}})
}

// page is a response body as text.
func (r response) page() string { return string(r.body) }

// mustStatus fails the test unless r has status want.
func mustStatus(t testing.TB, what string, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d\n%s", what, r.status, want, r.body)
	}
}

// mustContain fails the test unless page holds every one of subs.
func mustContain(t testing.TB, what, page string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(page, s) {
			t.Fatalf("%s: page lacks %q\n%s", what, s, page)
		}
	}
}

// mustNotContain fails the test if page holds any of subs.
func mustNotContain(t testing.TB, what, page string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(page, s) {
			t.Fatalf("%s: page shows %q\n%s", what, s, page)
		}
	}
}

// cookieNamed returns the Set-Cookie of name in r, or in the redirect that led to r, or nil.
func cookieNamed(r response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	if r.via != nil {
		return cookieNamed(*r.via, name)
	}
	return nil
}

// liveCookie returns the cookie called name that r sets, ignoring one that r deletes.
func liveCookie(r response, name string) *http.Cookie {
	if c := cookieNamed(r, name); c != nil && c.Value != "" && c.MaxAge >= 0 {
		return c
	}
	return nil
}

func (t tally) String() string {
	return fmt.Sprintf("bindings=%d live=%d events=%d intents=%d open=%d sms=%d", t.Bindings, t.LiveBindings, t.Events, t.Intents, t.OpenIntents, t.SMSCodes)
}

// wecomtestMember is a member in department 2 as an admin would have imported it.
func wecomtestMember(userID, name, mobile string, status int) wecomtest.Member {
	return wecomtest.Member{UserID: userID, Name: name, Mobile: mobile, Department: []int64{2}, Status: status}
}
