package handlers_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

// Post/redirect/get (CONTRACT §7): every step that succeeds answers 303 to a GET page; that page,
// reloaded, shows the same outcome and repeats nothing; refusals answer with their 4xx directly;
// a GET of a POST-only route shows the flow's step or a restart page, never 405.

// mustSeeOther checks that r is a 303 to path and returns the page the browser gets there.
func (m *member) mustSeeOther(what string, r response, path string) response {
	m.e.t.Helper()
	if r.status != http.StatusSeeOther || r.header.Get("Location") != path {
		m.e.t.Fatalf("%s: %d Location %q, want 303 to %s\n%s", what, r.status, r.header.Get("Location"), path, r.body)
	}
	if len(r.body) > 0 && strings.Contains(string(r.body), "<form") {
		m.e.t.Fatalf("%s: the 303 carries a page", what)
	}
	page := m.getOnce(path)
	mustStatus(m.e.t, "GET "+path, page, http.StatusOK)
	return page
}

// mustReload fetches path again and checks that it shows the same page (but for the CSRF token
// and the request id) and that the reload had no effect: no SMS, no WeCom call.
func (m *member) mustReload(what, path string, before response) {
	m.e.t.Helper()
	calls, sms := len(m.e.sim.Calls()), m.e.tally().SMSCodes
	again := m.getOnce(path)
	if again.status != before.status || pageText(again) != pageText(before) {
		m.e.t.Fatalf("%s: reloading %s shows another page (%d):\n%s\nfirst (%d):\n%s", what, path, again.status, pageText(again), before.status, pageText(before))
	}
	if n := len(m.e.sim.Calls()) - calls; n != 0 {
		m.e.t.Fatalf("%s: reloading %s called WeCom %d times: %+v", what, path, n, m.e.sim.Calls()[calls:])
	}
	if n := m.e.tally().SMSCodes - sms; n != 0 {
		m.e.t.Fatalf("%s: reloading %s sent %d SMS codes", what, path, n)
	}
}

// mustRefuseDirectly checks that r is a refusal with status, answered without a redirect.
func mustRefuseDirectly(t *testing.T, what string, r response, status int) {
	t.Helper()
	mustStatus(t, what, r, status)
	if r.via != nil || r.header.Get("Location") != "" {
		t.Fatalf("%s: the refusal came through a redirect", what)
	}
}

// countdownRe matches the waits and validity a code page counts down.
var countdownRe = regexp.MustCompile(`[0-9]+ (秒|分钟)`)

// pageText is a page without what changes from one answer to the next: the CSRF token, the
// request id and the countdowns.
func pageText(r response) string {
	s := hiddenRe.ReplaceAllString(string(r.body), "")
	s = countdownRe.ReplaceAllString(s, "N $1")
	if i := strings.Index(s, "请求编号"); i >= 0 {
		s = s[:i]
	}
	return s
}

func TestPRGBind(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.cas.AddUser("2021123456", "pw", "张三", "student")
		m := e.newMember()
		mustStatus(t, "/bind/login", m.getOnce("/bind/login"), http.StatusFound)
		ticket := e.cas.IssueTicket("2021123456", e.baseURL+"/bind/cas")

		// /bind/cas validates the ticket once and 303s to the mobile form, which reloads.
		form := m.mustSeeOther("/bind/cas", m.getOnce("/bind/cas?ticket="+url.QueryEscape(ticket)), "/bind/mobile")
		if !hasForm(form.page(), "/bind/mobile", "mobile") {
			t.Fatalf("GET /bind/mobile: no mobile form\n%s", form.body)
		}
		mustContain(t, "GET /bind/mobile", form.page(), "张三", "2021123456")
		m.mustReload("mobile form", "/bind/mobile", form)
		if n := e.cas.Validations(); n != 1 {
			t.Fatalf("%d CAS validations, want 1", n)
		}

		// A refusal answers directly, and the form shows again.
		m.last = form
		mustRefuseDirectly(t, "bad mobile", m.postOnce("/bind/mobile", url.Values{"mobile": {"1234"}}), http.StatusBadRequest)

		// The bind: 303 to the follow page, which reloads without a second WeCom call.
		follow := m.mustSeeOther("bind", m.postOnce("/bind/mobile", url.Values{"mobile": {"13800001234"}}), "/bind/mobile")
		mustContain(t, "follow page", follow.page(), "注册成功", "138****1234", "<img")
		m.mustReload("follow page", "/bind/mobile", follow)
		for _, p := range []string{"/bind/migrate/code", "/bind/migrate"} { // Back, a typed URL
			r := m.getOnce(p)
			mustStatus(t, "GET "+p, r, http.StatusOK)
			mustContain(t, "GET "+p, r.page(), "注册成功")
		}
		if n := e.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create called %d times", n)
		}

		// Without the flow: a restart page, for every GET of the flow.
		stranger := e.newMember()
		for _, p := range []string{"/bind/mobile", "/bind/migrate/code", "/bind/migrate"} {
			r := stranger.getOnce(p)
			if r.status < 400 || r.status >= 500 || r.status == http.StatusMethodNotAllowed {
				t.Fatalf("GET %s without a flow: %d", p, r.status)
			}
			mustContain(t, "GET "+p+" without a flow", r.page(), "重新开始注册绑定", `href="/bind"`)
		}

		// Already bound: a later login lands on the binding, not the form.
		m2 := e.newMember()
		m2.getOnce("/bind/login")
		r := m2.mustSeeOther("second login", m2.getOnce("/bind/cas?ticket="+url.QueryEscape(e.cas.IssueTicket("2021123456", e.baseURL+"/bind/cas"))), "/bind/mobile")
		mustContain(t, "second login", r.page(), "该学号/工号已绑定", "138****1234")
		if hasForm(r.page(), "/bind/mobile", "mobile") {
			t.Fatal("a bound number got the mobile form")
		}
	})
}

