package contracttest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

// CONTRACT §3 and §7: the member routes and flows — bind, verify, unbind, /me, 换绑 — and the
// operational endpoints.

func TestContractOps(t *testing.T) {
	w := ctWorldShared(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if st, body, _ := ctGET(t, w.base+p); st != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, st, body)
		}
	}
	st, body, h := ctGET(t, w.base+"/metrics")
	if st != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") || !strings.Contains(body, "# TYPE ") {
		t.Errorf("GET /metrics: %d %q\n%.300s", st, h.Get("Content-Type"), body)
	}
	if st, _, _ := ctGET(t, w.base+"/no/such/page"); st != http.StatusNotFound {
		t.Errorf("unknown route: %d, want 404", st)
	}
}

func TestContractBindAndCallbacks(t *testing.T) {
	w := ctWorldShared(t)
	now := time.Now().Unix()

	// Invalid mobile, then the bind.
	p := w.newPerson("赵一", "student")
	c := w.client(t)
	page := c.casLogin(p.number)
	ctWant(t, page, http.StatusOK)
	if f := ctFindForm(page.body, "/bind/mobile"); f == nil || !f.has("mobile") {
		t.Fatalf("/bind/cas: no form /bind/mobile with input mobile:\n%s", page.body)
	}
	bad := c.submit(page, "/bind/mobile", map[string]string{"mobile": "1234"})
	ctWant(t, bad, http.StatusBadRequest)
	if ctFindForm(bad.body, "/bind/mobile") == nil {
		t.Errorf("the 400 page does not let the member retry:\n%s", bad.body)
	}
	done := c.submit(bad, "/bind/mobile", map[string]string{"mobile": p.mobile})
	ctWant(t, done, http.StatusOK)
	m, ok := w.wc.Member(p.number)
	if !ok || m.Mobile != p.mobile || m.Name != p.name || !slices.Equal(m.Department, []int64{2}) {
		t.Fatalf("WeCom member after bind: %+v %v", m, ok)
	}
	b := w.waitStatus(t, p.number, "pending")
	if b.UserID != p.number || b.Mobile != p.mobile || b.Name != p.name || b.Type != "student" || b.Department != 2 {
		t.Errorf("binding %+v", b)
	}
	if bu := w.binding(t, p.mobile); bu == nil || bu.Number != p.number {
		t.Errorf("binding get by mobile: %+v", bu)
	}

	// Already bound: a new CAS login of the same person.
	again := w.client(t).casLogin(p.number)
	ctWant(t, again, http.StatusOK)
	if ctFindForm(again.body, "/bind/mobile") != nil {
		t.Errorf("already-bound page offers the mobile form again:\n%s", again.body)
	}

	// Conflict: another person with the same mobile.
	q := w.newPerson("钱二", "student")
	c2 := w.client(t)
	cp := c2.casLogin(q.number)
	ctWant(t, cp, http.StatusOK)
	conflict := c2.submit(cp, "/bind/mobile", map[string]string{"mobile": p.mobile})
	ctWant(t, conflict, http.StatusConflict)
	if ctFindForm(conflict.body, "/bind/migrate/code") != nil {
		t.Errorf("conflict with someone else's mobile offers 换绑:\n%s", conflict.body)
	}
	if _, ok := w.wc.Member(q.number); ok {
		t.Errorf("a member was created for the refused bind")
	}

	// Refused identity and invalid ticket.
	alum := w.newPerson("孙三", "alumni")
	ctWant(t, w.client(t).casLogin(alum.number), http.StatusForbidden)
	ctWant(t, w.client(t).get("/bind/cas?ticket=ST-bogus"), http.StatusUnauthorized)

	// Activation by subscribe: once, and a retry does nothing more.
	sub := ctEvent(p.number, "subscribe", "")
	if st, _ := w.callback(t, w.app, "/wecom/callback", sub, now); st != http.StatusOK {
		t.Fatalf("subscribe: %d", st)
	}
	w.waitStatus(t, p.number, "active")
	if st, _ := w.callback(t, w.app, "/wecom/callback", sub, now); st != http.StatusOK {
		t.Fatalf("subscribe retry: %d", st)
	}
	// The same activation reported by update_user too.
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ctChange("update_user", p.number, func(in *app.Inbound) { in.Status = 1 }), now); st != http.StatusOK {
		t.Fatalf("update_user: %d", st)
	}
	w.waitWelcomes(t, p.number, 1)

	// Activation by change_contact update_user Status 1 on the contacts server, with a retry.
	r := w.newPerson("李四", "staff")
	w.client(t).bind(r)
	w.waitStatus(t, r.number, "pending")
	if b := w.binding(t, r.number); b.Department != 3 || b.Type != "staff" {
		t.Errorf("staff binding: %+v", b)
	}
	up := ctChange("update_user", r.number, func(in *app.Inbound) { in.Status = 1 })
	for range 2 {
		if st, body := w.callback(t, w.contacts, "/wecom/contacts", up, now); st != http.StatusOK || body != "" {
			t.Fatalf("update_user Status 1: %d %q", st, body)
		}
	}
	w.waitStatus(t, r.number, "active")
	w.waitWelcomes(t, r.number, 1)

	// change_contact on the app callback too.
	s := w.newPerson("周五", "student")
	w.client(t).bind(s)
	if st, _ := w.callback(t, w.app, "/wecom/callback", ctChange("update_user", s.number, func(in *app.Inbound) { in.Status = 1 }), now); st != http.StatusOK {
		t.Fatalf("change_contact on /wecom/callback: %d", st)
	}
	w.waitStatus(t, s.number, "active")
	w.waitWelcomes(t, s.number, 1)

	// NewUserID.
	newID := "renamed" + s.number
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ctChange("update_user", s.number, func(in *app.Inbound) { in.NewUserID = newID }), now); st != http.StatusOK {
		t.Fatalf("update_user NewUserID: %d", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b := w.binding(t, s.number)
		if b.UserID == newID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after NewUserID the binding is %+v", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b := w.binding(t, newID); b == nil || b.Number != s.number {
		t.Errorf("binding get by the new userid: %+v", b)
	}

	// A userid change of r in the same second as its activation is a different event.
	staffID := "staff-" + r.number
	ren := ctChange("update_user", r.number, func(in *app.Inbound) { in.NewUserID = staffID; in.CreateTime = up.CreateTime })
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ren, now); st != http.StatusOK {
		t.Fatalf("update_user NewUserID: %d", st)
	}
	if b := w.binding(t, r.number); b.UserID != staffID {
		t.Errorf("a rename in the same second as the activation was taken for a retry: %+v", b)
	}

	// delete_user → unbound; a later Status 1 leaves it unbound.
	del := ctChange("delete_user", staffID, nil)
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", del, now); st != http.StatusOK {
		t.Fatalf("delete_user: %d", st)
	}
	w.waitStatus(t, r.number, "unbound")
	if st, _ := w.callback(t, w.contacts, "/wecom/contacts", ctChange("update_user", staffID, func(in *app.Inbound) { in.Status = 1; in.CreateTime++ }), now); st != http.StatusOK {
		t.Fatalf("update_user after delete: %d", st)
	}
	time.Sleep(300 * time.Millisecond)
	if b := w.binding(t, r.number); b.Status != "unbound" {
		t.Errorf("an unbound binding was reactivated: %+v", b)
	}
	w.waitWelcomes(t, r.number, 1)
	if n := w.welcomes(staffID); n != 0 {
		t.Errorf("%d welcomes after delete and Status 1", n)
	}
}

