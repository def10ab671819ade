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
	oldNumber  = "2019000001" // 张三's 预科 number, bound with heldMobile
	newNumber  = "2023000001" // 张三's 本科 number
	heldMobile = "13800001234"
)

// startRebind seeds 张三's earlier binding, logs 张三 in with the new number, submits the held
// mobile (409 with the 换绑 offer) and asks for the code. It returns the browser on the code page.
func startRebind(t *testing.T, e *env) (*member, *app.Binding) {
	t.Helper()
	old := e.seedBinding(oldNumber, "张三", heldMobile, app.StatusActive)
	m := e.person(newNumber, "张三", "student")
	r := m.submitMobile("+86 138-0000-1234")
	mustStatus(t, "held by own earlier binding", r, http.StatusConflict)
	if !hasForm(r.page(), "/bind/migrate/code", "csrf_token") {
		t.Fatalf("409 page without the 换绑 form\n%s", r.body)
	}
	mustContain(t, "换绑 offer", r.page(), "138****1234", "201*****01", "换绑") // old number masked apart from the new one
	mustNotContain(t, "换绑 offer", r.page(), heldMobile, oldNumber)
	r = m.post("/bind/migrate/code", nil)
	mustStatus(t, "/bind/migrate/code", r, http.StatusOK)
	if !hasForm(r.page(), "/bind/migrate", "sms_code") {
		t.Fatalf("code page without the code form\n%s", r.body)
	}
	mustContain(t, "code page", r.page(), "138****1234")
	mustNotContain(t, "code page", r.page(), heldMobile)
	return m, old
}

// lastSMSCode returns the last code sent to mobile.
func (e *env) lastSMSCode(mobile string) string {
	e.t.Helper()
	code, ok := e.sms.Last(mobile)
	if !ok {
		e.t.Fatalf("no SMS code sent to %s", app.MaskMobile(mobile))
	}
	return code
}

// otherCode returns a 6-digit code that is not code.
func otherCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

// checkRebound asserts the end state of a completed 换绑 of old.
func checkRebound(t *testing.T, e *env, old *app.Binding) *app.Binding {
	t.Helper()
	if _, ok := e.sim.Member(oldNumber); ok {
		t.Fatal("the old member still exists in WeCom")
	}
	mem, ok := e.sim.Member(newNumber)
	if !ok || mem.Mobile != heldMobile || mem.Name != "张三" || len(mem.Department) != 1 || mem.Department[0] != 2 || mem.Status != 4 {
		t.Fatalf("new member: %+v %v", mem, ok)
	}
	nb := e.liveBinding(newNumber)
	if nb == nil || nb.Status != app.StatusPending || nb.Mobile != heldMobile || nb.UserID != newNumber {
		t.Fatalf("new binding: %+v", nb)
	}
	ob := e.binding(old.ID)
	if ob.Status != app.StatusRebound || ob.ReboundTo != nb.ID || !strings.Contains(ob.Reason, newNumber) {
		t.Fatalf("old binding: %+v (new id %d)", ob, nb.ID)
	}
	// The audit trail of either binding names both numbers.
	for _, id := range []int64{old.ID, nb.ID} {
		evs, err := e.db.FindEvents(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, ev := range evs {
			all.WriteString(ev.Kind + " " + ev.Detail + "\n")
			if strings.Contains(ev.Detail, heldMobile) {
				t.Fatalf("an event shows the full mobile: %q", ev.Detail)
			}
		}
		if !strings.Contains(all.String(), oldNumber) || !strings.Contains(all.String(), newNumber) {
			t.Fatalf("events of binding %d do not name both numbers:\n%s", id, all.String())
		}
		if id == old.ID && !strings.Contains(all.String(), app.EventRebound) {
			t.Fatalf("no %s event:\n%s", app.EventRebound, all.String())
		}
	}
	if got := e.tally(); got.LiveBindings != 1 || got.OpenIntents != 0 {
		t.Fatalf("after 换绑: %v", got)
	}
	return nb
}

func TestRebind(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		m, old := startRebind(t, e)
		code := e.lastSMSCode(heldMobile)
		token := hiddenValue(m.last.page(), "csrf_token")

		r := m.post("/bind/migrate", url.Values{"sms_code": {code}})
		mustStatus(t, "/bind/migrate", r, http.StatusOK)
		mustContain(t, "follow page", r.page(), "换绑成功", newNumber, "138****1234")
		checkRebound(t, e, old)
		if d, c := e.sim.CallCount("user/delete"), e.sim.CallCount("user/create"); d != 1 || c != 1 {
			t.Fatalf("user/delete %d, user/create %d", d, c)
		}

		// A second click (or a reload of the POST) changes nothing: the same outcome.
		calls := len(e.sim.Calls())
		r = m.post("/bind/migrate", url.Values{"sms_code": {code}, "csrf_token": {token}})
		mustStatus(t, "second /bind/migrate", r, http.StatusOK)
		mustContain(t, "second /bind/migrate", r.page(), "换绑成功", newNumber)
		if e.writeCalls() != 2 || len(e.sim.Calls()) > calls+1 { // the QR code may be fetched
			t.Fatalf("second submit called WeCom: %+v", e.sim.Calls()[calls:])
		}
	})
}

