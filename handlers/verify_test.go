package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

const (
	vNumber = "2021123456"
	vMobile = "13800001234"
	vMasked = "138****1234"
)

// TestVerifyTfaHappyPath: WeCom's redirect with a code → bound mobile → SMS code → user/tfa_succ
// with the tfa_code of auth/get_tfa_info → member joined, binding active, one welcome message
// even when WeCom also reports the join by callback.
func TestVerifyTfaHappyPath(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		b := e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
		m := e.newMember()

		r := m.startVerify(vNumber)
		expectStatus(t, "GET /verify?code", r, http.StatusOK)
		expectForm(t, "GET /verify?code", r, "/verify/sms", "mobile")
		expectPage(t, "GET /verify?code", r, vMasked)
		expectNotInPage(t, "GET /verify?code", r, vMobile)

		r = m.post("/verify/sms", url.Values{"mobile": {"+86 138-0000-1234"}})
		expectStatus(t, "POST /verify/sms", r, http.StatusOK)
		expectForm(t, "POST /verify/sms", r, "/verify/confirm", "sms_code")
		code := e.smsCode(vMobile, app.PurposeVerify)
		if e.sim.CallCount("user/tfa_succ") != 0 {
			t.Fatal("tfa_succ before the SMS code was checked")
		}

		r = m.post("/verify/confirm", url.Values{"sms_code": {code}})
		expectStatus(t, "POST /verify/confirm", r, http.StatusOK)
		expectPage(t, "POST /verify/confirm", r, "验证成功", vNumber)

		if n := e.sim.CallCount("auth/get_tfa_info"); n != 1 {
			t.Errorf("auth/get_tfa_info calls = %d, want 1", n)
		}
		succ := e.callBodies("user/tfa_succ")
		if len(succ) != 1 || succ[0]["userid"] != vNumber || succ[0]["tfa_code"] == "" {
			t.Fatalf("user/tfa_succ calls: %+v", succ)
		}
		// The simulator accepts only the tfa_code it handed out for this userid: status 1 proves
		// the right one was sent.
		if mem, ok := e.sim.Member(vNumber); !ok || mem.Status != 1 {
			t.Fatalf("member in WeCom: %+v %v, want status 1", mem, ok)
		}
		for _, c := range e.sim.Calls() {
			if c.Endpoint == "user/tfa_succ" && c.ErrCode != 0 {
				t.Fatalf("user/tfa_succ answered %d", c.ErrCode)
			}
		}
		if n := e.sim.CallCount("user/authsucc"); n != 0 {
			t.Errorf("user/authsucc called %d times in tfa mode", n)
		}
		if got := e.binding(b.ID); got.Status != app.StatusActive {
			t.Fatalf("binding status %s, want active", got.Status)
		}
		if ev := e.lastEvent(b.ID); ev.Kind != app.EventActivated || ev.Detail != "verify" {
			t.Errorf("last event %+v, want %s via verify", ev, app.EventActivated)
		}

		// WeCom reports the same join by callback, on both servers; the welcome goes out once.
		expectStatus(t, "subscribe", e.post(e.event(&app.Inbound{FromUser: vNumber, MsgType: "event", Event: "subscribe", AgentID: "1000002"})), http.StatusOK)
		expectStatus(t, "update_user", e.post(e.event(&app.Inbound{Channel: app.ChannelContacts, FromUser: "sys", MsgType: "event",
			Event: "change_contact", ChangeType: "update_user", UserID: vNumber, Status: 1})), http.StatusOK)
		msgs := e.deliverOutbox()
		if len(msgs) != 1 || msgs[0].ToUser != vNumber || !strings.Contains(msgs[0].Content, "欢迎") {
			t.Fatalf("messages %+v, want one welcome to %s", msgs, vNumber)
		}
		if again := e.deliverOutbox(); len(again) != 1 {
			t.Fatalf("%d messages after a second delivery, want 1", len(again))
		}

		// The finished flow cannot be replayed.
		r = m.post("/verify/confirm", url.Values{"sms_code": {code}})
		if r.status < 400 || r.status > 499 {
			t.Fatalf("replayed confirm: status %d, want 4xx", r.status)
		}
		if n := e.sim.CallCount("user/tfa_succ"); n != 1 {
			t.Errorf("user/tfa_succ calls after replay = %d", n)
		}
	})
}

