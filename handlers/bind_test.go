package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
)

func TestBindHappyPath(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.cas.AddUser("2021123456", "pw", "张三", "student")
		m := e.newMember()

		// The landing page: 在校师生 leads to the CAS login.
		r := m.get("/bind")
		mustStatus(t, "/bind", r, http.StatusOK)
		mustContain(t, "/bind", r.page(), "在校师生", `href="/bind/login"`)

		// A fresh CAS login, whatever SSO session the browser holds.
		r = m.get("/bind/login")
		mustStatus(t, "/bind/login", r, http.StatusFound)
		service := e.baseURL + "/bind/cas"
		if want := e.cas.URL() + "/login?service=" + url.QueryEscape(service) + "&renew=true"; r.header.Get("Location") != want {
			t.Fatalf("/bind/login redirects to %q, want %q", r.header.Get("Location"), want)
		}

		ticket := e.cas.IssueTicket("2021123456", service)
		page := m.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
		mustStatus(t, "/bind/cas", page, http.StatusOK)
		if !hasForm(page.page(), "/bind/mobile", "mobile") || !hasForm(page.page(), "/bind/mobile", "csrf_token") {
			t.Fatalf("/bind/cas: no mobile form with a CSRF token\n%s", page.body)
		}
		// The page shows who is binding, and the way out when it is someone else.
		mustContain(t, "/bind/cas", page.page(), "张三", "2021123456", "学生", "切换账号", `href="/bind/switch"`)
		v, ok := e.cas.LastValidation()
		if !ok || v.Service != service || !v.Renew || v.Ticket != ticket || v.Protocol != 3 {
			t.Fatalf("CAS validation: %+v (service want %q, renew=true)", v, service)
		}
		ck := cookieNamed(page, "wecampus_flow")
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge <= 0 || ck.MaxAge > 15*60+1 {
			t.Fatalf("flow cookie: %+v", ck)
		}
		if strings.Contains(ck.Value, "2021123456") {
			t.Fatal("the flow cookie must be sealed, not readable")
		}

		r = m.submitMobile("+86 138 0000 1234")
		mustStatus(t, "/bind/mobile", r, http.StatusOK)
		mustContain(t, "follow page", r.page(), "注册成功", "138****1234", "2021123456", "<img", "关注")
		mustNotContain(t, "follow page", r.page(), "13800001234")

		mem, ok := e.sim.Member("2021123456")
		if !ok || mem.Mobile != "13800001234" || mem.Name != "张三" || len(mem.Department) != 1 || mem.Department[0] != 2 || mem.Status != 4 || !mem.ToInvite {
			t.Fatalf("member in WeCom: %+v %v", mem, ok)
		}
		b := e.liveBinding("2021123456")
		if b == nil || b.Status != app.StatusPending || b.UserID != "2021123456" || b.Mobile != "13800001234" ||
			b.Name != "张三" || b.Type != "student" || b.Department != 2 {
			t.Fatalf("binding: %+v", b)
		}
		evs, err := e.db.FindEvents(context.Background(), b.ID)
		if err != nil || len(evs) != 1 || evs[0].Kind != app.EventBound || evs[0].Actor != app.ActorMember {
			t.Fatalf("events: %+v %v", evs, err)
		}
		if n := e.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create calls = %d", n)
		}
		inv := e.sim.Invites()
		if len(inv) != 1 || inv[0].UserID != "2021123456" || inv[0].Source != "create" {
			t.Fatalf("invites: %+v", inv)
		}
		// A fresh bind: user/create, plus the join QR code of the follow page (cached).
		if n := e.callsExceptToken(); n > 2 {
			t.Fatalf("%d WeCom calls for a fresh bind: %+v", n, e.sim.Calls())
		}
		if n := e.sim.CallCount("user/getuserid"); n != 0 {
			t.Fatalf("user/getuserid called %d times on a fresh bind", n)
		}
		if got := e.intentResults(); len(got) != 1 || got[0] != "bound" {
			t.Fatalf("intents: %v", got)
		}

		// The logs name the binding, masked.
		mustNotContain(t, "logs", e.logs.String(), "13800001234", "张三")
		mustContain(t, "logs", e.logs.String(), "138****1234")

		// Coming back later shows the binding, not the form.
		m2 := e.newMember()
		r = m2.login("2021123456")
		mustStatus(t, "second login", r, http.StatusOK)
		mustContain(t, "second login", r.page(), "已绑定", "138****1234")
		if hasForm(r.page(), "/bind/mobile", "mobile") {
			t.Fatal("a bound number must not get the mobile form again")
		}
	})
}

