package contracttest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// CONTRACT §6: CSRF, the order of steps, limits, and the corners of every flow.

func TestContractCSRFAndOrder(t *testing.T) {
	w := ctWorldShared(t)
	p := w.newPerson("冯九", "student")
	c := w.client(t)
	page := c.casLogin(p.number)
	ctWant(t, page, http.StatusOK)
	ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile}, "csrf_token"), http.StatusForbidden)
	ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile, "csrf_token": "forged" + ctRandKey(40)}), http.StatusForbidden)
	if _, ok := w.wc.Member(p.number); ok {
		t.Errorf("a POST without CSRF created a member")
	}
	// Still works with the token.
	ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile}), http.StatusOK)

	// Steps out of order: a flow at the mobile step, a valid CSRF token, POSTs of other steps.
	oo := w.client(t)
	at := oo.casLogin(w.newPerson("陈十", "student").number)
	ctWant(t, at, http.StatusOK)
	tok := ctHidden(at.body, "csrf_token")
	if tok == "" {
		t.Fatalf("the /bind/mobile form has no hidden csrf_token:\n%s", at.body)
	}
	for _, path := range []string{"/bind/migrate/code", "/bind/migrate", "/verify/sms", "/verify/confirm", "/unbind/sms", "/unbind/confirm"} {
		ctWant4xx(t, oo.do(http.MethodPost, path, url.Values{"csrf_token": {tok}, "mobile": {"13900001111"}, "sms_code": {"123456"}}))
	}
	// The flow still works after the detours.
	ctWant(t, oo.submit(at, "/bind/mobile", map[string]string{"mobile": "13900009999"}), http.StatusOK)
	// A replay of the finished step: no 5xx (the client checks every answer).
	oo.submit(at, "/bind/mobile", map[string]string{"mobile": "13900009999"})

	ctWant4xx(t, w.client(t).get("/bind/cas"))
	// An expired/forged flow cookie.
	jc := w.client(t)
	u, _ := url.Parse(w.base)
	for _, name := range []string{"wecampus_flow", "flow", "wecampus_csrf"} {
		jc.hc.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: "garbage" + ctRandKey(30), Path: "/"}})
	}
	ctWant4xx(t, jc.do(http.MethodPost, "/bind/mobile", url.Values{"mobile": {"13900001111"}}))
	if r := jc.get("/bind"); r.status != http.StatusOK {
		t.Errorf("/bind with garbage cookies: %d", r.status)
	}
}