// TestVerifyAuthSuccMode: the legacy mode resolves the code with auth/getuserinfo and passes the
// member with user/authsucc.
func TestVerifyAuthSuccMode(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.svc.VerifyMode = "authsucc"
		b := e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
		m := e.newMember()

		r := m.get("/verify?code=" + e.sim.IssueOAuthCode(vNumber))
		expectStatus(t, "GET /verify?code", r, http.StatusOK)
		expectForm(t, "GET /verify?code", r, "/verify/sms", "mobile")
		r = m.post("/verify/sms", url.Values{"mobile": {vMobile}})
		expectStatus(t, "POST /verify/sms", r, http.StatusOK)
		r = m.post("/verify/confirm", url.Values{"sms_code": {e.smsCode(vMobile, app.PurposeVerify)}})
		expectStatus(t, "POST /verify/confirm", r, http.StatusOK)

		calls := e.callBodies("user/authsucc")
		if len(calls) != 1 || calls[0]["userid"] != vNumber {
			t.Fatalf("user/authsucc calls %+v", calls)
		}
		for _, ep := range []string{"auth/get_tfa_info", "user/tfa_succ"} {
			if n := e.sim.CallCount(ep); n != 0 {
				t.Errorf("%s called %d times in authsucc mode", ep, n)
			}
		}
		if mem, _ := e.sim.Member(vNumber); mem.Status != 1 {
			t.Errorf("member status %d, want 1", mem.Status)
		}
		if got := e.binding(b.ID); got.Status != app.StatusActive {
			t.Errorf("binding status %s", got.Status)
		}

		// A visitor who is not a member is sent to bind.
		r = e.newMember().get("/verify?code=" + e.sim.IssueOAuthCodeForOpenID("oABCDEF"))
		expectStatus(t, "non-member", r, http.StatusNotFound)
		expectPage(t, "non-member", r, `href="/bind"`)
	})
}

// TestVerifyWrongMobile: a mobile other than the bound one is refused with the masked hint and
// no SMS; an invalid one likewise.
func TestVerifyWrongMobile(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
		m := e.newMember()
		expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)

		for _, mobile := range []string{"13900001234", "12345", "1380000123x"} {
			r := m.post("/verify/sms", url.Values{"mobile": {mobile}})
			expectStatus(t, "mobile "+mobile, r, http.StatusBadRequest)
			expectForm(t, "mobile "+mobile, r, "/verify/sms", "mobile")
		}
		r := m.post("/verify/sms", url.Values{"mobile": {"13900001234"}})
		expectPage(t, "other mobile", r, vMasked, "不一致")
		expectNotInPage(t, "other mobile", r, vMobile)
		if n := e.smsSent(vMobile) + e.smsSent("13900001234"); n != 0 {
			t.Fatalf("%d SMS codes sent for a wrong mobile", n)
		}
		// The right one still works in the same flow.
		expectStatus(t, "right mobile", m.post("/verify/sms", url.Values{"mobile": {vMobile}}), http.StatusOK)
		if n := e.smsSent(vMobile); n != 1 {
			t.Fatalf("%d SMS codes sent, want 1", n)
		}
	})
}

// TestVerifyOneTap: the verify page sends the code to the bound mobile with one button; the form
// keeps an optional input called mobile, which may be left empty or left out (CONTRACT §7).
func TestVerifyOneTap(t *testing.T) {
	for name, fields := range map[string]url.Values{"Empty": {"mobile": {""}}, "Blank": {"mobile": {"  "}}, "Omitted": {}} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withLocalBaseURL())
			e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
			m := e.newMember()
			r := m.startVerify(vNumber)
			expectStatus(t, "GET /verify?code", r, http.StatusOK)
			expectForm(t, "GET /verify?code", r, "/verify/sms", "mobile")
			expectPage(t, "GET /verify?code", r, "发送验证码到 "+vMasked)
			expectNotInPage(t, "GET /verify?code", r, vMobile, "required")
			r = m.post("/verify/sms", fields)
			expectStatus(t, "POST /verify/sms", r, http.StatusOK)
			expectForm(t, "POST /verify/sms", r, "/verify/confirm", "sms_code")
			expectPage(t, "POST /verify/sms", r, "验证码已发送到 "+vMasked)
			expectStatus(t, "confirm", m.post("/verify/confirm", url.Values{"sms_code": {e.smsCode(vMobile, app.PurposeVerify)}}), http.StatusOK)
		})
	}
}