func TestRebindWrongCode(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		m, old := startRebind(t, e)
		code := e.lastSMSCode(heldMobile)

		for _, bad := range []string{otherCode(code), "", "12345", "abcdef"} {
			r := m.post("/bind/migrate", url.Values{"sms_code": {bad}})
			mustStatus(t, "code "+bad, r, http.StatusBadRequest)
			if !hasForm(r.page(), "/bind/migrate", "sms_code") {
				t.Fatalf("code %q: the code form must be shown again", bad)
			}
			mustContain(t, "code "+bad, r.page(), "验证码")
		}
		if e.writeCalls() != 0 {
			t.Fatal("a wrong code reached WeCom")
		}
		if b := e.binding(old.ID); b.Status != app.StatusActive {
			t.Fatalf("old binding after wrong codes: %+v", b)
		}
		// Two wrong guesses ("000000", "abcdef") were counted; the right code still works.
		r := m.post("/bind/migrate", url.Values{"sms_code": {" " + code + " "}})
		mustStatus(t, "right code", r, http.StatusOK)
		checkRebound(t, e, old)
	})
}

func TestRebindTooManyWrongCodes(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	m, old := startRebind(t, e)
	code := e.lastSMSCode(heldMobile)
	for i := 0; i < 5; i++ {
		mustStatus(t, "wrong code", m.post("/bind/migrate", url.Values{"sms_code": {otherCode(code)}}), http.StatusBadRequest)
	}
	r := m.post("/bind/migrate", url.Values{"sms_code": {code}})
	mustStatus(t, "right code after 5 wrong ones", r, http.StatusBadRequest)
	mustContain(t, "exhausted code", r.page(), "错误次数过多")
	if e.writeCalls() != 0 || e.binding(old.ID).Status != app.StatusActive {
		t.Fatal("an exhausted code was accepted")
	}
}

func TestRebindExpiredCode(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		clock := e.useClock()
		m, old := startRebind(t, e)
		code := e.lastSMSCode(heldMobile)
		clock.Advance(5*time.Minute + time.Second)

		r := m.post("/bind/migrate", url.Values{"sms_code": {code}})
		mustStatus(t, "expired code", r, http.StatusBadRequest)
		mustContain(t, "expired code", r.page(), "过期")
		if !hasForm(r.page(), "/bind/migrate/code", "csrf_token") {
			t.Fatal("the page must offer a new code")
		}
		if e.writeCalls() != 0 || e.binding(old.ID).Status != app.StatusActive {
			t.Fatal("an expired code was accepted")
		}

		// A new code (the cooldown is over) completes it.
		mustStatus(t, "new code", m.post("/bind/migrate/code", nil), http.StatusOK)
		fresh := e.lastSMSCode(heldMobile)
		mustStatus(t, "fresh code", m.post("/bind/migrate", url.Values{"sms_code": {fresh}}), http.StatusOK)
		checkRebound(t, e, old)
	})
}

func TestRebindCodeCooldown(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	m, _ := startRebind(t, e)
	first := e.lastSMSCode(heldMobile)
	// Asking again at once is refused politely on the code page (429: a note, not an error box,
	// saying that the earlier code still works), and sends nothing.
	r := m.post("/bind/migrate/code", nil)
	mustStatus(t, "resend within cooldown", r, http.StatusTooManyRequests)
	mustContain(t, "resend within cooldown", r.page(), "过于频繁", "之前发送的验证码仍然有效")
	mustNotContain(t, "resend within cooldown", r.page(), `class="err"`)
	if !hasForm(r.page(), "/bind/migrate", "sms_code") {
		t.Fatal("the code form must stay")
	}
	if got := e.lastSMSCode(heldMobile); got != first || e.tally().SMSCodes != 1 {
		t.Fatal("a second code was sent within the cooldown")
	}
}