func TestBindSwitchAccount(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	m := e.person("2021123456", "张三", "student")
	token := hiddenValue(m.last.page(), "csrf_token")
	r := m.get("/bind/switch")
	mustStatus(t, "/bind/switch", r, http.StatusFound)
	if want := e.cas.URL() + "/logout?service=" + url.QueryEscape(e.baseURL+"/bind/login"); r.header.Get("Location") != want {
		t.Fatalf("/bind/switch redirects to %q, want %q", r.header.Get("Location"), want)
	}
	if ck := cookieNamed(r, "wecampus_flow"); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("switching accounts must clear the flow cookie: %+v", ck)
	}
	// The old identity's form, still open in the browser, can no longer be submitted.
	r = m.post("/bind/mobile", url.Values{"mobile": {"13800001234"}, "csrf_token": {token}})
	if r.status < 400 || r.status >= 500 || r.status == http.StatusForbidden {
		t.Fatalf("submit after switching: %d", r.status)
	}
	mustContain(t, "submit after switching", r.page(), `href="/bind"`)
	if e.writeCalls() != 0 {
		t.Fatal("WeCom written after switching accounts")
	}
}

func TestBindTickets(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.cas.AddUser("2021123456", "pw", "张三", "student")
		service := e.baseURL + "/bind/cas"

		t.Run("Replay", func(t *testing.T) {
			ticket := e.cas.IssueTicket("2021123456", service)
			m := e.newMember()
			m.get("/bind/login")
			mustStatus(t, "first use", m.get("/bind/cas?ticket="+url.QueryEscape(ticket)), http.StatusOK)
			other := e.newMember()
			other.get("/bind/login") // a browser that started a login: CAS itself refuses the replay
			r := other.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
			mustStatus(t, "second use", r, http.StatusUnauthorized)
			mustContain(t, "second use", r.page(), "身份认证失败", `href="/bind/login"`)
			if hasForm(r.page(), "/bind/mobile", "mobile") {
				t.Fatal("a replayed ticket got the mobile form")
			}
		})
		for name, q := range map[string]string{
			"Unknown":      "ticket=ST-0000000000000000-castest",
			"Garbage":      "ticket=" + url.QueryEscape("<script>alert(1)</script>"),
			"Missing":      "",
			"Empty":        "ticket=",
			"OtherService": "ticket=" + url.QueryEscape(e.cas.IssueTicket("2021123456", e.baseURL+"/other")),
		} {
			t.Run(name, func(t *testing.T) {
				m := e.newMember()
				m.get("/bind/login")
				r := m.get("/bind/cas?" + q)
				mustStatus(t, "/bind/cas?"+q, r, http.StatusUnauthorized)
				mustNotContain(t, "invalid ticket", r.page(), "<script>")
				if liveCookie(r, "wecampus_flow") != nil {
					t.Fatal("an invalid ticket must not start a flow")
				}
			})
		}
		if e.writeCalls() != 0 || e.tally().Bindings != 0 {
			t.Fatal("an invalid ticket wrote something")
		}
	})
}