func TestContractMigrate(t *testing.T) {
	w := ctWorldShared(t)
	old := w.newPerson("王六", "student")
	w.client(t).bind(old)
	if err := w.wc.Join(old.number); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.callback(t, w.app, "/wecom/callback", ctEvent(old.number, "subscribe", ""), time.Now().Unix()); st != http.StatusOK {
		t.Fatalf("subscribe: %d", st)
	}
	w.waitStatus(t, old.number, "active")
	newer := w.newPerson("王六", "student")
	c := w.client(t)
	page := c.casLogin(newer.number)
	ctWant(t, page, http.StatusOK)
	conflict := c.submit(page, "/bind/mobile", map[string]string{"mobile": old.mobile})
	ctWant(t, conflict, http.StatusConflict)
	n := w.sms.count()
	codePage := c.submit(conflict, "/bind/migrate/code", nil)
	ctWant(t, codePage, http.StatusOK)
	if f := ctFindForm(codePage.body, "/bind/migrate"); f == nil || !f.has("sms_code") {
		t.Fatalf("no form /bind/migrate with sms_code:\n%s", codePage.body)
	}
	code := w.sms.code(t, n, old.mobile, "migrate")
	wrong := c.submit(codePage, "/bind/migrate", map[string]string{"sms_code": ctWrongCode(code)})
	ctWant(t, wrong, http.StatusBadRequest)
	if b := w.binding(t, old.number); b.Status != "active" {
		t.Errorf("a wrong code changed the old binding: %+v", b)
	}
	form := codePage
	if ctFindForm(wrong.body, "/bind/migrate") != nil {
		form = wrong
	}
	done := c.submit(form, "/bind/migrate", map[string]string{"sms_code": code})
	ctWant(t, done, http.StatusOK)
	if b := w.binding(t, old.number); b.Status != "migrated" {
		t.Errorf("old binding after 换绑: %+v", b)
	}
	b := w.binding(t, newer.number)
	if b == nil || b.Mobile != old.mobile || (b.Status != "pending" && b.Status != "active") {
		t.Errorf("new binding after 换绑: %+v", b)
	}
	if _, ok := w.wc.Member(old.number); ok {
		t.Errorf("the old member still exists")
	}
	if m, ok := w.wc.Member(newer.number); !ok || m.Mobile != old.mobile {
		t.Errorf("the new member: %+v %v", m, ok)
	}
	// A replay of the finished flow: no 5xx (the client checks every answer), nothing undone.
	c.submit(form, "/bind/migrate", map[string]string{"sms_code": code})
	if b := w.binding(t, newer.number); b == nil || b.Status == "unbound" || b.Status == "migrated" {
		t.Errorf("new binding after a replayed 换绑: %+v", b)
	}
}