func TestRebindCreateFailsAfterDelete(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		m, old := startRebind(t, e)
		code := e.lastSMSCode(heldMobile)
		e.sim.Inject("user/create", 1, wecomtest.Fault{ErrCode: -1})

		r := m.post("/bind/migrate", url.Values{"sms_code": {code}})
		mustStatus(t, "create fails", r, http.StatusServiceUnavailable)
		if !hasForm(r.page(), "/bind/migrate", "csrf_token") {
			t.Fatalf("no retry form\n%s", r.body)
		}
		mustContain(t, "retry page", r.page(), "重试", "系统繁忙")
		if strings.Contains(r.page(), `name="sms_code"`) && strings.Contains(r.page(), "required") {
			t.Fatal("the retry must not ask for the (used) code again")
		}
		// Half-way: the old member is released, the new one not created, the intent open.
		if _, ok := e.sim.Member(oldNumber); ok {
			t.Fatal("old member not deleted")
		}
		if b := e.binding(old.ID); b.Status != app.StatusRebound {
			t.Fatalf("old binding: %+v", b)
		}
		if e.liveBinding(newNumber) != nil || e.tally().OpenIntents != 1 {
			t.Fatalf("after the failed create: %v", e.tally())
		}

		// The retry completes it without a new code.
		r = m.post("/bind/migrate", nil)
		mustStatus(t, "retry", r, http.StatusOK)
		mustContain(t, "retry", r.page(), "换绑成功")
		checkRebound(t, e, old)
		if d, c := e.sim.CallCount("user/delete"), e.sim.CallCount("user/create"); d != 1 || c != 2 {
			t.Fatalf("user/delete %d, user/create %d", d, c)
		}
		if e.tally().SMSCodes != 1 {
			t.Fatal("the retry sent a new code")
		}
	})
}

func TestRebindDeleteFails(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		m, old := startRebind(t, e)
		code := e.lastSMSCode(heldMobile)
		e.sim.Inject("user/delete", 1, wecomtest.Fault{ErrCode: 45009})

		r := m.post("/bind/migrate", url.Values{"sms_code": {code}})
		mustStatus(t, "delete fails", r, http.StatusServiceUnavailable)
		if !hasForm(r.page(), "/bind/migrate", "csrf_token") {
			t.Fatalf("no retry form\n%s", r.body)
		}
		// Nothing half-done: the old member and binding are as they were.
		if _, ok := e.sim.Member(oldNumber); !ok {
			t.Fatal("old member gone")
		}
		if b := e.binding(old.ID); b.Status != app.StatusActive {
			t.Fatalf("old binding: %+v", b)
		}
		if e.sim.CallCount("user/create") != 0 {
			t.Fatal("created the new member before releasing the old one")
		}
		r = m.post("/bind/migrate", nil)
		mustStatus(t, "retry", r, http.StatusOK)
		checkRebound(t, e, old)
	})
}

func TestRebindAbandonedIsRepaired(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		clock := e.useClock()
		m, old := startRebind(t, e)
		e.sim.Inject("user/create", 1, wecomtest.Fault{ErrCode: -1})
		mustStatus(t, "create fails", m.post("/bind/migrate", url.Values{"sms_code": {e.lastSMSCode(heldMobile)}}), http.StatusServiceUnavailable)

		// The member walks away. A young intent is left alone (a request may still be running)…
		if n, err := e.svc.RepairIntents(context.Background()); err != nil || n != 0 {
			t.Fatalf("repair of a young intent: %d %v", n, err)
		}
		// …an old one is finished: the member asked for it with a valid code.
		clock.Advance(3 * time.Minute)
		if n, err := e.svc.RepairIntents(context.Background()); err != nil || n != 1 {
			t.Fatalf("repair: %d %v", n, err)
		}
		checkRebound(t, e, old)
	})
}

func TestRebindNotOwnBinding(t *testing.T) {
	// The holder has another name: no 换绑 offer, and a forged step is refused.
	e := newEnv(t, withLocalBaseURL())
	e.seedBinding(oldNumber, "张叁", heldMobile, app.StatusActive)
	m := e.person(newNumber, "张三", "student")
	r := m.submitMobile(heldMobile)
	mustStatus(t, "held by another name", r, http.StatusConflict)
	if hasForm(r.page(), "/bind/migrate/code", "csrf_token") {
		t.Fatal("换绑 offered for someone else's binding")
	}
	r = m.post("/bind/migrate/code", nil)
	if r.status < 400 || r.status >= 500 {
		t.Fatalf("/bind/migrate/code without an offer: %d", r.status)
	}
	if e.tally().SMSCodes != 0 {
		t.Fatal("code sent without an offer")
	}
}

func TestRebindCodeRecentlySentForAnotherPurpose(t *testing.T) {
	// A verify code went to the mobile a moment ago: the 换绑 offer stays, with the reason.
	e := newEnv(t, withLocalBaseURL())
	e.seedBinding(oldNumber, "张三", heldMobile, app.StatusActive)
	if err := e.svc.SendCode(context.Background(), heldMobile, app.PurposeVerify, ""); err != nil {
		t.Fatal(err)
	}
	m := e.person(newNumber, "张三", "student")
	mustStatus(t, "held mobile", m.submitMobile(heldMobile), http.StatusConflict)
	r := m.post("/bind/migrate/code", nil)
	mustStatus(t, "code within the cooldown", r, http.StatusTooManyRequests)
	mustContain(t, "code within the cooldown", r.page(), "过于频繁")
	if !hasForm(r.page(), "/bind/migrate/code", "csrf_token") {
		t.Fatal("the 换绑 offer must stay")
	}
}
