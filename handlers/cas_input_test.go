package handlers_test

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestBindLongCASName: a CAS name of 100 000 characters never causes a 5xx: the mobile form says
// the name was cut, the bind succeeds, and the stored name is WeCom's 64 characters.
func TestBindLongCASName(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, opts...)
		long := strings.Repeat("名", 100_000)
		m := e.person("2021123457", long, "student")
		mustContain(t, "mobile form", m.last.page(), "超过企业微信允许的 64 个字")
		r := m.submitMobile("13800001111")
		if r.status >= 500 {
			t.Fatalf("bind with a long name: %d\n%s", r.status, r.body)
		}
		b := e.liveBinding("2021123457")
		if n := utf8.RuneCountInString(b.Name); n != 64 {
			t.Fatalf("stored name has %d characters, want 64", n)
		}
		if r.status != http.StatusOK && r.status != http.StatusSeeOther {
			t.Fatalf("bind with a long name: %d", r.status)
		}
	})
}

// TestRebindGateHTTP: with identity.person_attribute set, a stranger with the same name gets the
// plain conflict page, cannot ask for a code to the holder's mobile, and no SMS is sent; the
// same person (same id, new number) is offered 换绑 and the code goes out with a text that says
// what it does.
func TestRebindGateHTTP(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withPersonAttribute("idHash"))...)
		victim := e.personWith(oldNumber, "张三", "id-victim")
		mustStatus(t, "victim binds", victim.submitMobile(heldMobile), http.StatusOK)

		stranger := e.personWith(newNumber, "张三", "id-stranger")
		r := stranger.submitMobile(heldMobile)
		mustStatus(t, "stranger, same name", r, http.StatusConflict)
		if hasForm(r.page(), "/bind/migrate/code", "csrf_token") {
			t.Fatalf("换绑 offered to a same-name stranger\n%s", r.body)
		}
		r = stranger.post("/bind/migrate/code", nil)
		if r.status < 400 || r.status >= 500 {
			t.Fatalf("stranger's code request: %d, want a 4xx", r.status)
		}
		if _, sent := e.sms.Last(heldMobile); sent {
			t.Fatal("an SMS went to the victim's mobile")
		}

		e.cas.SetAttribute(newNumber, "idHash", "id-victim") // the same person, with the new number
		same := e.newMember()
		mustStatus(t, "login", same.login(newNumber), http.StatusOK)
		r = same.submitMobile(heldMobile)
		mustStatus(t, "same person", r, http.StatusConflict)
		if !hasForm(r.page(), "/bind/migrate/code", "csrf_token") {
			t.Fatalf("换绑 not offered to the same person\n%s", r.body)
		}
		r = same.post("/bind/migrate/code", nil)
		mustStatus(t, "/bind/migrate/code", r, http.StatusOK)
		if _, sent := e.sms.Last(heldMobile); !sent {
			t.Fatal("no 换绑 code sent")
		}
	})
}

// personWith is person with a person id released as idHash.
func (e *env) personWith(number, name, personID string) *member {
	e.t.Helper()
	e.cas.AddUser(number, "pw", name, "student")
	e.cas.SetAttribute(number, "idHash", personID)
	m := e.newMember()
	if r := m.login(number); r.status != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", number, r.status, r.body)
	}
	return m
}
