package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// TestMe: /me goes through OAuth like /unbind and shows the member's own binding (masked) with
// what to do next; a member without a binding is shown the way to bind. Nothing is changed.
func TestMe(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newEnv(t, append(opts, withLocalBaseURL())...)
		e.createBinding(uNumber, uNumber, uMobile, app.StatusActive)
		e.createBinding("2021000002", "2021000002", "13800002222", app.StatusPending)
		if err := e.sim.AddMember(wecomtest.Member{UserID: "t2008001", Name: "钱七", Mobile: "13800007777", Department: []int64{2}}); err != nil {
			t.Fatal(err)
		}
		before := e.bindingStates()

		r := e.newMember().oauth("/me", uNumber)
		expectStatus(t, "active", r, http.StatusOK)
		expectPage(t, "active", r, uNumber, uMasked, app.MaskName(uName), "已绑定", `href="/unbind"`)
		expectNotInPage(t, "active", r, uMobile, uName, `href="/verify"`)

		r = e.newMember().oauth("/me", "2021000002")
		expectStatus(t, "pending", r, http.StatusOK)
		expectPage(t, "pending", r, "2021000002", "138****2222", `href="/verify"`, `href="/unbind"`)

		r = e.newMember().oauth("/me", "t2008001")
		expectStatus(t, "no binding", r, http.StatusOK)
		expectPage(t, "no binding", r, `href="/bind"`)
		expectNotInPage(t, "no binding", r, `href="/unbind"`)

		m := e.newMember()
		state := e.oauthLocation(m.get("/me"), "/me")
		r = m.get("/me?code=" + e.sim.IssueOAuthCodeForOpenID("oVisitor") + "&state=" + state)
		expectStatus(t, "not a member", r, http.StatusOK)
		expectPage(t, "not a member", r, "还不是", `href="/bind"`)

		// A forged state is refused.
		m = e.newMember()
		e.oauthLocation(m.get("/me"), "/me")
		r = m.get("/me?code=" + e.sim.IssueOAuthCode(uNumber) + "&state=" + strings.Repeat("a", 32))
		expectStatus(t, "forged state", r, http.StatusForbidden)
		expectNotInPage(t, "forged state", r, uNumber)

		if after := e.bindingStates(); after != before {
			t.Fatalf("/me changed the store:\n%s\nbefore:\n%s", after, before)
		}
		if n := e.memberWrites(); n != 0 {
			t.Fatalf("/me wrote to WeCom %d times", n)
		}
	})
}
