package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

const (
	uNumber = "2021123456"
	uMobile = "13800001234"
	uMasked = "138****1234"
	uName   = "测试2021123456" // env.createBinding names people 测试<number>
)

// unbindPage walks /unbind's OAuth round trip as userID and checks the binding page.
func (m *member) unbindPage(userID string) response {
	m.e.t.Helper()
	r := m.oauth("/unbind", userID)
	expectStatus(m.e.t, "GET /unbind?code", r, http.StatusOK)
	expectForm(m.e.t, "GET /unbind?code", r, "/unbind/sms", "csrf_token")
	return r
}

// TestUnbindHappyPath: menu → OAuth → the binding (masked) → SMS code to the bound mobile →
// member deleted in WeCom, binding unbound with an audit event → the same person binds a new
// number at once, with the same mobile, no cache to clear.
func TestUnbindHappyPath(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		b := e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
		m := e.newMember()

		r := m.unbindPage(uNumber)
		expectPage(t, "binding page", r, uNumber, uMasked, app.MaskName(uName))
		expectNotInPage(t, "binding page", r, uMobile, uName)
		if n := e.smsSent(uMobile); n != 0 {
			t.Fatalf("showing the binding sent %d SMS", n)
		}

		r = m.post("/unbind/sms", nil)
		expectStatus(t, "POST /unbind/sms", r, http.StatusOK)
		expectForm(t, "POST /unbind/sms", r, "/unbind/confirm", "sms_code")
		expectPage(t, "POST /unbind/sms", r, uMasked)
		expectNotInPage(t, "POST /unbind/sms", r, uMobile)
		code := e.smsCode(uMobile, app.PurposeUnbind)
		if _, ok := e.sim.Member(uNumber); !ok {
			t.Fatal("member deleted before the code was checked")
		}

		r = m.post("/unbind/confirm", url.Values{"sms_code": {code}})
		expectStatus(t, "POST /unbind/confirm", r, http.StatusOK)
		expectPage(t, "POST /unbind/confirm", r, "已解除绑定", "无需清除", `href="/bind"`)

		if _, ok := e.sim.Member(uNumber); ok {
			t.Fatal("member still in WeCom")
		}
		if n := e.sim.CallCount("user/delete"); n != 1 {
			t.Errorf("user/delete calls = %d", n)
		}
		got := e.binding(b.ID)
		if got.Status != app.StatusUnbound || got.Reason == "" {
			t.Fatalf("binding %+v, want unbound with a reason", got)
		}
		if ev := e.lastEvent(b.ID); ev.Kind != app.EventUnbound || ev.Actor != app.ActorMember {
			t.Errorf("last event %+v, want %s by %s", ev, app.EventUnbound, app.ActorMember)
		}

		// A new identity binds right away in the same browser, with the same mobile.
		e.cas.AddUser("2025000001", "pw", "张三", "student")
		r = m.login("2025000001")
		expectStatus(t, "bind after unbind", r, http.StatusOK)
		expectPage(t, "bind after unbind", r, "2025000001")
		r = m.post("/bind/mobile", url.Values{"mobile": {uMobile}})
		expectStatus(t, "bind after unbind", r, http.StatusOK)
		nb, err := e.db.FindLiveBinding(context.Background(), "mobile", uMobile)
		if err != nil || nb.Number != "2025000001" {
			t.Fatalf("new binding %+v %v", nb, err)
		}
	})
}

