package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/wecom"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

const testJoinQR = "https://wecom.example/join-qrcode"

// fixture is an app.Service over a real SQLite store, the wecom client pointed at the wecomtest
// simulator, and a recording SMS provider, with a controllable clock.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	svc    *app.Service
	sim    *wecomtest.Server
	db     *store.DB
	dbPath string
	sms    *smsRecorder
	clock  *fakeClock
	flows  atomic.Int64 // flow ids handed out by flow, from any goroutine
}

// newFixture builds a fixture. WeCom calls time out after wecomTimeout (0: the client's default);
// a short one makes an injected Drop fault end quickly.
func newFixture(t *testing.T, wecomTimeout time.Duration) *fixture {
	t.Helper()
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: path}, clock.now, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sim := wecomtest.New("wwapptest00000001", wecomtest.WithJoinQRCodeURL(testJoinQR))
	t.Cleanup(sim.Close)
	log := slog.New(slog.DiscardHandler)
	wc, err := wecom.New(wecom.Config{CorpID: sim.CorpID(), AppSecret: sim.AppSecret(), ContactsSecret: sim.ContactsSecret(),
		AgentID: sim.AgentID(), APIBase: sim.URL(), Timeout: wecomTimeout}, log)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := app.NewIdentityPolicy("{{.Number}}", []app.IdentityRuleConfig{
		{Type: "student", Number: "^[0-9]{8,12}$", Department: 2, Label: "学生"},
		{Type: "staff", Department: 3, Label: "教职工"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &smsRecorder{}
	svc := &app.Service{Store: db, WeCom: wc, SMS: rec, Identity: policy, SMSPolicy: app.SMSPolicy{Secret: []byte("app-test-secret")},
		BaseURL: "https://x.edu.cn", Now: clock.now, Log: log}
	return &fixture{t: t, ctx: ctx, svc: svc, sim: sim, db: db, dbPath: path, sms: rec, clock: clock}
}

// student is a person the identity rules admit as a student: userid = number, department 2.
func student(number, name string) *app.Person {
	return &app.Person{Number: number, Name: name, Type: "student", UserID: number, Department: 2, Label: "学生"}
}

// seed stores a live binding of status for number and adds its member to the simulator
// (joined when active).
func (f *fixture) seed(number, name, mobile string, status app.Status) *app.Binding {
	f.t.Helper()
	b := &app.Binding{Number: number, UserID: number, Mobile: mobile, Name: name, Type: "student", Department: 2, Status: status}
	if err := f.db.CreateBinding(f.ctx, b, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
		f.t.Fatal(err)
	}
	memberStatus := 4
	if status == app.StatusActive {
		memberStatus = 1
	}
	if err := f.sim.AddMember(wecomtest.Member{UserID: number, Name: name, Mobile: mobile, Department: []int64{2}, Status: memberStatus}); err != nil {
		f.t.Fatal(err)
	}
	return b
}

// binding reads a binding by id.
func (f *fixture) binding(id int64) *app.Binding {
	f.t.Helper()
	b, err := f.db.FindBindingByID(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// live returns the live binding of number, or nil.
func (f *fixture) live(number string) *app.Binding {
	f.t.Helper()
	b, err := f.db.FindLiveBinding(f.ctx, "number", number)
	if app.ErrorCode(err) == app.ENOTFOUND {
		return nil
	} else if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// intentResults lists the result of every intent, oldest first ("" while open).
func (f *fixture) intentResults() []string {
	f.t.Helper()
	db, err := sql.Open("sqlite", f.dbPath)
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT result FROM intents ORDER BY id")
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) wantIntents(want ...string) {
	f.t.Helper()
	if got := f.intentResults(); !slices.Equal(got, append([]string{}, want...)) {
		f.t.Fatalf("intent results = %q, want %q", got, want)
	}
}

// writes counts the member-changing WeCom calls received so far.
func (f *fixture) writes() int {
	n := 0
	for _, ep := range []string{"user/create", "user/update", "user/delete", "batch/invite"} {
		n += f.sim.CallCount(ep)
	}
	return n
}

// member returns the simulator's member userID, failing the test when there is none.
func (f *fixture) member(userID string) wecomtest.Member {
	f.t.Helper()
	m, ok := f.sim.Member(userID)
	if !ok {
		f.t.Fatalf("no WeCom member %s", userID)
	}
	return m
}

func (f *fixture) noMember(userID string) {
	f.t.Helper()
	if _, ok := f.sim.Member(userID); ok {
		f.t.Fatalf("WeCom member %s exists", userID)
	}
}

// flow returns a new member flow, as a browser gets one at the start of each flow.
func (f *fixture) flow() app.Flow {
	return app.Flow{ID: fmt.Sprintf("flow-%d", f.flows.Add(1)), Expires: f.clock.now().Add(15 * time.Minute)}
}
