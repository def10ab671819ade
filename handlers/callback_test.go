package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

// Official vector V1 (WECOM.md §5.6): the URL verification GET end to end.
const (
	v1Token   = "QDG6eK"
	v1Key     = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
	v1Corp    = "wx5823bf96d3bd56c7"
	v1Sig     = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
	v1TS      = "1409659589"
	v1Nonce   = "263014780"
	v1EchoStr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
	v1Plain   = "1616140317555161061"
)

func TestCallbackVerifyOfficialVector(t *testing.T) {
	e := newEnv(t, withAppCallback(v1Corp, v1Token, v1Key))

	t.Run("OK", func(t *testing.T) {
		q := url.Values{"msg_signature": {v1Sig}, "timestamp": {v1TS}, "nonce": {v1Nonce}, "echostr": {v1EchoStr}}.Encode()
		for _, esc := range []string{"%2F", "%2B", "%3D"} {
			if !strings.Contains(q, esc) {
				t.Fatalf("query %s: echostr not URL-encoded on the wire (%s)", q, esc)
			}
		}
		r := e.do(http.MethodGet, "/wecom/callback", q, nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d, body %q", r.status, r.body)
		}
		if string(r.body) != v1Plain {
			t.Errorf("body %q, want exactly %q", r.body, v1Plain)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q", ct)
		}
		// The timestamp is from 2014: GET verification is exempt from the replay window.
	})
	t.Run("ErrPlusNotEscaped", func(t *testing.T) {
		// A raw '+' in a query means a space: the echostr no longer matches its signature.
		q := "msg_signature=" + v1Sig + "&timestamp=" + v1TS + "&nonce=" + v1Nonce + "&echostr=" +
			strings.NewReplacer("/", "%2F", "=", "%3D").Replace(v1EchoStr)
		if r := e.do(http.MethodGet, "/wecom/callback", q, nil); r.status != http.StatusForbidden {
			t.Errorf("status %d, want 403", r.status)
		}
	})
	t.Run("ErrOtherRoute", func(t *testing.T) {
		// The contacts event server has its own token: the app's signature is refused there.
		q := url.Values{"msg_signature": {v1Sig}, "timestamp": {v1TS}, "nonce": {v1Nonce}, "echostr": {v1EchoStr}}.Encode()
		if r := e.do(http.MethodGet, "/wecom/contacts", q, nil); r.status != http.StatusForbidden {
			t.Errorf("status %d, want 403", r.status)
		}
	})
}

func TestCallbackVerifyRoundTrip(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/wecom/callback", "/wecom/contacts"} {
		t.Run(path, func(t *testing.T) {
			codec := e.wecomApp
			if path == "/wecom/contacts" {
				codec = e.wecomContacts
			}
			ts, nonce := "1700000000", e.nextNonce()
			echo, sig, err := codec.EncryptEcho("8806735517298432519", ts, nonce)
			if err != nil {
				t.Fatal(err)
			}
			q := url.Values{"msg_signature": {sig}, "timestamp": {ts}, "nonce": {nonce}, "echostr": {echo}}.Encode()
			r := e.do(http.MethodGet, path, q, nil)
			if r.status != http.StatusOK || string(r.body) != "8806735517298432519" {
				t.Errorf("status %d body %q", r.status, r.body)
			}
		})
	}
}

func TestContactsRouteAbsentWithoutCodec(t *testing.T) {
	e := newEnv(t, withoutContacts())
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if r := e.do(m, "/wecom/contacts", "msg_signature=a&timestamp=1&nonce=2&echostr=x", []byte("<xml/>")); r.status != http.StatusNotFound {
			t.Errorf("%s /wecom/contacts: status %d, want 404", m, r.status)
		}
	}
}