// TestVerifyWrongAndExpiredCode: a wrong code gets the code page again (400) and passes nobody;
// an expired one likewise, with a way to get a new one.
func TestVerifyWrongAndExpiredCode(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		clock := e.withOffsetClock()
		e.svc.SMSPolicy.TTL = 2 * time.Minute // shorter than WeCom's 5-minute tfa window
		b := e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
		m := e.newMember()
		expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)
		expectStatus(t, "POST /verify/sms", m.post("/verify/sms", url.Values{"mobile": {vMobile}}), http.StatusOK)
		code := e.smsCode(vMobile, app.PurposeVerify)

		r := m.post("/verify/confirm", url.Values{"sms_code": {wrongCode(code)}})
		expectStatus(t, "wrong code", r, http.StatusBadRequest)
		expectForm(t, "wrong code", r, "/verify/confirm", "sms_code")
		expectPage(t, "wrong code", r, "验证码错误")

		clock.Advance(2*time.Minute + time.Second)
		r = m.post("/verify/confirm", url.Values{"sms_code": {code}})
		expectStatus(t, "expired code", r, http.StatusBadRequest)
		expectForm(t, "expired code", r, "/verify/confirm", "sms_code")
		expectForm(t, "expired code", r, "/verify/sms", "csrf_token") // resend
		expectPage(t, "expired code", r, "已过期")
		if strings.Contains(string(r.body), vMobile) {
			t.Fatal("the code page must not carry the full mobile (the flow cookie does)")
		}

		if n := e.sim.CallCount("user/tfa_succ"); n != 0 {
			t.Fatalf("user/tfa_succ called %d times without a valid code", n)
		}
		if got := e.binding(b.ID); got.Status != app.StatusPending {
			t.Fatalf("binding status %s, want pending", got.Status)
		}

		// A new code (the cooldown is over) passes, within WeCom's window.
		expectStatus(t, "resend", m.post("/verify/sms", nil), http.StatusOK) // the page's resend button
		r = m.post("/verify/confirm", url.Values{"sms_code": {e.smsCode(vMobile, app.PurposeVerify)}})
		expectStatus(t, "new code", r, http.StatusOK)
		if got := e.binding(b.ID); got.Status != app.StatusActive {
			t.Fatalf("binding status %s, want active", got.Status)
		}
	})
}

// TestVerifyTfaTooOld: WeCom accepts a tfa_code for 5 minutes; after that the page tells the
// member to re-enter from WeCom instead of sending an SMS that cannot help.
func TestVerifyTfaTooOld(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		clock := e.withOffsetClock()
		b := e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)

		// Too late for the SMS.
		m := e.newMember()
		expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)
		clock.Advance(5*time.Minute + time.Second)
		r := m.post("/verify/sms", url.Values{"mobile": {vMobile}})
		expectStatus(t, "late SMS", r, http.StatusBadRequest)
		expectPage(t, "late SMS", r, "5 分钟", "重新进入")
		if hasForm(string(r.body), "/verify/sms", "mobile") || hasForm(string(r.body), "/verify/confirm", "sms_code") {
			t.Fatal("the re-enter page must not offer a form that cannot succeed")
		}
		if n := e.smsSent(vMobile); n != 0 {
			t.Fatalf("%d SMS sent after the tfa window", n)
		}

		// Too late for the confirmation.
		m = e.newMember()
		expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)
		expectStatus(t, "POST /verify/sms", m.post("/verify/sms", url.Values{"mobile": {vMobile}}), http.StatusOK)
		code := e.smsCode(vMobile, app.PurposeVerify)
		clock.Advance(4*time.Minute + 59*time.Second) // the SMS code (5 min) is still valid
		expectStatus(t, "in time", m.post("/verify/confirm", url.Values{"sms_code": {wrongCode(code)}}), http.StatusBadRequest)
		clock.Advance(2 * time.Second)
		r = m.post("/verify/confirm", url.Values{"sms_code": {code}})
		expectStatus(t, "late confirm", r, http.StatusBadRequest)
		expectPage(t, "late confirm", r, "5 分钟", "重新进入")
		if n := e.sim.CallCount("user/tfa_succ"); n != 0 {
			t.Fatalf("user/tfa_succ called %d times after the window", n)
		}
		if got := e.binding(b.ID); got.Status != app.StatusPending {
			t.Fatalf("binding status %s", got.Status)
		}
	})
}