func TestBindRefusedIdentity(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		// The page names the refused account (masked) and its type in Chinese.
		for _, tc := range []struct{ number, typ, shows string }{
			{"2015000001", "alumni", "20******01 的身份是“校友”"},
			{"AB12", "student", "A**2（学生）"}, // a student type whose number no rule admits
			{"2015000002", "", "“未知”"},      // no type attribute at all
		} {
			e.cas.AddUser(tc.number, "pw", "李四", tc.typ)
			m := e.newMember()
			r := m.login(tc.number)
			mustStatus(t, "refused "+tc.number, r, http.StatusForbidden)
			mustContain(t, "refused "+tc.number, r.page(), tc.shows, "不在本系统开放注册的范围内")
			if hasForm(r.page(), "/bind/mobile", "mobile") {
				t.Fatal("a refused identity got the mobile form")
			}
			// No flow was started: there is nothing to post the form with.
			if liveCookie(r, "wecampus_flow") != nil {
				t.Fatal("a refused identity got a flow cookie")
			}
		}
		if e.writeCalls() != 0 || e.tally().Intents != 0 {
			t.Fatal("a refused identity wrote something")
		}
	})
}

func TestBindCASDown(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.cas.AddUser("2021123456", "pw", "张三", "student")
		ticket := e.cas.IssueTicket("2021123456", e.baseURL+"/bind/cas")
		e.cas.SetDown(true)
		m := e.newMember()
		m.get("/bind/login")
		r := m.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
		mustStatus(t, "CAS down", r, http.StatusServiceUnavailable)
		mustContain(t, "CAS down", r.page(), "统一身份认证暂时无法访问")
		e.cas.SetDown(false)
		// The way forward is a new login, which works once CAS is back.
		e.person("2021123456", "张三", "student")
	})
}

func TestBindBadMobile(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		m := e.person("2021123456", "张三", "student")
		for _, bad := range []string{"abcdefghijk", "1380000123", "138000012345", "23800001234", "", "   ", "138-0000-123a", "+1 650 253 0000", "12800001234"} {
			r := m.submitMobile(bad)
			mustStatus(t, "mobile "+bad, r, http.StatusBadRequest)
			if !hasForm(r.page(), "/bind/mobile", "mobile") || !hasForm(r.page(), "/bind/mobile", "csrf_token") {
				t.Fatalf("mobile %q: the form must be shown again\n%s", bad, r.body)
			}
			mustContain(t, "mobile "+bad, r.page(), "手机号格式不正确", "张三")
		}
		if n := e.callsExceptToken(); n != 0 {
			t.Fatalf("bad mobiles made %d WeCom calls", n)
		}
		if got := e.tally(); got != (tally{}) {
			t.Fatalf("bad mobiles wrote: %v", got)
		}
		// The same flow still works with a good number.
		mustStatus(t, "good mobile", m.submitMobile("13800001234"), http.StatusOK)
	})
}

func TestBindAlreadyBound(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)

		t.Run("AtLogin", func(t *testing.T) {
			e.seedBinding("2021000001", "张三", "13800000001", app.StatusActive)
			e.cas.AddUser("2021000001", "pw", "张三", "student")
			before := len(e.sim.Calls())
			r := e.newMember().login("2021000001")
			mustStatus(t, "login", r, http.StatusOK)
			mustContain(t, "already bound", r.page(), "该学号/工号已绑定", "138****0001", `href="/unbind"`)
			mustNotContain(t, "already bound", r.page(), "13800000001")
			if len(e.sim.Calls()) != before {
				t.Fatalf("WeCom called: %+v", e.sim.Calls()[before:])
			}
		})
		t.Run("AtSubmit", func(t *testing.T) {
			// Bound from another phone while this one was on the form.
			m := e.person("2021000002", "王五", "student")
			e.seedBinding("2021000002", "王五", "13800000002", app.StatusPending)
			before, writes := e.tally(), e.writeCalls()
			r := m.submitMobile("13900000000")
			mustStatus(t, "submit", r, http.StatusOK)
			mustContain(t, "already bound", r.page(), "该学号/工号已绑定", "138****0002")
			if e.writeCalls() != writes {
				t.Fatal("WeCom written for an already bound number")
			}
			if after := e.tally(); after != before {
				t.Fatalf("stored %v, before %v", after, before)
			}
		})
	})
}

