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