func TestPRGRebind(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	clock := e.withOffsetClock()
	old := e.seedBinding(oldNumber, "张三", heldMobile, app.StatusActive)
	m := e.person(newNumber, "张三", "student")

	// The 换绑 offer is a 409, answered directly; the GET of the step shows it again.
	mustRefuseDirectly(t, "held mobile", m.submitMobile(heldMobile), http.StatusConflict)
	offer := m.getOnce("/bind/migrate/code")
	mustStatus(t, "GET /bind/migrate/code", offer, http.StatusOK)
	if !hasForm(offer.page(), "/bind/migrate/code", "csrf_token") || !hasForm(offer.page(), "/bind/mobile", "mobile") {
		t.Fatalf("GET of the offer: no 换绑 form or mobile form\n%s", offer.body)
	}
	mustContain(t, "GET of the offer", offer.page(), "可以换绑", "138****1234")

	// The code: 303 to the code page, which reloads without a second SMS.
	code := m.mustSeeOther("code", m.postOnce("/bind/migrate/code", nil), "/bind/migrate/code")
	mustContain(t, "code page", code.page(), "换绑验证", "验证码已发送到 138****1234", "没有收到")
	mustNotContain(t, "code page", code.page(), "新的验证码")
	if !hasForm(code.page(), "/bind/migrate", "sms_code") {
		t.Fatalf("code page without the code form\n%s", code.body)
	}
	m.mustReload("code page", "/bind/migrate/code", code)

	// A resend after the cooldown: "新的验证码已发送".
	clock.Advance(61 * time.Second)
	code = m.mustSeeOther("resend", m.postOnce("/bind/migrate/code", nil), "/bind/migrate/code")
	mustContain(t, "after a resend", code.page(), "新的验证码已发送到 138****1234")
	if n := e.tally().SMSCodes; n != 2 {
		t.Fatalf("%d codes sent, want 2", n)
	}

	// A wrong code is refused directly.
	m.last = code
	sms := e.lastSMSCode(heldMobile)
	mustRefuseDirectly(t, "wrong code", m.postOnce("/bind/migrate", url.Values{"sms_code": {otherCode(sms)}}), http.StatusBadRequest)

	// The 换绑: 303 to the follow page, which reloads without another WeCom call; so does Back.
	done := m.mustSeeOther("换绑", m.postOnce("/bind/migrate", url.Values{"sms_code": {sms}}), "/bind/migrate")
	mustContain(t, "换绑 follow", done.page(), "换绑成功", newNumber, "138****1234")
	checkRebound(t, e, old)
	m.mustReload("换绑 follow", "/bind/migrate", done)
	for _, p := range []string{"/bind/migrate/code", "/bind/mobile"} {
		r := m.getOnce(p)
		mustStatus(t, "Back to "+p, r, http.StatusOK)
		mustContain(t, "Back to "+p, r.page(), "换绑成功")
	}
	if d, c := e.sim.CallCount("user/delete"), e.sim.CallCount("user/create"); d != 1 || c != 1 {
		t.Fatalf("user/delete %d, user/create %d", d, c)
	}
}