func TestBindMobileHeldByAnotherPerson(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.seedBinding("2020000001", "赵六", "13800001234", app.StatusActive)
		m := e.person("2021123456", "张三", "student")
		before, calls := e.tally(), len(e.sim.Calls())
		r := m.submitMobile("138 0000 1234")
		mustStatus(t, "held mobile", r, http.StatusConflict)
		mustContain(t, "held mobile", r.page(), "138****1234", "20******01", "已被")
		mustNotContain(t, "held mobile", r.page(), "13800001234", "2020000001", "赵六", `action="/bind/migrate/code"`)
		if len(e.sim.Calls()) != calls {
			t.Fatalf("WeCom asked although our bindings know the holder: %+v", e.sim.Calls()[calls:])
		}
		if after := e.tally(); after != before {
			t.Fatalf("stored %v, before %v", after, before)
		}
		// Another mobile works.
		mustStatus(t, "other mobile", m.submitMobile("13800005678"), http.StatusOK)
	})
}

func TestBindMobileHeldInWeCom(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		// A member added in the admin console, unknown to our bindings.
		if err := e.sim.AddMember(wecomtestMember("t2008001", "钱七", "13800001234", 1)); err != nil {
			t.Fatal(err)
		}
		m := e.person("2021123456", "张三", "student")
		r := m.submitMobile("13800001234")
		mustStatus(t, "mobile in WeCom", r, http.StatusConflict)
		mustContain(t, "mobile in WeCom", r.page(), "138****1234", "t2****01")
		mustNotContain(t, "mobile in WeCom", r.page(), "13800001234", "t2008001", "钱七", `action="/bind/migrate/code"`)
		if n := e.sim.CallCount("user/create"); n != 1 {
			t.Fatalf("user/create calls = %d", n)
		}
		if n := e.sim.CallCount("user/getuserid"); n != 1 {
			t.Fatalf("user/getuserid calls = %d, want exactly 1 after the 60104", n)
		}
		if e.sim.GetUserIDMisses() != 0 {
			t.Fatal("getuserid missed")
		}
		if _, ok := e.sim.Member("2021123456"); ok {
			t.Fatal("member created")
		}
		got := e.tally()
		if got.Bindings != 0 || got.OpenIntents != 0 {
			t.Fatalf("stored %v", got)
		}
		// The holder is untouched.
		if mem, _ := e.sim.Member("t2008001"); mem.Mobile != "13800001234" || mem.Name != "钱七" {
			t.Fatalf("holder changed: %+v", mem)
		}
		// The same person binds with another mobile at once.
		mustStatus(t, "other mobile", m.submitMobile("13800005678"), http.StatusOK)
	})
}