// TestVerifyNoBinding: a member without a binding is sent to bind.
func TestVerifyNoBinding(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	if err := e.sim.AddMember(wecomtest.Member{UserID: "t2008001", Name: "钱七", Mobile: "13800007777", Department: []int64{2}, Status: 4}); err != nil {
		t.Fatal(err)
	}
	e.createBinding(vNumber, vNumber, vMobile, app.StatusUnbound) // history of someone else
	for _, userID := range []string{"t2008001", vNumber} {
		r := e.newMember().startVerify(userID)
		expectStatus(t, userID, r, http.StatusNotFound)
		expectPage(t, userID, r, "注册绑定", `href="/bind"`)
		expectNotInPage(t, userID, r, `action="/verify/sms"`)
	}
}

// TestVerifyCodeReused: WeCom's code works once (40029): a second use gets a re-enter page; a
// tfa_code WeCom no longer accepts at tfa_succ gets the re-enter page, not the code form.
func TestVerifyCodeReused(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	b := e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
	code := e.sim.IssueTfaCode(vNumber)
	expectStatus(t, "first use", e.newMember().get("/verify?code="+code), http.StatusOK)
	r := e.newMember().get("/verify?code=" + code)
	expectStatus(t, "second use", r, http.StatusBadRequest)
	expectPage(t, "second use", r, "已失效", "重新进入")
	expectNotInPage(t, "second use", r, `action="/verify/sms"`, "系统内部错误")

	m := e.newMember()
	expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)
	expectStatus(t, "POST /verify/sms", m.post("/verify/sms", url.Values{"mobile": {vMobile}}), http.StatusOK)
	e.sim.Inject("user/tfa_succ", 1, wecomtest.Fault{ErrCode: 40029})
	r = m.post("/verify/confirm", url.Values{"sms_code": {e.smsCode(vMobile, app.PurposeVerify)}})
	expectStatus(t, "tfa_succ 40029", r, http.StatusBadRequest)
	expectPage(t, "tfa_succ 40029", r, "重新进入")
	expectNotInPage(t, "tfa_succ 40029", r, `name="sms_code"`, "系统内部错误")
	if got := e.binding(b.ID); got.Status != app.StatusPending {
		t.Fatalf("binding status %s", got.Status)
	}
}

// TestVerifySMSCooldown: a second send within 60 s sends nothing: the code page says to wait.
func TestVerifySMSCooldown(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
	m := e.newMember()
	expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)
	expectStatus(t, "first send", m.post("/verify/sms", url.Values{"mobile": {vMobile}}), http.StatusOK)
	first := e.smsCode(vMobile, app.PurposeVerify)
	r := m.post("/verify/sms", url.Values{"mobile": {vMobile}}) // the resend button
	if r.status != http.StatusOK && r.status != http.StatusTooManyRequests {
		t.Fatalf("second send: status %d", r.status)
	}
	expectPage(t, "second send", r, "过于频繁")
	if n := e.smsSent(vMobile); n != 1 {
		t.Fatalf("%d SMS codes sent, want 1", n)
	}
	// The first code still works.
	expectStatus(t, "confirm", m.post("/verify/confirm", url.Values{"sms_code": {first}}), http.StatusOK)
}