// TestUnbindOAuthState: the OAuth state is bound to the browser's flow cookie and works once;
// WeCom's code works once too.
func TestUnbindOAuthState(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)

	// A forged state, and a state from another browser.
	m := e.newMember()
	state := e.oauthLocation(m.get("/unbind"), "/unbind")
	r := m.get("/unbind?code=" + e.sim.IssueOAuthCode(uNumber) + "&state=" + strings.Repeat("0", len(state)))
	expectStatus(t, "forged state", r, http.StatusForbidden)
	r = e.newMember().get("/unbind?code=" + e.sim.IssueOAuthCode(uNumber) + "&state=" + state)
	expectStatus(t, "state of another browser", r, http.StatusForbidden)
	r = e.newMember().get("/unbind?code=" + e.sim.IssueOAuthCode(uNumber))
	expectStatus(t, "no state", r, http.StatusForbidden)
	if n := e.sim.CallCount("auth/getuserinfo"); n != 0 {
		t.Fatalf("codes redeemed without a valid state: %d", n)
	}
	expectNotInPage(t, "forged state", r, uNumber)

	// The state redeems one code: the same return again (a reload) shows the page without
	// redeeming anything; the state with another code is refused.
	m = e.newMember()
	state = e.oauthLocation(m.get("/unbind"), "/unbind")
	code := e.sim.IssueOAuthCode(uNumber)
	target := "/unbind?code=" + code + "&state=" + state
	expectStatus(t, "first use", m.get(target), http.StatusOK)
	redeemed := e.sim.CallCount("auth/getuserinfo")
	r = m.get(target)
	expectStatus(t, "reload", r, http.StatusOK)
	expectForm(t, "reload", r, "/unbind/sms", "csrf_token")
	r = m.get("/unbind?code=" + e.sim.IssueOAuthCode(uNumber) + "&state=" + state)
	if r.status < 400 || r.status > 499 {
		t.Fatalf("replayed state: status %d, want 4xx", r.status)
	}
	expectNotInPage(t, "replayed state", r, `action="/unbind/sms"`)
	if n := e.sim.CallCount("auth/getuserinfo"); n != redeemed {
		t.Fatalf("%d codes redeemed by the reload and the replayed state, want 0", n-redeemed)
	}

	// A fresh state with a used code: WeCom answers 40029.
	state = e.oauthLocation(m.get("/unbind"), "/unbind")
	r = m.get("/unbind?code=" + code + "&state=" + state)
	if r.status < 400 || r.status > 499 {
		t.Fatalf("replayed code: status %d, want 4xx", r.status)
	}
	expectNotInPage(t, "replayed code", r, `action="/unbind/sms"`, "系统内部错误")

	// Every start gets a new state.
	if s2 := e.oauthLocation(e.newMember().get("/unbind"), "/unbind"); s2 == state {
		t.Fatal("two starts got the same state")
	}
}

// TestUnbindNothingToUnbind: a visitor who is not a member, a member without a binding and one
// whose binding is already released all get the 404 page pointing to /bind.
func TestUnbindNothingToUnbind(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.createBinding("2019000001", "2019000001", "13800009999", app.StatusUnbound)
		if err := e.sim.AddMember(wecomtest.Member{UserID: "t2008001", Name: "钱七", Mobile: "13800007777", Department: []int64{2}}); err != nil {
			t.Fatal(err)
		}

		m := e.newMember()
		state := e.oauthLocation(m.get("/unbind"), "/unbind")
		r := m.get("/unbind?code=" + e.sim.IssueOAuthCodeForOpenID("oVisitor123") + "&state=" + state)
		expectStatus(t, "non-member", r, http.StatusNotFound)
		expectPage(t, "non-member", r, `href="/bind"`)

		for _, userID := range []string{"t2008001", "2019000001"} {
			r := e.newMember().oauth("/unbind", userID)
			expectStatus(t, userID, r, http.StatusNotFound)
			expectPage(t, userID, r, `href="/bind"`)
			expectNotInPage(t, userID, r, `action="/unbind/sms"`)
		}
		if n := e.sim.CallCount("user/delete"); n != 0 {
			t.Fatalf("user/delete called %d times", n)
		}
	})
}