// TestContractMore covers the corners: a /bind/cas without /bind/login, cookies, numbers and
// mobiles already held in WeCom, visitors, rate limits and attempts, callbacks from strangers,
// the replay window's inside, and the admin commands.
func TestContractMore(t *testing.T) {
	w := ctWorldShared(t)
	now := time.Now().Unix()

	t.Run("cas without login", func(t *testing.T) {
		// CONTRACT §6: a ticket arriving in a browser that did not start the login at /bind/login
		// gets 401 and is not sent to CAS; it still works in the browser that did.
		p := w.newPerson("蒋十三", "student")
		c := w.client(t)
		ticket := w.cas.IssueTicket(p.number, w.base+"/bind/cas")
		validations := w.cas.Validations()
		ctWant(t, c.get("/bind/cas?ticket="+url.QueryEscape(ticket)), http.StatusUnauthorized)
		if n := w.cas.Validations() - validations; n != 0 {
			t.Errorf("a ticket without /bind/login was sent to CAS (%d validations)", n)
		}
		c.do(http.MethodGet, "/bind/login", nil)
		page := c.get("/bind/cas?ticket=" + url.QueryEscape(ticket))
		ctWant(t, page, http.StatusOK)
		ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile}), http.StatusOK)
	})

	t.Run("cookies", func(t *testing.T) {
		p := w.newPerson("沈十四", "student")
		c := w.client(t)
		c.get("/bind")
		ctWant(t, c.do(http.MethodGet, "/bind/login", nil), http.StatusFound)
		ticket := w.cas.IssueTicket(p.number, w.base+"/bind/cas")
		r := c.do(http.MethodGet, "/bind/cas?ticket="+url.QueryEscape(ticket), nil)
		ctWant(t, r, http.StatusSeeOther) // §7: 303 to GET /bind/mobile
		resp := &http.Response{Header: r.header}
		flowOK := false
		for _, ck := range resp.Cookies() {
			if !ck.HttpOnly || ck.SameSite == http.SameSiteDefaultMode {
				t.Errorf("cookie %s: HttpOnly %v SameSite %v", ck.Name, ck.HttpOnly, ck.SameSite)
			}
			if ck.MaxAge > 0 && ck.MaxAge <= 900 {
				flowOK = true
			}
			if strings.Contains(ck.Value, p.number) || strings.Contains(ck.Value, p.name) {
				t.Errorf("cookie %s is readable: %s", ck.Name, ck.Value)
			}
		}
		if !flowOK {
			t.Errorf("no cookie of /bind/cas expires within 15 minutes: %q", r.header.Values("Set-Cookie"))
		}
	})

	t.Run("held in WeCom", func(t *testing.T) {
		// A mobile held by a member created in the admin console.
		p := w.newPerson("韩十五", "student")
		if err := w.wc.AddMember(wecomtest.Member{UserID: "console-" + p.number, Name: "别人", Mobile: p.mobile, Department: []int64{1}}); err != nil {
			t.Fatal(err)
		}
		c := w.client(t)
		page := c.casLogin(p.number)
		ctWant(t, page, http.StatusOK)
		ctWant(t, c.submit(page, "/bind/mobile", map[string]string{"mobile": p.mobile}), http.StatusConflict)

		// The number's userid held by somebody else with another mobile.
		q := w.newPerson("杨十六", "student")
		if err := w.wc.AddMember(wecomtest.Member{UserID: q.number, Name: "另一个人", Mobile: "13700000001", Department: []int64{1}}); err != nil {
			t.Fatal(err)
		}
		c = w.client(t)
		page = c.casLogin(q.number)
		ctWant(t, page, http.StatusOK)
		r := c.submit(page, "/bind/mobile", map[string]string{"mobile": q.mobile})
		if r.status != http.StatusConflict {
			t.Errorf("bind over someone else's member: %d, want 409:\n%.400s", r.status, r.body)
		}
		if m, _ := w.wc.Member(q.number); m.Mobile != "13700000001" || m.Name != "另一个人" {
			t.Errorf("someone else's member was changed: %+v", m)
		}
	})

	t.Run("visitors", func(t *testing.T) {
		// Not a member: OAuth yields an openid only.
		c := w.client(t)
		r := c.do(http.MethodGet, "/me", nil)
		ctWant(t, r, http.StatusFound)
		state := ctCheckOAuthRedirect(t, r.header.Get("Location"), w.base+"/me")
		// /me of a visitor or of a member without binding: any page but a 5xx (not fixed by the
		// contract; the service shows "no binding" with a link to /bind).
		c.get("/me?code=" + w.wc.IssueOAuthCodeForOpenID("oOPENID") + "&state=" + state)
		w.client(t).oauth("/me", "nobody-at-all")
		// /unbind with a code but no state.
		ctWant4xx(t, w.client(t).get("/unbind?code="+w.wc.IssueOAuthCode("nobody-at-all")))
		// Join verification of someone without a binding.
		ctWant4xx(t, w.client(t).get("/verify?code="+w.wc.IssueTfaCode("stranger")))
	})

	t.Run("sms limits", func(t *testing.T) {
		p := w.newPerson("朱十七", "student")
		w.client(t).bind(p)
		c := w.client(t)
		show := c.oauth("/unbind", p.number)
		ctWant(t, show, http.StatusOK)
		n := w.sms.count()
		codePage := c.submit(show, "/unbind/sms", nil)
		ctWant(t, codePage, http.StatusOK)
		code := w.sms.code(t, n, p.mobile, "unbind")
		// A second send within the cooldown: refused or answered without a new SMS, no 5xx.
		again := c.submit(show, "/unbind/sms", nil)
		if again.status >= 500 {
			t.Fatalf("resend: %d", again.status)
		}
		time.Sleep(100 * time.Millisecond)
		if got := w.sms.count() - n; got != 1 {
			t.Errorf("%d SMS within the cooldown, want 1", got)
		}
		for range 5 {
			ctWant(t, c.submit(codePage, "/unbind/confirm", map[string]string{"sms_code": ctWrongCode(code)}), http.StatusBadRequest)
		}
		ctWant4xx(t, c.submit(codePage, "/unbind/confirm", map[string]string{"sms_code": code}))
		if b := w.binding(t, p.number); b.Status == "unbound" {
			t.Errorf("the code worked after 5 wrong attempts")
		}
		if _, ok := w.wc.Member(p.number); !ok {
			t.Errorf("the member was deleted after 5 wrong attempts")
		}
	})

	t.Run("verify then subscribe", func(t *testing.T) {
		p := w.newPerson("秦十八", "student")
		w.client(t).bind(p)
		c := w.client(t)
		page := c.get("/verify?code=" + url.QueryEscape(w.wc.IssueTfaCode(p.number)))
		n := w.sms.count()
		codePage := c.submit(page, "/verify/sms", map[string]string{"mobile": p.mobile})
		ctWant(t, codePage, http.StatusOK)
		ctWant(t, c.submit(codePage, "/verify/confirm", map[string]string{"sms_code": w.sms.code(t, n, p.mobile, "verify")}), http.StatusOK)
		// WeCom then reports the join: one activation, one welcome.
		if st, _ := w.callback(t, w.app, "/wecom/callback", ctEvent(p.number, "subscribe", ""), now); st != http.StatusOK {
			t.Fatal(st)
		}
		if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ctChange("update_user", p.number, func(in *app.Inbound) { in.Status = 1 }), now); st != http.StatusOK {
			t.Fatal(st)
		}
		w.waitStatus(t, p.number, "active")
		w.waitWelcomes(t, p.number, 1)
		for _, m := range w.wc.Messages() {
			if m.ToUser == p.number && m.AgentID != ctAgentID {
				t.Errorf("welcome sent with agentid %d", m.AgentID)
			}
		}
	})

	t.Run("strangers and window", func(t *testing.T) {
		for _, in := range []*app.Inbound{
			ctEvent("no-binding", "subscribe", ""),
			ctEvent("no-binding", "unsubscribe", ""),
			ctChange("update_user", "no-binding", func(in *app.Inbound) { in.Status = 1 }),
			ctChange("create_user", "no-binding", nil),
			ctChange("delete_user", "no-binding", nil),
			ctChange("update_user", "no-binding", func(in *app.Inbound) { in.NewUserID = "still-none" }),
		} {
			if st, body := w.callback(t, w.contacts, "/wecom/contacts", in, now); st != http.StatusOK || body != "" {
				t.Errorf("%s/%s of a stranger: %d %q", in.Event, in.ChangeType, st, body)
			}
		}
		in := ctEvent("kw-user", "click", "HELP")
		for _, d := range []time.Duration{-4 * time.Minute, 4 * time.Minute} {
			if st, body := w.callback(t, w.app, "/wecom/callback", in, time.Now().Add(d).Unix()); st != http.StatusOK || body == "" {
				t.Errorf("timestamp %v away (inside callback_max_age): %d %q", d, st, body)
			}
		}
		if w.welcomes("no-binding") != 0 {
			t.Errorf("a welcome went to a member without binding")
		}
	})

	t.Run("admin commands", func(t *testing.T) {
		p := w.newPerson("尤十九", "student")
		w.client(t).bind(p)
		if r := w.cli(t, nil, "binding", "unbind", p.number, "--reason", "测试"); r.code != 0 {
			t.Fatalf("binding unbind: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if b := w.binding(t, p.number); b.Status != "unbound" {
			t.Errorf("after binding unbind: %+v", b)
		}
		if _, ok := w.wc.Member(p.number); ok {
			t.Errorf("binding unbind left the member")
		}
		if r := w.cli(t, nil, "menu", "sync"); r.code != 0 {
			t.Fatalf("menu sync: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		var urls []string
		var walk func(bs []app.MenuButton)
		walk = func(bs []app.MenuButton) {
			for _, b := range bs {
				if b.URL != "" {
					urls = append(urls, b.URL)
				}
				walk(b.SubButton)
			}
		}
		walk(w.wc.Menu(ctAgentID))
		for _, want := range []string{"/bind", "/verify", "/me", "/unbind"} {
			if !slices.Contains(urls, w.base+want) {
				t.Errorf("menu lacks %s%s: %v", w.base, want, urls)
			}
		}
		if r := w.cli(t, nil, "menu", "show"); r.code != 0 || !strings.Contains(r.stdout, "注册绑定") {
			t.Errorf("menu show: exit %d\n%s", r.code, r.stdout)
		}
		// A member deleted in the admin console without a callback: drift, and --fix unbinds.
		q := w.newPerson("许二十", "student")
		w.client(t).bind(q)
		w.deleteMember(t, q.number)
		if r := w.cli(t, nil, "reconcile"); r.code != 4 || !strings.Contains(r.stdout, q.number) {
			t.Errorf("reconcile with drift: exit %d, want 4\n%s%s", r.code, r.stdout, r.stderr)
		}
		if b := w.binding(t, q.number); b.Status != "pending" {
			t.Errorf("reconcile without --fix changed %+v", b)
		}
		if r := w.cli(t, nil, "reconcile", "--fix"); r.code != 4 {
			t.Errorf("reconcile --fix: exit %d, want 4 (drift found)\n%s%s", r.code, r.stdout, r.stderr)
		}
		if b := w.binding(t, q.number); b.Status != "unbound" {
			t.Errorf("reconcile --fix left %+v", b)
		}
	})
}