func TestContractVerify(t *testing.T) {
	w := ctWorldShared(t)
	p := w.newPerson("吴七", "student")
	w.client(t).bind(p)
	c := w.client(t)
	page := c.get("/verify?code=" + url.QueryEscape(w.wc.IssueTfaCode(p.number)))
	ctWant(t, page, http.StatusOK)
	if f := ctFindForm(page.body, "/verify/sms"); f == nil || !f.has("mobile") {
		t.Fatalf("/verify: no form /verify/sms with mobile:\n%s", page.body)
	}
	mismatch := c.submit(page, "/verify/sms", map[string]string{"mobile": "13911112222"})
	ctWant(t, mismatch, http.StatusBadRequest)
	n := w.sms.count()
	codePage := c.submit(page, "/verify/sms", map[string]string{"mobile": p.mobile})
	ctWant(t, codePage, http.StatusOK)
	if f := ctFindForm(codePage.body, "/verify/confirm"); f == nil || !f.has("sms_code") {
		t.Fatalf("no form /verify/confirm with sms_code:\n%s", codePage.body)
	}
	code := w.sms.code(t, n, p.mobile, "verify")
	wrong := c.submit(codePage, "/verify/confirm", map[string]string{"sms_code": ctWrongCode(code)})
	ctWant(t, wrong, http.StatusBadRequest)
	ctWant(t, c.submit(codePage, "/verify/confirm", map[string]string{"sms_code": code}), http.StatusOK)
	if m, _ := w.wc.Member(p.number); m.Status != 1 {
		t.Errorf("member status after verification: %d, want 1", m.Status)
	}

	// Out of order and bad input: 4xx, never 5xx.
	// Without a code, /verify starts WeCom OAuth itself (a menu link).
	vr := w.client(t).do(http.MethodGet, "/verify", nil)
	if vr.status == http.StatusFound {
		ctCheckOAuthRedirect(t, vr.header.Get("Location"), w.base+"/verify")
	} else {
		ctWant4xx(t, vr)
	}
	ctWant4xx(t, w.client(t).get("/verify?code=bogus"))
	fresh := w.client(t)
	start := fresh.get("/bind")
	ctWant4xx(t, fresh.do(http.MethodPost, "/verify/confirm", url.Values{"csrf_token": {ctHidden(start.body, "csrf_token")}, "sms_code": {"123456"}}))
	ctWant4xx(t, fresh.do(http.MethodPost, "/verify/sms", url.Values{"csrf_token": {ctHidden(start.body, "csrf_token")}, "mobile": {p.mobile}}))
}