// TestUnbindMemberGoneInWeCom: a member already deleted in WeCom (60111) still gets unbound.
func TestUnbindMemberGoneInWeCom(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		b := e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
		m := e.newMember()
		m.unbindPage(uNumber)
		expectStatus(t, "POST /unbind/sms", m.post("/unbind/sms", nil), http.StatusOK)

		// An admin deletes the member in the console meanwhile.
		if err := e.svc.WeCom.DeleteUser(context.Background(), uNumber); err != nil {
			t.Fatal(err)
		}
		r := m.post("/unbind/confirm", url.Values{"sms_code": {e.smsCode(uMobile, app.PurposeUnbind)}})
		expectStatus(t, "confirm", r, http.StatusOK)
		if got := e.binding(b.ID); got.Status != app.StatusUnbound {
			t.Fatalf("binding status %s, want unbound", got.Status)
		}
		var answers []int
		for _, c := range e.sim.Calls() {
			if c.Endpoint == "user/delete" {
				answers = append(answers, c.ErrCode)
			}
		}
		if len(answers) != 2 || answers[1] != 60111 {
			t.Fatalf("user/delete answers %v, want [0 60111]", answers)
		}
	})
}

// TestUnbindWrongAndExpiredCode: a wrong or expired code gets the code page (400) and deletes
// nothing; a new code then works.
func TestUnbindWrongAndExpiredCode(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		clock := e.withOffsetClock()
		b := e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
		m := e.newMember()
		m.unbindPage(uNumber)
		expectStatus(t, "POST /unbind/sms", m.post("/unbind/sms", nil), http.StatusOK)
		code := e.smsCode(uMobile, app.PurposeUnbind)

		r := m.post("/unbind/confirm", url.Values{"sms_code": {wrongCode(code)}})
		expectStatus(t, "wrong code", r, http.StatusBadRequest)
		expectForm(t, "wrong code", r, "/unbind/confirm", "sms_code")
		expectPage(t, "wrong code", r, "验证码错误")
		for _, bad := range []string{"", "12345", "abcdef", "1234567"} {
			expectStatus(t, "code "+bad, m.post("/unbind/confirm", url.Values{"sms_code": {bad}}), http.StatusBadRequest)
		}

		clock.Advance(5*time.Minute + time.Second)
		r = m.post("/unbind/confirm", url.Values{"sms_code": {code}})
		expectStatus(t, "expired code", r, http.StatusBadRequest)
		expectForm(t, "expired code", r, "/unbind/confirm", "sms_code")
		expectForm(t, "expired code", r, "/unbind/sms", "csrf_token") // resend
		expectPage(t, "expired code", r, "已过期")

		if n := e.sim.CallCount("user/delete"); n != 0 {
			t.Fatalf("user/delete called %d times", n)
		}
		if got := e.binding(b.ID); got.Status != app.StatusActive {
			t.Fatalf("binding status %s", got.Status)
		}

		expectStatus(t, "resend", m.post("/unbind/sms", nil), http.StatusOK)
		r = m.post("/unbind/confirm", url.Values{"sms_code": {e.smsCode(uMobile, app.PurposeUnbind)}})
		expectStatus(t, "new code", r, http.StatusOK)
		if got := e.binding(b.ID); got.Status != app.StatusUnbound {
			t.Fatalf("binding status %s", got.Status)
		}
	})
}

// TestUnbindTooManyWrongCodes: after 5 wrong attempts even the right code is refused.
func TestUnbindTooManyWrongCodes(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
	m := e.newMember()
	m.unbindPage(uNumber)
	expectStatus(t, "POST /unbind/sms", m.post("/unbind/sms", nil), http.StatusOK)
	code := e.smsCode(uMobile, app.PurposeUnbind)
	for range 5 {
		expectStatus(t, "wrong", m.post("/unbind/confirm", url.Values{"sms_code": {wrongCode(code)}}), http.StatusBadRequest)
	}
	r := m.post("/unbind/confirm", url.Values{"sms_code": {code}})
	expectStatus(t, "right code after 5 wrong", r, http.StatusBadRequest)
	expectPage(t, "right code after 5 wrong", r, "次数过多")
	if _, ok := e.sim.Member(uNumber); !ok {
		t.Fatal("member deleted")
	}
}