// TestCallbackEvents drives each kind of delivery through HTTP, the codec, app.Service and the
// SQLite store, and checks the answer and the effects (CONTRACT §5).
func TestCallbackEvents(t *testing.T) {
	const (
		number = "2021123456"
		userID = "2021123456"
		mobile = "13800001234"
	)
	type check func(t *testing.T, e *env, b *app.Binding, r response)

	// reply expects an encrypted passive text reply to userID containing every want.
	reply := func(want ...string) check {
		return func(t *testing.T, e *env, b *app.Binding, r response) {
			t.Helper()
			if r.status != http.StatusOK || len(r.body) == 0 {
				t.Fatalf("status %d body %q, want 200 with a reply", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
				t.Errorf("Content-Type %q", ct)
			}
			x := e.openReply(e.wecomApp, r.body)
			if x.ToUserName != userID || x.FromUserName != testCorpID || x.MsgType != "text" {
				t.Errorf("reply header %+v", x)
			}
			for _, w := range want {
				if !strings.Contains(x.Content, w) {
					t.Errorf("reply %q lacks %q", x.Content, w)
				}
			}
		}
	}
	// empty expects 200 with an empty body.
	empty := func(t *testing.T, e *env, b *app.Binding, r response) {
		t.Helper()
		if r.status != http.StatusOK || len(r.body) != 0 {
			t.Fatalf("status %d body %q, want 200 and an empty body", r.status, r.body)
		}
	}
	// unchanged expects the binding as created and no message.
	unchanged := func(t *testing.T, e *env, b *app.Binding, r response) {
		t.Helper()
		got := e.binding(b.ID)
		if got.Status != b.Status || got.UserID != b.UserID || got.Reason != b.Reason {
			t.Errorf("binding changed: %+v -> %+v", b, got)
		}
		if msgs := e.deliverOutbox(); len(msgs) != 0 {
			t.Errorf("messages sent: %+v", msgs)
		}
	}
	// activated expects the binding active and exactly one welcome message to the member.
	activated := func(t *testing.T, e *env, b *app.Binding, r response) {
		t.Helper()
		if got := e.binding(b.ID); got.Status != app.StatusActive {
			t.Errorf("status %s, want active", got.Status)
		}
		msgs := e.deliverOutbox()
		if len(msgs) != 1 {
			t.Fatalf("%d messages, want one welcome: %+v", len(msgs), msgs)
		}
		if msgs[0].ToUser != b.UserID || !strings.Contains(msgs[0].Content, "欢迎") || !strings.Contains(msgs[0].Content, b.Number) {
			t.Errorf("welcome %+v", msgs[0])
		}
		if again := e.deliverOutbox(); len(again) != 1 {
			t.Errorf("outbox sent again: %d messages", len(again))
		}
	}
	all := func(cs ...check) check {
		return func(t *testing.T, e *env, b *app.Binding, r response) {
			t.Helper()
			for _, c := range cs {
				c(t, e, b, r)
			}
		}
	}
	now := time.Now().Unix()
	text := func(content string) []*app.Inbound {
		return []*app.Inbound{{FromUser: userID, MsgType: "text", Content: content, MsgID: "4561255354251345929", AgentID: "1000002"}}
	}
	event := func(name, key string) []*app.Inbound {
		return []*app.Inbound{{FromUser: userID, MsgType: "event", Event: name, EventKey: key, AgentID: "1000002"}}
	}
	contact := func(channel string, in app.Inbound) *app.Inbound {
		in.Channel, in.FromUser, in.MsgType, in.Event = channel, "sys", "event", "change_contact"
		return &in
	}
	// The help text links every page and names the help desk (CONTRACT §7).
	links := []string{testBaseURL + "/bind", testBaseURL + "/verify", testBaseURL + "/unbind", testBaseURL + "/me", testHelpContact}

	tests := []struct {
		name   string
		status app.Status     // of the binding created first
		send   []*app.Inbound // delivered in order; the last answer is checked
		check  check
	}{
		{"Text绑定", app.StatusPending, text("我要绑定"), all(reply(testBaseURL+"/bind"), unchanged)},
		{"Text解绑", app.StatusActive, text("解绑"), all(reply(testBaseURL+"/unbind"), unchanged)},
		{"Text验证", app.StatusPending, text("验证"), reply(testBaseURL + "/verify")},
		{"Text帮助", app.StatusPending, text("帮助"), reply(links...)},
		{"Text换绑", app.StatusActive, text("怎么换绑"), all(reply(testBaseURL+"/bind", "预科转本科", "原学号/工号的企业微信账号将被删除"), unchanged)},
		{"TextOther", app.StatusPending, text("你好"), all(reply(links...), unchanged)},
		{"ClickHelp", app.StatusPending, event("click", "HELP"), all(reply(links...), unchanged)},
		{"ClickOther", app.StatusPending, event("click", "MY_BINDING"), all(empty, unchanged)},
		{"View", app.StatusPending, event("view", testBaseURL+"/me"), all(empty, unchanged)},
		{"EnterAgent", app.StatusPending, event("enter_agent", ""), all(empty, unchanged)},
		{"Unsubscribe", app.StatusActive, event("unsubscribe", ""), all(empty, unchanged)},
		{"UnknownEvent", app.StatusPending, event("some_future_event", "x"), all(empty, unchanged)},
		{"SubscribeActivates", app.StatusPending, event("subscribe", ""), all(empty, activated)},
		{"UpdateUserStatus1Activates", app.StatusPending,
			[]*app.Inbound{contact(app.ChannelContacts, app.Inbound{ChangeType: "update_user", UserID: userID, Status: 1})},
			all(empty, activated)},
		{"UpdateUserStatus1OnAppCallback", app.StatusPending,
			[]*app.Inbound{contact(app.ChannelApp, app.Inbound{ChangeType: "update_user", UserID: userID, Status: 1})},
			all(empty, activated)},
		{"SubscribeAndUpdateUserOneWelcome", app.StatusPending,
			[]*app.Inbound{
				{FromUser: userID, MsgType: "event", Event: "subscribe", AgentID: "1000002"},
				contact(app.ChannelContacts, app.Inbound{ChangeType: "update_user", UserID: userID, Status: 1, CreateTime: now + 1}),
			},
			all(empty, activated)},
		{"UpdateUserThenSubscribeOneWelcome", app.StatusPending,
			[]*app.Inbound{
				contact(app.ChannelContacts, app.Inbound{ChangeType: "update_user", UserID: userID, Status: 1}),
				{FromUser: userID, MsgType: "event", Event: "subscribe", AgentID: "1000002", CreateTime: now + 1},
			},
			all(empty, activated)},
		{"UpdateUserNewUserID", app.StatusActive,
			[]*app.Inbound{contact(app.ChannelContacts, app.Inbound{ChangeType: "update_user", UserID: userID, NewUserID: "zhangsan2021"})},
			func(t *testing.T, e *env, b *app.Binding, r response) {
				empty(t, e, b, r)
				if got := e.binding(b.ID); got.UserID != "zhangsan2021" || got.Status != app.StatusActive {
					t.Errorf("binding %+v, want userid zhangsan2021 and still active", got)
				}
			}},
		{"DeleteUserUnbinds", app.StatusActive,
			[]*app.Inbound{contact(app.ChannelContacts, app.Inbound{ChangeType: "delete_user", UserID: userID})},
			func(t *testing.T, e *env, b *app.Binding, r response) {
				empty(t, e, b, r)
				got := e.binding(b.ID)
				if got.Status != app.StatusUnbound || got.Reason != "deleted in WeCom" {
					t.Errorf("binding %s %q, want unbound, deleted in WeCom", got.Status, got.Reason)
				}
			}},
		{"TextOnContactsNoEffect", app.StatusPending,
			[]*app.Inbound{{Channel: app.ChannelContacts, FromUser: userID, MsgType: "text", Content: "绑定", MsgID: "1"}},
			all(empty, unchanged)},
		{"SubscribeOnContactsNoEffect", app.StatusPending,
			[]*app.Inbound{{Channel: app.ChannelContacts, FromUser: userID, MsgType: "event", Event: "subscribe"}},
			all(empty, unchanged)},
		{"UnboundNotReactivatedBySubscribe", app.StatusUnbound, event("subscribe", ""), all(empty, unchanged)},
		{"UnboundNotReactivatedByUpdateUser", app.StatusUnbound,
			[]*app.Inbound{contact(app.ChannelContacts, app.Inbound{ChangeType: "update_user", UserID: userID, Status: 1})},
			all(empty, unchanged)},
		{"ReboundNotReactivated", app.StatusRebound,
			[]*app.Inbound{
				{FromUser: userID, MsgType: "event", Event: "subscribe", AgentID: "1000002"},
				contact(app.ChannelContacts, app.Inbound{ChangeType: "update_user", UserID: userID, Status: 1}),
			},
			all(empty, unchanged)},
		{"ActiveStaysWithoutSecondWelcome", app.StatusActive, event("subscribe", ""), all(empty, unchanged)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.createBinding(number, userID, mobile, tt.status)
			var r response
			for _, in := range tt.send {
				in := *in
				r = e.post(e.event(&in))
				if r.status != http.StatusOK {
					t.Fatalf("%s: status %d", in.Kind(), r.status)
				}
			}
			tt.check(t, e, b, r)
		})
	}
}