func TestContractUnbindAndMe(t *testing.T) {
	w := ctWorldShared(t)
	p := w.newPerson("郑八", "student")
	w.client(t).bind(p)

	me := w.client(t).oauth("/me", p.number)
	ctWant(t, me, http.StatusOK)
	if !strings.Contains(me.body, p.number) {
		t.Errorf("/me does not show the number:\n%s", me.body)
	}
	if strings.Contains(me.body, p.mobile) {
		t.Errorf("/me shows the whole mobile")
	}

	c := w.client(t)
	show := c.oauth("/unbind", p.number)
	ctWant(t, show, http.StatusOK)
	if ctFindForm(show.body, "/unbind/sms") == nil {
		t.Fatalf("/unbind: no form /unbind/sms:\n%s", show.body)
	}
	n := w.sms.count()
	codePage := c.submit(show, "/unbind/sms", nil)
	ctWant(t, codePage, http.StatusOK)
	if f := ctFindForm(codePage.body, "/unbind/confirm"); f == nil || !f.has("sms_code") {
		t.Fatalf("no form /unbind/confirm with sms_code:\n%s", codePage.body)
	}
	code := w.sms.code(t, n, p.mobile, "unbind")
	ctWant(t, c.submit(codePage, "/unbind/confirm", map[string]string{"sms_code": ctWrongCode(code)}), http.StatusBadRequest)
	ctWant(t, c.submit(codePage, "/unbind/confirm", map[string]string{"sms_code": code}), http.StatusOK)
	if _, ok := w.wc.Member(p.number); ok {
		t.Errorf("member still exists after unbind")
	}
	if b := w.binding(t, p.number); b.Status != "unbound" {
		t.Errorf("binding after unbind: %+v", b)
	}
	// Unbound: may bind again.
	ctWant(t, w.client(t).casLogin(p.number), http.StatusOK)

	// No binding → 404.
	ctWant(t, w.client(t).oauth("/unbind", "nobody-here"), http.StatusNotFound)

	// Out of order.
	ctWant4xx(t, w.client(t).get("/unbind?code=bogus&state=nope"))
	oc := w.client(t)
	r := oc.do(http.MethodGet, "/unbind", nil)
	ctWant(t, r, http.StatusFound)
	ctWant4xx(t, oc.get("/unbind?code=bogus&state="+url.QueryEscape(ctCheckOAuthRedirect(t, r.header.Get("Location"), w.base+"/unbind"))))
	ctWant4xx(t, w.client(t).get("/unbind?code="+w.wc.IssueOAuthCode(p.number)+"&state=forged"))
}