func TestPRGVerify(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
		m := e.newMember()
		link := "/verify?code=" + e.sim.IssueTfaCode(vNumber)

		// The verification link, reloaded: the same page, the code redeemed once.
		start := m.getOnce(link)
		mustStatus(t, "GET /verify?code", start, http.StatusOK)
		mustContain(t, "verify page", start.page(), "发送验证码到 "+vMasked)
		m.mustReload("verify page", link, start)
		if n := e.sim.CallCount("auth/get_tfa_info"); n != 1 {
			t.Fatalf("auth/get_tfa_info called %d times", n)
		}
		r := m.getOnce("/verify/sms")
		mustStatus(t, "GET /verify/sms", r, http.StatusOK)
		expectForm(t, "GET /verify/sms", r, "/verify/sms", "mobile")

		// The code: 303 to the code page; reloads send nothing.
		m.last = start
		code := m.mustSeeOther("send", m.postOnce("/verify/sms", url.Values{"mobile": {""}}), "/verify/sms")
		mustContain(t, "code page", code.page(), "输入验证码", "验证码已发送到 "+vMasked)
		expectForm(t, "code page", code, "/verify/confirm", "sms_code")
		m.mustReload("code page", "/verify/sms", code)
		m.mustReload("code page", link, code) // the link again: the current step

		// A wrong code is refused directly, and passes nobody.
		m.last = code
		sms := e.smsCode(vMobile, app.PurposeVerify)
		mustRefuseDirectly(t, "wrong code", m.postOnce("/verify/confirm", url.Values{"sms_code": {wrongCode(sms)}}), http.StatusBadRequest)

		// Passed: 303 to the success page; reloading it, Back, and the used link show the
		// finished state and call WeCom no more.
		ok := m.mustSeeOther("confirm", m.postOnce("/verify/confirm", url.Values{"sms_code": {sms}}), "/verify/confirm")
		mustContain(t, "success", ok.page(), "验证成功", vNumber)
		m.mustReload("success", "/verify/confirm", ok)
		for _, p := range []string{"/verify/sms", link} {
			r := m.getOnce(p)
			mustStatus(t, "again "+p, r, http.StatusOK)
			mustContain(t, "again "+p, r.page(), "你已完成验证", vNumber)
			mustNotContain(t, "again "+p, r.page(), "重新开始", `action="/verify`)
		}
		if n, g := e.sim.CallCount("user/tfa_succ"), e.sim.CallCount("auth/get_tfa_info"); n != 1 || g != 1 {
			t.Fatalf("user/tfa_succ %d, auth/get_tfa_info %d; want 1 each", n, g)
		}
		if n := e.smsSent(vMobile); n != 1 {
			t.Fatalf("%d SMS codes, want 1", n)
		}

		// Without the flow: a restart page.
		for _, p := range []string{"/verify/sms", "/verify/confirm"} {
			r := e.newMember().getOnce(p)
			if r.status < 400 || r.status >= 500 || r.status == http.StatusMethodNotAllowed {
				t.Fatalf("GET %s without a flow: %d", p, r.status)
			}
			mustContain(t, "GET "+p+" without a flow", r.page(), "重新进入")
		}
	})
}

func TestPRGUnbind(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		b := e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
		m := e.newMember()
		state := e.oauthLocation(m.getOnce("/unbind"), "/unbind")
		link := "/unbind?code=" + e.sim.IssueOAuthCode(uNumber) + "&state=" + state

		show := m.getOnce(link)
		mustStatus(t, "GET /unbind?code", show, http.StatusOK)
		expectForm(t, "GET /unbind?code", show, "/unbind/sms", "csrf_token")
		m.mustReload("unbind page", link, show)

		code := m.mustSeeOther("send", m.postOnce("/unbind/sms", nil), "/unbind/sms")
		mustContain(t, "code page", code.page(), "确认解除绑定", "验证码已发送到 "+uMasked)
		m.mustReload("code page", "/unbind/sms", code)

		m.last = code
		sms := e.smsCode(uMobile, app.PurposeUnbind)
		mustRefuseDirectly(t, "wrong code", m.postOnce("/unbind/confirm", url.Values{"sms_code": {wrongCode(sms)}}), http.StatusBadRequest)

		done := m.mustSeeOther("unbind", m.postOnce("/unbind/confirm", url.Values{"sms_code": {sms}}), "/unbind/confirm")
		mustContain(t, "unbound", done.page(), "已解除绑定", uNumber, `href="/bind"`)
		m.mustReload("unbound", "/unbind/confirm", done)
		// Back, the used link, and the menu's /unbind again: the finished state, no OAuth.
		for _, p := range []string{"/unbind/sms", link, "/unbind"} {
			r := m.getOnce(p)
			mustStatus(t, "again "+p, r, http.StatusOK)
			mustContain(t, "again "+p, r.page(), "已解除绑定", uNumber)
			mustNotContain(t, "again "+p, r.page(), `action="/unbind`)
		}
		if got := e.binding(b.ID); got.Status != app.StatusUnbound {
			t.Fatalf("binding %s", got.Status)
		}
		if d, u := e.sim.CallCount("user/delete"), e.sim.CallCount("auth/getuserinfo"); d != 1 || u != 1 {
			t.Fatalf("user/delete %d, auth/getuserinfo %d; want 1 each", d, u)
		}
		if n := e.smsSent(uMobile); n != 1 {
			t.Fatalf("%d SMS codes, want 1", n)
		}

		for _, p := range []string{"/unbind/sms", "/unbind/confirm"} {
			r := e.newMember().getOnce(p)
			if r.status < 400 || r.status >= 500 || r.status == http.StatusMethodNotAllowed {
				t.Fatalf("GET %s without a flow: %d", p, r.status)
			}
			mustContain(t, "GET "+p+" without a flow", r.page(), `href="/unbind"`)
		}
	})
}

