package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/wecampus/wecampus/internal/keys"
)

// sealFlow seals a flow cookie value the way the server does (gorilla/securecookie keyed from
// server.session_secret), so that a test can present a flow the server never issued: an
// expired one, or one of another kind.
func sealFlow(t *testing.T, flow map[string]any) string {
	t.Helper()
	secret := strings.Repeat("s", 32)
	sc := securecookie.New(keys.Derive(secret, keys.FlowHash), keys.Derive(secret, keys.FlowBlock))
	sc.SetSerializer(securecookie.JSONEncoder{})
	v, err := sc.Encode("wecampus_flow", flow)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func personFlow(kind string, expires time.Time) map[string]any {
	return map[string]any{"k": kind, "i": fmt.Sprintf("test-%d", time.Now().UnixNano()), "e": expires.Unix(), "p": map[string]any{
		"n": "2021123456", "m": "张三", "t": "student", "u": "2021123456", "d": 2, "l": "学生"}}
}

// setFlow replaces the browser's flow cookie; "" removes it.
func (m *member) setFlow(value string) {
	u, _ := url.Parse(m.e.srv.URL)
	ck := &http.Cookie{Name: "wecampus_flow", Value: value, Path: "/"}
	if value == "" {
		ck.MaxAge = -1
	}
	m.c.Jar.SetCookies(u, []*http.Cookie{ck})
}

func TestBindFlowCookie(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		restart := func(what string, r response) {
			t.Helper()
			if r.status < 400 || r.status >= 500 || r.status == http.StatusForbidden {
				t.Fatalf("%s: status %d, want a 4xx restart page (and not the CSRF refusal)", what, r.status)
			}
			mustContain(t, what, r.page(), "重新开始注册绑定", `href="/bind"`)
		}
		// A browser with a valid CSRF cookie and token (from a real login of someone else),
		// whose flow cookie the test then replaces or drops.
		n := 0
		fresh := func() *member {
			n++
			m := e.person("20190000"+string(rune('0'+n/10))+string(rune('0'+n%10)), "路人", "student")
			m.setFlow("")
			return m
		}

		m := fresh()
		restart("no flow cookie", m.submitMobile("13800001234"))

		m = fresh()
		m.setFlow("garbage" + strings.Repeat("A", 40))
		restart("forged flow cookie", m.submitMobile("13800001234"))

		m = fresh()
		m.setFlow(sealFlow(t, personFlow("bind", time.Now().Add(-time.Second))))
		restart("expired flow", m.submitMobile("13800001234"))

		m = fresh()
		m.setFlow(sealFlow(t, personFlow("unbind", time.Now().Add(10*time.Minute))))
		restart("flow of another kind", m.submitMobile("13800001234"))

		// A cookie copied from one browser to another is the same flow (it is a bearer token,
		// sealed against reading and forging); but a tampered one is not.
		real := e.person("2021000001", "王五", "student")
		u, _ := url.Parse(e.srv.URL)
		var sealed string
		for _, ck := range real.c.Jar.Cookies(u) {
			if ck.Name == "wecampus_flow" {
				sealed = ck.Value
			}
		}
		if sealed == "" {
			t.Fatal("no flow cookie after login")
		}
		m = fresh()
		m.setFlow(sealed[:len(sealed)-2] + "AA")
		restart("tampered flow cookie", m.submitMobile("13800001234"))

		if e.writeCalls() != 0 || e.tally().Intents != 0 {
			t.Fatalf("a step without a valid flow wrote: %v", e.tally())
		}

		// Control: the same sealing with a future expiry is accepted, so the refusals above are
		// about expiry and kind, not about the test's keys.
		m = fresh()
		m.setFlow(sealFlow(t, personFlow("bind", time.Now().Add(10*time.Minute))))
		mustStatus(t, "valid sealed flow", m.submitMobile("13800001234"), http.StatusOK)
	})
}