// TestVerifyOutOfOrderAndCSRF: steps without their flow restart (4xx); a POST without the CSRF
// token is refused (403) and sends nothing.
func TestVerifyOutOfOrderAndCSRF(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)

	// No flow at all: fetch a page first for a CSRF token, then skip the WeCom redirect.
	m := e.newMember()
	expectStatus(t, "GET /bind", m.get("/bind"), http.StatusOK)
	for _, step := range []struct{ path, field, value string }{
		{"/verify/sms", "mobile", vMobile},
		{"/verify/confirm", "sms_code", "123456"},
	} {
		r := m.post(step.path, url.Values{step.field: {step.value}})
		if r.status < 400 || r.status > 499 {
			t.Fatalf("%s without a flow: status %d", step.path, r.status)
		}
	}
	// Confirm before the SMS step.
	expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)
	r := m.post("/verify/confirm", url.Values{"sms_code": {"123456"}})
	if r.status < 400 || r.status > 499 {
		t.Fatalf("confirm before SMS: status %d", r.status)
	}

	// CSRF: no token, and a token from another browser.
	m = e.newMember()
	expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)
	expectStatus(t, "no token", m.post("/verify/sms", url.Values{"mobile": {vMobile}, "csrf_token": {""}}), http.StatusForbidden)
	other := e.newMember()
	expectStatus(t, "other GET", other.get("/bind"), http.StatusOK)
	tok := hiddenValue(string(other.last.body), "csrf_token")
	expectStatus(t, "foreign token", m.post("/verify/sms", url.Values{"mobile": {vMobile}, "csrf_token": {tok}}), http.StatusForbidden)
	if n := e.smsSent(vMobile); n != 0 {
		t.Fatalf("%d SMS sent without a valid CSRF token", n)
	}
}

// TestVerifyMenuEntry: /verify without a code (the menu) goes through OAuth and shows whether the
// member has completed joining.
func TestVerifyMenuEntry(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.createBinding(vNumber, vNumber, vMobile, app.StatusActive)
	e.createBinding("2021000002", "2021000002", "13800002222", app.StatusPending)

	r := e.newMember().oauth("/verify", vNumber)
	expectStatus(t, "active", r, http.StatusOK)
	expectPage(t, "active", r, "已完成验证", vNumber, vMasked)
	expectNotInPage(t, "active", r, vMobile)

	r = e.newMember().oauth("/verify", "2021000002")
	expectStatus(t, "pending", r, http.StatusOK)
	expectPage(t, "pending", r, "还没有完成加入")

	r = e.newMember().oauth("/verify", "nobody")
	expectStatus(t, "no binding", r, http.StatusNotFound)
	expectPage(t, "no binding", r, `href="/bind"`)

	if n := e.sim.CallCount("auth/get_tfa_info"); n != 0 {
		t.Errorf("the menu entry redeemed %d codes as tfa codes", n)
	}
}

// TestVerifyActiveMember: a member who already joined passes verification again (登录二次验证 on a
// new device) without a second welcome message or a change to the binding.
func TestVerifyActiveMember(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	b := e.createBinding(vNumber, vNumber, vMobile, app.StatusActive)
	if err := e.sim.SetStatus(vNumber, 1); err != nil {
		t.Fatal(err)
	}
	before := e.bindingStates()
	m := e.newMember()
	expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)
	expectStatus(t, "POST /verify/sms", m.post("/verify/sms", url.Values{"mobile": {vMobile}}), http.StatusOK)
	r := m.post("/verify/confirm", url.Values{"sms_code": {e.smsCode(vMobile, app.PurposeVerify)}})
	expectStatus(t, "POST /verify/confirm", r, http.StatusOK)
	if n := e.sim.CallCount("user/tfa_succ"); n != 1 {
		t.Fatalf("user/tfa_succ calls = %d", n)
	}
	if after := e.bindingStates(); after != before {
		t.Fatalf("binding changed:\n%s\nbefore:\n%s", after, before)
	}
	if msgs := e.deliverOutbox(); len(msgs) != 0 {
		t.Fatalf("messages %+v, want none", msgs)
	}
	if got := e.binding(b.ID); got.Status != app.StatusActive {
		t.Fatalf("status %s", got.Status)
	}
}