// TestPRGMe: /me reloaded shows the binding as stored, without another OAuth code.
func TestPRGMe(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
	m := e.newMember()
	state := e.oauthLocation(m.getOnce("/me"), "/me")
	link := "/me?code=" + e.sim.IssueOAuthCode(uNumber) + "&state=" + state
	r := m.getOnce(link)
	mustStatus(t, "/me", r, http.StatusOK)
	mustContain(t, "/me", r.page(), "我的绑定", uNumber)
	m.mustReload("/me", link, r)
}

// TestCodeCooldownNote: a resend held back by the cooldown is a 429 code page with a plain note
// (how long to wait; the earlier code still works), not an error box; the earlier code works.
func TestCodeCooldownNote(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
	m := e.newMember()
	m.unbindPage(uNumber)
	m.post("/unbind/sms", nil)
	r := m.postOnce("/unbind/sms", nil)
	mustRefuseDirectly(t, "resend within the cooldown", r, http.StatusTooManyRequests)
	mustContain(t, "resend within the cooldown", r.page(), "确认解除绑定", "秒后再试", "之前发送的验证码仍然有效", `role="status"`)
	mustNotContain(t, "resend within the cooldown", r.page(), `class="err"`, "新的验证码")
	if !hasForm(r.page(), "/unbind/confirm", "sms_code") {
		t.Fatalf("429 without the code form\n%s", r.body)
	}
	if n := e.smsSent(uMobile); n != 1 {
		t.Fatalf("%d codes sent, want 1", n)
	}
	m.mustSeeOther("confirm", m.postOnce("/unbind/confirm", url.Values{"sms_code": {e.smsCode(uMobile, app.PurposeUnbind)}}), "/unbind/confirm")

	// The first send of a flow held back by a code another flow sent a moment ago: 429, the
	// code page, and the way to ask again.
	e.createBinding("2021000002", "2021000002", "13800002222", app.StatusPending)
	if err := e.svc.SendCode(t.Context(), "13800002222", app.PurposeUnbind, ""); err != nil {
		t.Fatal(err)
	}
	v := e.newMember()
	v.startVerify("2021000002")
	r = v.postOnce("/verify/sms", nil)
	mustRefuseDirectly(t, "first send within the cooldown", r, http.StatusTooManyRequests)
	mustContain(t, "first send within the cooldown", r.page(), "秒后再试")
	mustNotContain(t, "first send within the cooldown", r.page(), "仍然有效", `class="err"`)
	expectForm(t, "first send within the cooldown", r, "/verify/sms", "csrf_token")
}

// TestCodeTooManyWrongGuesses: after the last wrong guess the code page says so in its heading,
// also when it is reloaded, and offers a new code.
func TestCodeTooManyWrongGuesses(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
	m := e.newMember()
	m.startVerify(vNumber)
	m.post("/verify/sms", nil)
	code := e.smsCode(vMobile, app.PurposeVerify)
	var r response
	for i := range 5 {
		r = m.postOnce("/verify/confirm", url.Values{"sms_code": {wrongCode(code)}})
		mustStatus(t, "wrong code", r, http.StatusBadRequest)
		if h := strings.Contains(r.page(), "<h1>验证码错误次数过多</h1>"); h != (i == 4) {
			t.Fatalf("wrong code %d: heading says too many: %v\n%s", i+1, h, r.body)
		}
	}
	expectForm(t, "too many", r, "/verify/sms", "csrf_token")
	r = m.getOnce("/verify/sms")
	mustContain(t, "reloaded", r.page(), "<h1>验证码错误次数过多</h1>")
}