// TestCallbackRetries delivers the same POST several times, one after the other and at once:
// the effect happens once and one welcome goes out (CONTRACT §5).
func TestCallbackRetries(t *testing.T) {
	e := newEnv(t)
	seq := e.createBinding("2021000001", "u1", "13800000001", app.StatusPending)
	par := e.createBinding("2021000002", "u2", "13800000002", app.StatusPending)
	gone := e.createBinding("2021000003", "u3", "13800000003", app.StatusActive)

	// Sequential retries of subscribe, and of a delete_user on the contacts route.
	d := e.event(&app.Inbound{FromUser: "u1", MsgType: "event", Event: "subscribe", AgentID: "1000002"})
	del := e.event(&app.Inbound{Channel: app.ChannelContacts, FromUser: "sys", MsgType: "event", Event: "change_contact",
		ChangeType: "delete_user", UserID: "u3"})
	for i := 0; i < 3; i++ {
		if r := e.post(d); r.status != http.StatusOK || len(r.body) != 0 {
			t.Fatalf("delivery %d: status %d body %q", i, r.status, r.body)
		}
		if r := e.post(del); r.status != http.StatusOK {
			t.Fatalf("delete delivery %d: status %d", i, r.status)
		}
	}

	// Concurrent retries of update_user Status 1.
	c := e.event(&app.Inbound{Channel: app.ChannelContacts, FromUser: "sys", MsgType: "event", Event: "change_contact",
		ChangeType: "update_user", UserID: "u2", Status: 1})
	var wg sync.WaitGroup
	statuses := make([]int, 3)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.post(c).status
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("concurrent delivery %d: status %d", i, s)
		}
	}

	for _, b := range []*app.Binding{seq, par} {
		if got := e.binding(b.ID); got.Status != app.StatusActive {
			t.Errorf("%s: status %s", b.UserID, got.Status)
		}
		evs, err := e.db.FindEvents(t.Context(), b.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs {
			if ev.Kind == app.EventActivated {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d activation events, want 1", b.UserID, n)
		}
	}
	if got := e.binding(gone.ID); got.Status != app.StatusUnbound {
		t.Errorf("u3: status %s, want unbound", got.Status)
	}
	msgs := e.deliverOutbox()
	per := map[string]int{}
	for _, m := range msgs {
		per[m.ToUser]++
	}
	if len(msgs) != 2 || per["u1"] != 1 || per["u2"] != 1 {
		t.Errorf("welcome messages %v, want one each for u1 and u2", per)
	}
	if m := e.metricsText(); !strings.Contains(m, `wecampus_callbacks_total{channel="app",kind="subscribe",result="ok"} 3`) {
		t.Errorf("metrics lack three ok subscribe deliveries:\n%s", grepLines(m, "wecampus_callbacks_total"))
	}
}

// TestCallbackNotApplied: when the effect cannot be stored because the database is gone the
// answer is 503, so WeCom retries; the retry, once the database is back, applies it.
func TestCallbackNotApplied(t *testing.T) {
	e := newEnv(t)
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	d := e.event(&app.Inbound{FromUser: "u1", MsgType: "event", Event: "subscribe", AgentID: "1000002"})
	if r := e.post(d); r.status != http.StatusServiceUnavailable || len(r.body) != 0 {
		t.Errorf("status %d body %q, want 503 and no body", r.status, r.body)
	}
	// A reply needs no database: the HELP click is still answered.
	h := e.event(&app.Inbound{FromUser: "u1", MsgType: "event", Event: "click", EventKey: "HELP", AgentID: "1000002"})
	if r := e.post(h); r.status != http.StatusOK || len(r.body) == 0 {
		t.Errorf("HELP with the database down: status %d", r.status)
	}
	if m := e.metricsText(); !strings.Contains(m, `wecampus_callbacks_total{channel="app",kind="subscribe",result="error"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(m, "wecampus_callbacks_total"))
	}
	if !strings.Contains(e.logs.String(), "callback not applied") {
		t.Error("the failure was not logged")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCallbackReplyTooLong: a reply the codec cannot seal (over WeCom's 2048 bytes) is logged
// and the delivery acknowledged with an empty 200, since a retry would fail the same way.
func TestCallbackReplyTooLong(t *testing.T) {
	e := newEnv(t)
	e.svc.BaseURL = "https://wecampus.example.edu.cn/" + strings.Repeat("x", 800)
	d := e.event(&app.Inbound{FromUser: "u1", MsgType: "event", Event: "click", EventKey: "HELP", AgentID: "1000002"})
	if r := e.post(d); r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("status %d body %d bytes, want 200 and no body", r.status, len(r.body))
	}
	if !strings.Contains(e.logs.String(), "seal passive reply") {
		t.Error("the seal failure was not logged")
	}
	if m := e.metricsText(); !strings.Contains(m, `wecampus_callbacks_total{channel="app",kind="click",result="error"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(m, "wecampus_callbacks_total"))
	}
}

// stuckStore is a store whose transactions wait for release, deaf to their context (a COMMIT the
// database never answers).
type stuckStore struct {
	app.Store
	release chan struct{}
}

func (s *stuckStore) Tx(ctx context.Context, fn func(tx app.Store) error) error {
	<-s.release
	return s.Store.Tx(context.WithoutCancel(ctx), fn)
}

// TestCallbackBudget: a delivery that cannot be applied within 4 s is answered 503 before
// WeCom's 5 s run out; WeCom's retries of the delivery then apply it once: one welcome message.
func TestCallbackBudget(t *testing.T) {
	e := newEnv(t)
	b := e.createBinding("2021123456", "2021123456", "13800001234", app.StatusPending)
	stuck := &stuckStore{Store: e.db, release: make(chan struct{})}
	e.svc.Store = stuck
	d := e.event(&app.Inbound{FromUser: "2021123456", MsgType: "event", Event: "subscribe", AgentID: "1000002"})
	start := time.Now()
	r := e.post(d)
	took := time.Since(start)
	if r.status != http.StatusServiceUnavailable || took < 3*time.Second || took > 4500*time.Millisecond {
		t.Fatalf("status %d after %v, want 503 after about 4 s", r.status, took)
	}
	close(stuck.release) // the stuck work ends (its context is done: it rolls back); Tx passes through now
	time.Sleep(100 * time.Millisecond)
	for range 2 { // WeCom's retries
		if r := e.post(d); r.status != http.StatusOK {
			t.Fatalf("retry: status %d", r.status)
		}
	}
	if st := e.binding(b.ID).Status; st != app.StatusActive {
		t.Fatalf("binding %s after the retry", st)
	}
	if msgs := e.deliverOutbox(); len(msgs) != 1 {
		t.Fatalf("%d welcome messages", len(msgs))
	}
}