func TestBindMobileHeldInWeComByOurBinding(t *testing.T) {
	// Our binding says mobile A, but its member's mobile in WeCom is B (changed in the client):
	// WeCom's 60104 on B leads, through getuserid, to our binding, named with masked evidence.
	e := newEnv(t, withLocalBaseURL())
	b := &app.Binding{Number: "2020000001", UserID: "2020000001", Mobile: "13800000001", Name: "赵六", Type: "student",
		Department: 2, Status: app.StatusActive}
	if err := e.db.CreateBinding(context.Background(), b, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.AddMember(wecomtestMember("2020000001", "赵六", "13800001234", 1)); err != nil {
		t.Fatal(err)
	}
	m := e.person("2021123456", "张三", "student")
	r := m.submitMobile("13800001234")
	mustStatus(t, "held through getuserid", r, http.StatusConflict)
	mustContain(t, "held through getuserid", r.page(), "138****1234", "20******01")
	mustNotContain(t, "held through getuserid", r.page(), "13800001234", "2020000001")
}

func TestBindAdminImportedMember(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		for _, tc := range []struct {
			name         string
			status       int
			mobile       string // the member's mobile in WeCom
			want         int
			wantStatus   app.Status
			wantInvite   bool
			wantMobileWx string
		}{
			{"NotJoinedOtherMobile", 4, "13900000000", http.StatusOK, app.StatusPending, true, "13800001234"},
			{"NotJoinedNoMobile", 4, "", http.StatusOK, app.StatusPending, true, "13800001234"},
			{"JoinedSameMobile", 1, "13800001234", http.StatusOK, app.StatusActive, false, "13800001234"},
			{"JoinedNoMobile", 1, "", http.StatusOK, app.StatusActive, false, ""},
			{"JoinedOtherMobile", 1, "13900000000", http.StatusConflict, "", false, "13900000000"},
			{"Disabled", 2, "13900000000", http.StatusConflict, "", false, "13900000000"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, append(opts, withLocalBaseURL())...)
				if err := e.sim.AddMember(wecomtestMember("2021123456", "张三(导入)", tc.mobile, tc.status)); err != nil {
					t.Fatal(err)
				}
				m := e.person("2021123456", "张三", "student")
				r := m.submitMobile("13800001234")
				mustStatus(t, "submit", r, tc.want)
				mem, _ := e.sim.Member("2021123456")
				if mem.Mobile != tc.wantMobileWx {
					t.Fatalf("member mobile %q, want %q", mem.Mobile, tc.wantMobileWx)
				}
				if n := e.sim.CallCount("user/create"); n != 1 {
					t.Fatalf("user/create calls = %d", n)
				}
				batch := 0
				for _, inv := range e.sim.Invites() {
					if inv.Source == "batch" && inv.UserID == "2021123456" {
						batch++
					}
				}
				if (batch == 1) != tc.wantInvite || batch > 1 {
					t.Fatalf("batch invites %d, want invite %v", batch, tc.wantInvite)
				}
				b := e.liveBinding("2021123456")
				if tc.want != http.StatusOK {
					if tc.status == 2 {
						mustContain(t, "disabled member", r.page(), "停用")
					} else {
						mustContain(t, "joined with another mobile", r.page(), "139****0000", "138****1234")
					}
					mustNotContain(t, "refused adoption", r.page(), "13900000000", "13800001234")
					if !hasForm(r.page(), "/bind/mobile", "mobile") {
						t.Fatal("the refusal must let the member go on with another mobile")
					}
					if b != nil || e.tally().OpenIntents != 0 {
						t.Fatalf("binding %+v, %v", b, e.tally())
					}
					if n := e.sim.CallCount("user/update"); n != 0 {
						t.Fatalf("member updated %d times although refused", n)
					}
					return
				}
				if mem.Name != "张三" || len(mem.Department) != 1 || mem.Department[0] != 2 {
					t.Fatalf("member not adopted: %+v", mem)
				}
				if b == nil || b.Status != tc.wantStatus || b.Mobile != "13800001234" {
					t.Fatalf("binding %+v", b)
				}
				if tc.wantStatus == app.StatusActive {
					mustContain(t, "joined", r.page(), "已加入")
				}
			})
		}
	})
}

func TestBindCSRF(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		m := e.person("2021123456", "张三", "student")
		for name, tok := range map[string][]string{"Missing": {""}, "Wrong": {"AAAA" + strings.Repeat("x", 80)}} {
			r := m.post("/bind/mobile", url.Values{"mobile": {"13800001234"}, "csrf_token": tok})
			mustStatus(t, "CSRF "+name, r, http.StatusForbidden)
			mustContain(t, "CSRF "+name, r.page(), "重新开始")
		}
		// Another browser's valid token does not do either.
		other := e.person("2021000009", "王五", "student")
		tok := hiddenValue(other.last.page(), "csrf_token")
		r := m.post("/bind/mobile", url.Values{"mobile": {"13800001234"}, "csrf_token": {tok}})
		mustStatus(t, "foreign CSRF token", r, http.StatusForbidden)
		for _, path := range []string{"/bind/migrate/code", "/bind/migrate"} {
			r := m.post(path, url.Values{"sms_code": {"123456"}, "csrf_token": {""}})
			mustStatus(t, "CSRF "+path, r, http.StatusForbidden)
		}
		if e.writeCalls() != 0 || e.tally() != (tally{}) {
			t.Fatalf("a POST without CSRF token wrote: %v", e.tally())
		}
	})
}