// TestUnbindSMSCooldown: one SMS per mobile per 60 s, whatever the member clicks.
func TestUnbindSMSCooldown(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
		m := e.newMember()
		m.unbindPage(uNumber)
		expectStatus(t, "first send", m.post("/unbind/sms", nil), http.StatusOK)
		first := e.smsCode(uMobile, app.PurposeUnbind)

		r := m.post("/unbind/sms", nil) // the resend button
		if r.status != http.StatusOK && r.status != http.StatusTooManyRequests {
			t.Fatalf("resend: status %d", r.status)
		}
		expectPage(t, "resend", r, "过于频繁")

		// A second browser of the same member, within the minute.
		m2 := e.newMember()
		m2.unbindPage(uNumber)
		r = m2.post("/unbind/sms", nil)
		if r.status != http.StatusOK && r.status != http.StatusTooManyRequests {
			t.Fatalf("other browser: status %d", r.status)
		}
		expectPage(t, "other browser", r, "过于频繁")

		if n := e.smsSent(uMobile); n != 1 {
			t.Fatalf("%d SMS codes stored, want 1", n)
		}
		if got, _ := e.sms.Last(uMobile); got != first {
			t.Fatal("a second code was sent")
		}
		expectStatus(t, "confirm", m.post("/unbind/confirm", url.Values{"sms_code": {first}}), http.StatusOK)
	})
}

// TestUnbindCSRFAndOrder: POSTs need the CSRF token (403) and their step's flow (4xx).
func TestUnbindCSRFAndOrder(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	b := e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
	m := e.newMember()
	tok := hiddenValue(string(m.unbindPage(uNumber).body), "csrf_token")
	expectStatus(t, "no token", m.post("/unbind/sms", url.Values{"csrf_token": {""}}), http.StatusForbidden)
	expectStatus(t, "bad token", m.post("/unbind/sms", url.Values{"csrf_token": {"AAAA" + strings.Repeat("b", 84)}}), http.StatusForbidden)
	if n := e.smsSent(uMobile); n != 0 {
		t.Fatalf("%d SMS sent without a valid CSRF token", n)
	}

	// Confirm before the SMS step (with a valid token: the flow refuses it).
	r := m.post("/unbind/confirm", url.Values{"sms_code": {"123456"}, "csrf_token": {tok}})
	expectStatus(t, "confirm before SMS", r, http.StatusUnauthorized)
	expectPage(t, "confirm before SMS", r, `href="/unbind"`)
	expectStatus(t, "POST /unbind/sms", m.post("/unbind/sms", url.Values{"csrf_token": {tok}}), http.StatusOK)
	code := e.smsCode(uMobile, app.PurposeUnbind)
	expectStatus(t, "confirm without token", m.post("/unbind/confirm", url.Values{"sms_code": {code}, "csrf_token": {""}}), http.StatusForbidden)

	// Another browser without the flow cannot use the code.
	other := e.newMember()
	expectStatus(t, "other GET", other.get("/bind"), http.StatusOK)
	r = other.post("/unbind/confirm", url.Values{"sms_code": {code}})
	if r.status < 400 || r.status > 499 {
		t.Fatalf("confirm from another browser: status %d", r.status)
	}
	if got := e.binding(b.ID); got.Status != app.StatusActive {
		t.Fatalf("binding status %s", got.Status)
	}
	// The owner still can.
	expectStatus(t, "confirm", m.post("/unbind/confirm", url.Values{"sms_code": {code}, "csrf_token": {tok}}), http.StatusOK)
}

// TestUnbindWeComBusy: a WeCom failure on delete leaves the binding live and says to retry.
func TestUnbindWeComBusy(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	b := e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
	m := e.newMember()
	m.unbindPage(uNumber)
	expectStatus(t, "POST /unbind/sms", m.post("/unbind/sms", nil), http.StatusOK)
	e.sim.Inject("user/delete", 1, wecomtest.Fault{ErrCode: -1})
	r := m.post("/unbind/confirm", url.Values{"sms_code": {e.smsCode(uMobile, app.PurposeUnbind)}})
	expectStatus(t, "busy", r, http.StatusServiceUnavailable)
	expectPage(t, "busy", r, "稍后")
	expectNotInPage(t, "busy", r, "errcode", "system busy")
	if got := e.binding(b.ID); got.Status != app.StatusActive {
		t.Fatalf("binding status %s", got.Status)
	}
	if _, ok := e.sim.Member(uNumber); !ok {
		t.Fatal("member gone")
	}
}
