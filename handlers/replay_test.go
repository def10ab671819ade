package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

// flowCookie returns the value of m's flow cookie ("" when it has none).
func (m *member) flowCookie() string {
	u, _ := url.Parse(m.e.srv.URL)
	for _, ck := range m.c.Jar.Cookies(u) {
		if ck.Name == "wecampus_flow" {
			return ck.Value
		}
	}
	return ""
}

// saved is what a browser's user can copy before the last step of a flow: the flow cookie and
// the form's CSRF token.
type saved struct{ flow, csrf string }

func (m *member) save() saved {
	m.e.t.Helper()
	s := saved{flow: m.flowCookie(), csrf: hiddenValue(m.last.page(), "csrf_token")}
	if s.flow == "" || s.csrf == "" {
		m.e.t.Fatalf("nothing to save: flow %q, csrf %q", s.flow, s.csrf)
	}
	return s
}

// replay posts fields to path with the saved cookie and token.
func (m *member) replay(s saved, path string, fields url.Values) response {
	m.e.t.Helper()
	m.setFlow(s.flow)
	if fields == nil {
		fields = url.Values{}
	}
	fields.Set("csrf_token", s.csrf)
	return m.post(path, fields)
}

// mustBeFinished checks the answer to a step of a finished flow: the 409 page that offers a new
// start, and the replayed cookie cleared.
func mustBeFinished(t *testing.T, what string, r response) {
	t.Helper()
	mustStatus(t, what, r, http.StatusConflict)
	mustContain(t, what, r.page(), "操作已完成", "不能重复提交")
	if ck := cookieNamed(r, "wecampus_flow"); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("%s: the finished flow's cookie is not cleared: %+v", what, ck)
	}
}

// TestLoginCSRF: a CAS ticket is validated only in the browser that started the login at
// /bind/login; in any other browser it gets 401 and is not sent to CAS. The pre-login cookie is
// short-lived, HttpOnly, SameSite=Lax, Secure on https, and used up by one ticket.
func TestLoginCSRF(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.cas.AddUser("2021123456", "pw", "张三", "student")
	service := e.baseURL + "/bind/cas"

	victim, owner := e.newMember(), e.newMember()
	mustStatus(t, "/bind/login", owner.get("/bind/login"), http.StatusFound)
	ticket := e.cas.IssueTicket("2021123456", service)

	// A ticket sent to a browser that did not start a login (a link from someone else).
	r := victim.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
	mustStatus(t, "ticket without pre-login", r, http.StatusUnauthorized)
	mustContain(t, "ticket without pre-login", r.page(), "请重新登录", `href="/bind/login"`)
	if hasForm(r.page(), "/bind/mobile", "mobile") || liveCookie(r, "wecampus_flow") != nil {
		t.Fatal("a ticket without a pre-login started a flow")
	}
	// A cookie of another flow is no pre-login either.
	e.oauthLocation(victim.get("/me"), "/me")
	mustStatus(t, "ticket with a /me flow", victim.get("/bind/cas?ticket="+url.QueryEscape(ticket)), http.StatusUnauthorized)
	// Neither was sent to CAS: the ticket still works where the login started.
	if n := e.cas.Validations(); n != 0 {
		t.Fatalf("%d CAS validations for tickets without a pre-login, want 0", n)
	}
	r = owner.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
	mustStatus(t, "ticket in the browser that started the login", r, http.StatusOK)
	mustContain(t, "ticket in the browser that started the login", r.page(), `action="/bind/mobile"`)

	// Single use: the next ticket in the same browser needs a new /bind/login.
	r = owner.get("/bind/cas?ticket=" + url.QueryEscape(e.cas.IssueTicket("2021123456", service)))
	mustStatus(t, "second ticket, same pre-login", r, http.StatusUnauthorized)
	// Also when CAS refused the ticket.
	other := e.newMember()
	other.get("/bind/login")
	mustStatus(t, "junk ticket", other.get("/bind/cas?ticket=ST-junk"), http.StatusUnauthorized)
	r = other.get("/bind/cas?ticket=" + url.QueryEscape(e.cas.IssueTicket("2021123456", service)))
	mustStatus(t, "ticket after a refused one", r, http.StatusUnauthorized)
	mustContain(t, "ticket after a refused one", r.page(), "请重新登录")
	if n := e.cas.Validations(); n != 2 {
		t.Fatalf("%d CAS validations, want 2 (one per pre-login)", n)
	}

	// A pre-login older than its 10 minutes (sealed like the server's) is refused unasked.
	late := e.newMember()
	late.get("/bind/login")
	late.setFlow(sealFlow(t, map[string]any{"k": "login", "i": "0123456789abcdef0123456789abcdef", "e": time.Now().Add(-time.Second).Unix()}))
	mustStatus(t, "expired pre-login", late.get("/bind/cas?ticket="+url.QueryEscape(e.cas.IssueTicket("2021123456", service))), http.StatusUnauthorized)
	if n := e.cas.Validations(); n != 2 {
		t.Fatalf("an expired pre-login's ticket was sent to CAS")
	}
}