func TestBindOutOfOrder(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)

		// No flow at all: a browser with a valid CSRF token whose flow cookie is gone.
		stranger := e.person("2019000001", "路人", "student")
		stranger.setFlow("")
		token := hiddenValue(stranger.last.page(), "csrf_token")
		for _, path := range []string{"/bind/mobile", "/bind/migrate/code", "/bind/migrate"} {
			r := stranger.post(path, url.Values{"mobile": {"13800001234"}, "sms_code": {"123456"}, "csrf_token": {token}})
			if r.status < 400 || r.status >= 500 || r.status == http.StatusForbidden {
				t.Fatalf("%s without a flow: %d", path, r.status)
			}
			mustContain(t, path, r.page(), `href="/bind"`)
		}

		// Logged in, but no conflict was ever shown: the 换绑 steps are out of order.
		m := e.person("2021123456", "张三", "student")
		token = hiddenValue(m.last.page(), "csrf_token")
		for _, path := range []string{"/bind/migrate/code", "/bind/migrate"} {
			r := m.post(path, url.Values{"sms_code": {"123456"}, "csrf_token": {token}})
			if r.status < 400 || r.status >= 500 || r.status == http.StatusForbidden {
				t.Fatalf("%s out of order: %d", path, r.status)
			}
			mustContain(t, path, r.page(), `href="/bind"`)
		}
		// GETs of the steps show the flow's current step (the mobile form), never a 405 or a 500;
		// without a flow, a restart page.
		for _, path := range []string{"/bind/mobile", "/bind/migrate", "/bind/migrate/code"} {
			r := m.get(path)
			mustStatus(t, "GET "+path, r, http.StatusOK)
			if !hasForm(r.page(), "/bind/mobile", "mobile") {
				t.Fatalf("GET %s: no mobile form\n%s", path, r.body)
			}
			r = stranger.get(path)
			if r.status < 400 || r.status >= 500 || r.status == http.StatusMethodNotAllowed {
				t.Fatalf("GET %s without a flow: %d", path, r.status)
			}
			mustContain(t, path, r.page(), `href="/bind"`)
		}
		if e.writeCalls() != 0 || e.tally().SMSCodes != 0 || e.tally().Intents != 0 {
			t.Fatalf("out-of-order steps wrote: %v", e.tally())
		}
	})
}

func TestBindStaff(t *testing.T) {
	// The first matching rule decides the department and the label shown.
	e := newEnv(t, withLocalBaseURL())
	e.cas.AddUser("T0042", "pw", "周老师", "staff")
	m := e.newMember()
	r := m.login("T0042")
	mustStatus(t, "staff login", r, http.StatusOK)
	mustContain(t, "staff login", r.page(), "教职工", "T0042", "周老师")
	mustStatus(t, "staff bind", m.submitMobile("13700000042"), http.StatusOK)
	mem, ok := e.sim.Member("T0042")
	if !ok || len(mem.Department) != 1 || mem.Department[0] != 3 {
		t.Fatalf("staff member: %+v", mem)
	}
	if b := e.liveBinding("T0042"); b == nil || b.Type != "staff" || b.Department != 3 {
		t.Fatalf("staff binding: %+v", b)
	}
}

// TestRefusalNamesHelpDesk: a refused identity's page names the type and, with
// server.help_contact set, who to contact.
func TestRefusalNamesHelpDesk(t *testing.T) {
	e := newEnv(t, withLocalBaseURL())
	e.cas.AddUser("2010000009", "pw", "赵毅", "alumni")
	r := e.newMember().login("2010000009")
	if r.status != http.StatusForbidden {
		t.Fatalf("status %d", r.status)
	}
	// The help desk's phone is a tel: link kept on one line.
	for _, want := range []string{"校友", "信息化管理中心 电话 ", `<a class="nowrap" href="tel:04716576286">0471-6576286</a>`, `href="/bind/switch"`} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("refusal page lacks %q", want)
		}
	}
}