// TestLoginCookie: /bind/login's pre-login cookie on an https base_url (where the flow cookie's
// name has the __Host- prefix).
func TestLoginCookie(t *testing.T) {
	e := newEnv(t) // base_url https
	r := e.newMember().get("/bind/login")
	mustStatus(t, "/bind/login", r, http.StatusFound)
	ck := cookieNamed(r, "__Host-wecampus_flow")
	if ck == nil || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge <= 0 || ck.MaxAge > 10*60+1 || ck.Path != "/" {
		t.Fatalf("pre-login cookie %+v: want HttpOnly, Secure, SameSite=Lax, at most 10 minutes", ck)
	}
	// Nothing of it travels to CAS: the service URL is exactly {base_url}/bind/cas.
	u, err := url.Parse(r.header.Get("Location"))
	if err != nil || u.Query().Get("service") != e.baseURL+"/bind/cas" {
		t.Fatalf("Location %q", r.header.Get("Location"))
	}
}

// TestFlowReplay: a flow that has finished cannot be replayed from its cookie. For each kind of
// finish (bound, migrated, verified, unbound) the browser's cookie and form token are saved
// before the last POST; after it succeeded, every step replayed with them gets the finished state
// or the 409 restart page, and nothing happens: no SMS, no WeCom call, no stored change.
func TestFlowReplay(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		t.Run("Bound", func(t *testing.T) {
			e := newEnv(t, append(opts, withLocalBaseURL())...)
			m := e.person("2021000001", "王五", "student")
			s := m.save()
			mustStatus(t, "bind", m.submitMobile("13800001234"), http.StatusOK)
			calls, before := e.callsExceptToken(), e.tally()

			// Replayed while the binding lives: the finished state, nothing changed.
			r := m.replay(s, "/bind/mobile", url.Values{"mobile": {"13900001234"}})
			mustStatus(t, "replayed bind", r, http.StatusOK)
			mustContain(t, "replayed bind", r.page(), "该学号/工号已绑定", "138****1234")
			if e.callsExceptToken() != calls || e.tally() != before {
				t.Fatalf("replayed bind had an effect: calls %d -> %d, %v -> %v", calls, e.callsExceptToken(), before, e.tally())
			}
			// Unbound since: the replay must not bind the number again.
			if _, err := e.svc.AdminUnbind(context.Background(), "2021000001", "test"); err != nil {
				t.Fatal(err)
			}
			calls, before = e.callsExceptToken(), e.tally()
			mustBeFinished(t, "replayed bind after unbind", m.replay(s, "/bind/mobile", url.Values{"mobile": {"13800001234"}}))
			if e.callsExceptToken() != calls || e.tally() != before || before.LiveBindings != 0 {
				t.Fatalf("replayed bind after unbind had an effect: %v -> %v", before, e.tally())
			}
		})

		t.Run("Migrated", func(t *testing.T) {
			e := newEnv(t, append(opts, withLocalBaseURL())...)
			m, old := startRebind(t, e)
			s := m.save()
			code := e.lastSMSCode(heldMobile)
			mustStatus(t, "换绑", m.post("/bind/migrate", url.Values{"sms_code": {code}}), http.StatusOK)
			checkRebound(t, e, old)
			e.useClock().Advance(2 * time.Minute) // past the SMS cooldown: only the finish stops a code
			calls, before, sent := e.callsExceptToken(), e.tally(), e.smsSent(heldMobile)

			mustBeFinished(t, "replayed 换绑 code", m.replay(s, "/bind/migrate/code", nil))
			r := m.replay(s, "/bind/migrate", url.Values{"sms_code": {code}})
			mustStatus(t, "replayed 换绑", r, http.StatusOK)
			mustContain(t, "replayed 换绑", r.page(), "该学号/工号已绑定")
			if e.callsExceptToken() != calls || e.tally() != before || e.smsSent(heldMobile) != sent {
				t.Fatalf("replayed 换绑 had an effect: calls %d -> %d, %v -> %v, sms %d -> %d",
					calls, e.callsExceptToken(), before, e.tally(), sent, e.smsSent(heldMobile))
			}
		})

		t.Run("Verified", func(t *testing.T) {
			e := newEnv(t, append(opts, withLocalBaseURL())...)
			clock := e.withOffsetClock()
			b := e.createBinding(vNumber, vNumber, vMobile, app.StatusPending)
			m := e.newMember()
			expectStatus(t, "GET /verify?code", m.startVerify(vNumber), http.StatusOK)
			expectStatus(t, "POST /verify/sms", m.post("/verify/sms", url.Values{"mobile": {vMobile}}), http.StatusOK)
			s := m.save()
			code := e.smsCode(vMobile, app.PurposeVerify)
			expectStatus(t, "POST /verify/confirm", m.post("/verify/confirm", url.Values{"sms_code": {code}}), http.StatusOK)
			clock.Advance(2 * time.Minute) // past the SMS cooldown, within WeCom's 5 minutes
			calls, sent, states := e.callsExceptToken(), e.smsSent(vMobile), e.bindingStates()

			mustBeFinished(t, "replayed verify code", m.replay(s, "/verify/sms", url.Values{"mobile": {vMobile}}))
			mustBeFinished(t, "replayed verify", m.replay(s, "/verify/confirm", url.Values{"sms_code": {code}}))
			if e.callsExceptToken() != calls || e.smsSent(vMobile) != sent || e.bindingStates() != states {
				t.Fatalf("replayed verify had an effect: calls %d -> %d, sms %d -> %d", calls, e.callsExceptToken(), sent, e.smsSent(vMobile))
			}
			if n := e.sim.CallCount("user/tfa_succ"); n != 1 || e.binding(b.ID).Status != app.StatusActive {
				t.Fatalf("user/tfa_succ called %d times", n)
			}
		})

		t.Run("Unbound", func(t *testing.T) {
			e := newEnv(t, append(opts, withLocalBaseURL())...)
			clock := e.withOffsetClock()
			e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
			m := e.newMember()
			m.unbindPage(uNumber)
			expectStatus(t, "POST /unbind/sms", m.post("/unbind/sms", nil), http.StatusOK)
			s := m.save()
			code := e.smsCode(uMobile, app.PurposeUnbind)
			expectStatus(t, "POST /unbind/confirm", m.post("/unbind/confirm", url.Values{"sms_code": {code}}), http.StatusOK)
			// The same person binds again; the old unbind flow must not touch the new binding.
			again := e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
			clock.Advance(2 * time.Minute)
			calls, sent, states := e.callsExceptToken(), e.smsSent(uMobile), e.bindingStates()

			mustBeFinished(t, "replayed unbind code", m.replay(s, "/unbind/sms", nil))
			mustBeFinished(t, "replayed unbind", m.replay(s, "/unbind/confirm", url.Values{"sms_code": {code}}))
			if e.callsExceptToken() != calls || e.smsSent(uMobile) != sent || e.bindingStates() != states {
				t.Fatalf("replayed unbind had an effect: calls %d -> %d, sms %d -> %d", calls, e.callsExceptToken(), sent, e.smsSent(uMobile))
			}
			if got := e.binding(again.ID); got.Status != app.StatusActive {
				t.Fatalf("the new binding is %s", got.Status)
			}
		})
	})
}
