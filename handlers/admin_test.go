package handlers_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/handlers"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// TestAdminSignIn: GET /admin without a session is a 302 to WeCom OAuth with
// redirect_uri={base_url}/admin; back with code and state a listed member gets a session cookie
// (HttpOnly, SameSite=Lax, ≤ 8 h) and 303 to /admin, then the dashboard with the search form. The
// state is single use and bound to the browser; a member on neither list, or no member at all,
// gets 403.
func TestAdminSignIn(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newAdminEnv(t, opts...)
		m := e.newMember()
		state := e.oauthLocation(m.get("/admin"), "/admin")
		r := m.get("/admin?code=" + e.sim.IssueOAuthCode(opUser) + "&state=" + state)
		expectStatus(t, "OAuth return", r, http.StatusSeeOther)
		ck := setCookie(r, adminCookie)
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge <= 0 || ck.MaxAge > 8*3600 || ck.Secure {
			t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, 0 < Max-Age ≤ 8 h, not Secure on http", ck)
		}
		r = m.get("/admin")
		expectStatus(t, "dashboard", r, http.StatusOK)
		expectForm(t, "dashboard", r, "/admin/search", "q")
		expectPage(t, "dashboard", r, opUser, "操作员", "已绑定", "待加入")

		// The same state again (a replayed return URL), even in the browser that started it.
		r = m.get("/admin?code=" + e.sim.IssueOAuthCode(opUser) + "&state=" + state)
		expectStatus(t, "replayed state", r, http.StatusForbidden)

		// A state started in another browser.
		other := e.newMember()
		state = e.oauthLocation(e.newMember().get("/admin"), "/admin")
		r = other.get("/admin?code=" + e.sim.IssueOAuthCode(opUser) + "&state=" + state)
		expectStatus(t, "state of another browser", r, http.StatusForbidden)
		if setCookie(r, adminCookie) != nil {
			t.Fatal("a foreign state set a session cookie")
		}

		// Members on neither list, and visitors who are not members, get 403.
		r = e.newMember().adminSignIn(outsider)
		expectStatus(t, "not listed", r, http.StatusForbidden)
		expectPage(t, "not listed", r, outsider, "admin.operators")
		v := e.newMember()
		state = e.oauthLocation(v.get("/admin"), "/admin")
		r = v.get("/admin?code=" + e.sim.IssueOAuthCodeForOpenID("o-visitor") + "&state=" + state)
		expectStatus(t, "not a member", r, http.StatusForbidden)
		if !hasEvent(e.adminEvents(""), app.EventAdminSignIn, "[admin "+opUser+"]") {
			t.Error("the sign-in is not audited")
		}
	})
}

// TestAdminSignInQR: a desktop browser outside WeCom gets a page offering WeCom's web login QR
// (login_type=CorpApp) next to OAuth; its code comes back to /admin like OAuth's. Inside the WeCom
// app (User-Agent wxwork) it is the OAuth redirect.
func TestAdminSignInQR(t *testing.T) {
	e := newAdminEnv(t)
	m := e.newMember()
	m.header = http.Header{"User-Agent": {desktopUA}}
	r := m.get("/admin")
	expectStatus(t, "desktop sign-in page", r, http.StatusOK)
	page := string(r.body)
	qr := regexp.MustCompile(`id="qr-login" href="([^"]+)"`).FindStringSubmatch(page)
	if qr == nil {
		t.Fatalf("no QR login link:\n%s", page)
	}
	u, err := url.Parse(htmlUnescape(qr[1]))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme+"://"+u.Host+u.Path != "https://login.work.weixin.qq.com/wwlogin/sso/login" || q.Get("login_type") != "CorpApp" ||
		q.Get("appid") != testCorpID || q.Get("agentid") != strconv.FormatInt(e.sim.AgentID(), 10) ||
		q.Get("redirect_uri") != e.baseURL+"/admin" || q.Get("state") == "" {
		t.Fatalf("QR login link %s", u)
	}
	expectPage(t, "desktop sign-in page", r, `id="oauth-login" href="https://open.weixin.qq.com/connect/oauth2/authorize?`)
	r = m.get("/admin?code=" + e.sim.IssueOAuthCode(viewerUser) + "&state=" + q.Get("state") + "&appid=" + testCorpID)
	expectStatus(t, "web login return", r, http.StatusSeeOther)
	expectPage(t, "viewer dashboard", m.get("/admin"), viewerUser, "只读")

	in := e.newMember()
	in.header = http.Header{"User-Agent": {wecomAppUA}}
	e.oauthLocation(in.get("/admin"), "/admin")
}

// TestAdminSession: a session ends at sign-out (POST with CSRF; the token no longer works, even
// replayed), after 8 hours, and for a userid taken off the lists at its next request.
func TestAdminSession(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newAdminEnv(t, opts...)
		clock := e.withOffsetClock()
		m := e.newAdmin(opUser)
		token := cookieValue(t, m, adminCookie)

		r := m.post("/admin/logout", url.Values{"csrf_token": {""}})
		expectStatus(t, "logout without CSRF", r, http.StatusForbidden)
		m.get("/admin")
		r = m.post("/admin/logout", nil)
		expectStatus(t, "logout", r, http.StatusOK)
		if ck := setCookie(r, adminCookie); ck == nil || ck.MaxAge >= 0 {
			t.Fatalf("logout left the cookie: %+v", ck)
		}
		replay := e.newMember()
		setJarCookie(t, replay, adminCookie, token)
		e.oauthLocation(replay.get("/admin"), "/admin")
		expectStatus(t, "revoked session POST", replay.post("/admin/logout", nil), http.StatusForbidden)

		m = e.newAdmin(opUser)
		clock.Advance(8*time.Hour + time.Minute)
		e.oauthLocation(m.get("/admin/search?q=1"), "/admin")

		clock.Advance(-8*time.Hour - time.Minute)
		m = e.newAdmin(viewerUser)
		e.svc.Admins = app.AdminPolicy{Operators: []string{opUser}}
		r = m.get("/admin")
		expectStatus(t, "viewer taken off the list", r, http.StatusForbidden)
		expectPage(t, "viewer taken off the list", r, "已不在")
	})
}

func cookieValue(t *testing.T, m *member, name string) string {
	t.Helper()
	u, _ := url.Parse(m.e.srv.URL)
	for _, c := range m.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	t.Fatalf("no cookie %s", name)
	return ""
}

func setJarCookie(t *testing.T, m *member, name, value string) {
	t.Helper()
	u, _ := url.Parse(m.e.srv.URL)
	m.c.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// TestAdminRolesMatrix: every console route and method for anonymous, a userid taken off the
// lists, a viewer and an operator (CONTRACT §9), printed as a table.
func TestAdminRolesMatrix(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newAdminEnv(t, opts...)
		e.createBinding("2021000201", "2021000201", "13800000201", app.StatusActive)
		e.createBinding("2021000202", "2021000202", "13800000202", app.StatusPending)
		e.openIntent("2021000203", "13800000203", 10*time.Minute, true)

		routes := []struct{ method, path string }{
			{"GET", "/admin"},
			{"GET", "/admin/search?q=2021"},
			{"GET", "/admin/people/2021000201"},
			{"GET", "/admin/export.csv?status=active"},
			{"POST", "/admin/people/2021000201/unbind"},
			{"POST", "/admin/people/2021000202/invite"},
			{"POST", "/admin/people/2021000203/repair"},
			{"POST", "/admin/logout"},
		}
		roles := []string{"anonymous", "not listed", "viewer", "operator"}
		want := map[string][]int{
			"anonymous":  {302, 302, 302, 302, 403, 403, 403, 403},
			"not listed": {403, 403, 403, 403, 403, 403, 403, 403},
			"viewer":     {200, 200, 200, 403, 403, 403, 403, 200},
			"operator":   {200, 200, 200, 200, 303, 303, 303, 200},
		}
		browser := func(role string) *member {
			switch role {
			case "not listed":
				e.svc.Admins.Viewers = append(e.svc.Admins.Viewers, "ex.admin")
				if err := e.sim.AddMember(wecomtest.Member{UserID: "ex.admin", Name: "前管理员", Mobile: "13900000099", Department: []int64{1}}); err != nil {
					t.Fatal(err)
				}
				m := e.newAdmin("ex.admin")
				e.svc.Admins.Viewers = []string{viewerUser}
				return m
			case "viewer":
				return e.newAdmin(viewerUser)
			case "operator":
				return e.newAdmin(opUser)
			}
			return e.newMember()
		}
		got := map[string][]int{}
		for _, role := range roles {
			m := browser(role)
			// The CSRF token of the last page seen (the dashboard; none for anonymous), so that a
			// refusal is the role's, not the token's.
			token := hiddenValue(string(m.last.body), "csrf_token")
			for _, rt := range routes {
				var r response
				if rt.method == "GET" {
					r = m.get(rt.path)
				} else {
					r = m.post(rt.path, url.Values{"reason": {"matrix test"}, "csrf_token": {token}})
				}
				got[role] = append(got[role], r.status)
				if rt.method == "GET" && r.status == http.StatusFound {
					e.oauthLocation(r, "/admin")
				}
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%-40s", "route")
		for _, role := range roles {
			fmt.Fprintf(&b, "%-12s", role)
		}
		for i, rt := range routes {
			fmt.Fprintf(&b, "\n%-40s", rt.method+" "+rt.path)
			for _, role := range roles {
				mark := ""
				if got[role][i] != want[role][i] {
					mark = fmt.Sprintf("(want %d)", want[role][i])
					t.Errorf("%s %s as %s: %d, want %d", rt.method, rt.path, role, got[role][i], want[role][i])
				}
				fmt.Fprintf(&b, "%-12s", strconv.Itoa(got[role][i])+mark)
			}
		}
		t.Logf("roles matrix (status per route and role):\n%s", b.String())
	})
}

// TestAdminDashboard: counts per status, binds per day as an SVG chart with a table, pending
// members older than 3 days, open intents and the outbox backlog.
func TestAdminDashboard(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newAdminEnv(t, opts...)
		e.createBinding("2021000301", "2021000301", "13800000301", app.StatusActive)
		e.createBinding("2021000302", "2021000302", "13800000302", app.StatusPending)
		e.createBinding("2021000303", "2021000303", "13800000303", app.StatusUnbound)
		e.openIntent("2021000304", "13800000304", 30*time.Minute, false)
		ctx := context.Background()
		for i := range 3 {
			if err := e.db.EnqueueMessage(ctx, app.OutboxMessage{DedupKey: "test:" + strconv.Itoa(i), ToUser: "x", Content: "hi"}); err != nil {
				t.Fatal(err)
			}
		}
		clock := e.withOffsetClock()
		m := e.newAdmin(viewerUser)
		r := m.get("/admin")
		expectPage(t, "dashboard", r, `<svg class="chart"`, `role="img"`, "每日数据", "合计 3", "待加入", "未完成的办理记录（1）",
			`href="/admin/people/2021000304"`, "等待发送或重试中：<strong>3</strong>")
		expectPage(t, "dashboard", r, "超过 3 天仍未加入企业微信（0）")
		expectNotInPage(t, "viewer dashboard", r, "/admin/export.csv")

		clock.Advance(4 * 24 * time.Hour)
		r = e.newAdmin(viewerUser).get("/admin") // the first session ended after 8 h
		expectPage(t, "dashboard 4 days later", r, "超过 3 天仍未加入企业微信（1）", `href="/admin/people/2021000302"`, "138****0302")
		expectNotInPage(t, "dashboard 4 days later", r, "13800000302")
		today := time.Now().In(app.ConsoleZone()).Format("2006-01-02")
		if !regexp.MustCompile(`<td>` + today + `</td><td>3</td>`).Match(r.body) {
			t.Errorf("the day table lacks %s with 3 binds:\n%s", today, r.body)
		}
	})
}

// TestAdminSearch: by number prefix, full mobile (with +86), userid and name prefix, masked in
// the list, each hit linking its person page; at most 50 hits, said when capped.
func TestAdminSearch(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newAdminEnv(t, opts...)
		e.createBinding("2021000401", "2021000401", "13800000401", app.StatusActive)
		e.createBinding("2022000402", "2022000402", "13800000402", app.StatusUnbound)
		for i := range 55 {
			n := fmt.Sprintf("2030%06d", i)
			e.createBinding(n, n, fmt.Sprintf("137%08d", i), app.StatusPending)
		}
		m := e.newAdmin(viewerUser)
		cases := []struct {
			q    string
			want []string
		}{
			{"2021000401", []string{`href="/admin/people/2021000401"`}},
			{"20220", []string{`href="/admin/people/2022000402"`, "已解除绑定"}},
			{"+86 138 0000 0401", []string{`href="/admin/people/2021000401"`, "138****0401"}},
			{"测试2022", []string{`href="/admin/people/2022000402"`, "测*********"}},
		}
		for _, c := range cases {
			r := m.get("/admin/search?q=" + url.QueryEscape(c.q))
			expectStatus(t, "search "+c.q, r, http.StatusOK)
			expectPage(t, "search "+c.q, r, c.want...)
			expectNotInPage(t, "search "+c.q, r, "13800000401", "测试2021000401", "结果过多")
		}
		r := m.get("/admin/search?q=2030")
		expectPage(t, "capped search", r, "结果过多，仅显示前 50 条")
		if n := strings.Count(string(r.body), `href="/admin/people/2030`); n != 50 {
			t.Errorf("capped search shows %d hits, want 50", n)
		}
		expectPage(t, "no hit", m.get("/admin/search?q=nobody"), "没有找到")
	})
}

// TestAdminPerson: the live binding and its history, the audit trail with the SMS sends (masked),
// the WeCom member read now, the page view audited with the admin's userid; WeCom down still
// renders the page; a number never bound is a 404 page.
func TestAdminPerson(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newAdminEnv(t, opts...)
		ctx := context.Background()
		e.createBinding("2021000501", "old0501", "13800000501", app.StatusUnbound)
		e.createBinding("2021000501", "2021000501", "13800000502", app.StatusActive)
		if err := e.sim.SetStatus("2021000501", 1); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.SendCode(ctx, "13800000502", app.PurposeUnbind, "10.20.30.40"); err != nil {
			t.Fatal(err)
		}
		m := e.newAdmin(viewerUser)
		r := m.get("/admin/people/2021000501")
		expectStatus(t, "person", r, http.StatusOK)
		expectPage(t, "person", r, "当前绑定", "138****0502", "138****0501", "old0501", "已激活", "绑定历史（2）",
			"短信验证码发送记录（1）", "解除绑定", "IP 10.20.*.*", "查看详情", "[admin "+viewerUser+"]", "只读账号")
		expectNotInPage(t, "person", r, "13800000502", "13800000501", "10.20.30.40", "测试2021000501", `action="/admin/people/2021000501/unbind"`)
		if !hasEvent(e.adminEvents("2021000501"), app.EventAdminView, "[admin "+viewerUser+"]") {
			t.Error("the page view is not audited")
		}

		e.sim.Inject("user/get", 5, wecomtest.Fault{HTTPStatus: http.StatusBadGateway})
		r = m.get("/admin/people/2021000501")
		expectStatus(t, "person, WeCom down", r, http.StatusOK)
		expectPage(t, "person, WeCom down", r, "暂时无法读取")

		r = m.get("/admin/people/2099999999")
		expectStatus(t, "never bound", r, http.StatusNotFound)
		expectPage(t, "never bound", r, "从未绑定")
	})
}

// TestAdminActions: unbind, invite and repair with a required reason, 303 to the person page
// with the outcome, audited with the admin's userid and the reason; refusals answer 400/409; a
// POST without the CSRF token 403.
func TestAdminActions(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newAdminEnv(t, opts...)
		active := e.createBinding("2021000601", "2021000601", "13800000601", app.StatusActive)
		e.createBinding("2021000602", "2021000602", "13800000602", app.StatusPending)
		e.openIntent("2021000603", "13800000603", 10*time.Minute, true)
		e.openIntent("2021000604", "13800000604", 10*time.Second, false)
		m := e.newAdmin(opUser)
		m.get("/admin/people/2021000601")

		r := m.post("/admin/people/2021000601/unbind", url.Values{"reason": {"  "}})
		expectStatus(t, "unbind without reason", r, http.StatusBadRequest)
		r = m.post("/admin/people/2021000601/unbind", url.Values{"reason": {"x"}, "csrf_token": {"forged"}})
		expectStatus(t, "unbind with a forged CSRF token", r, http.StatusForbidden)
		if _, ok := e.sim.Member("2021000601"); !ok || e.binding(active.ID).Status != app.StatusActive || e.sim.CallCount("user/delete") != 0 {
			t.Fatal("a refused unbind changed something")
		}

		m.get("/admin/people/2021000601")
		r = m.post("/admin/people/2021000601/unbind", reasonForm("本人来电：手机丢失"))
		expectStatus(t, "unbind", r, http.StatusSeeOther)
		if loc := r.header.Get("Location"); loc != "/admin/people/2021000601" {
			t.Fatalf("unbind: Location %q", loc)
		}
		if _, ok := e.sim.Member("2021000601"); ok {
			t.Fatal("member still in WeCom")
		}
		if b := e.binding(active.ID); b.Status != app.StatusUnbound || b.Reason != "本人来电：手机丢失" {
			t.Fatalf("binding %+v", b)
		}
		r = m.get("/admin/people/2021000601")
		expectPage(t, "after unbind", r, "已解除绑定：企业微信成员 2021000601 已删除", `<td class="wrap">本人来电：手机丢失</td>`)
		if !hasEvent(e.adminEvents("2021000601"), app.EventUnbound, "本人来电：手机丢失", "[admin "+opUser+"]") {
			t.Error("the unbind event does not name the admin and the reason")
		}
		expectNotInPage(t, "reload", m.get("/admin/people/2021000601"), "已解除绑定：企业微信成员")

		m.get("/admin/people/2021000602")
		r = m.post("/admin/people/2021000602/invite", reasonForm("未收到邀请短信"))
		expectStatus(t, "invite", r, http.StatusSeeOther)
		if inv := e.sim.Invites(); len(inv) == 0 || inv[len(inv)-1].UserID != "2021000602" || inv[len(inv)-1].Source != "batch" {
			t.Fatalf("invites %+v", inv)
		}
		if !hasEvent(e.adminEvents("2021000602"), app.EventAdminInvite, "未收到邀请短信", "[admin "+opUser+"]") {
			t.Error("the invite is not audited")
		}
		m.get("/admin/people/2021000601")
		r = m.post("/admin/people/2021000601/invite", reasonForm("x"))
		expectStatus(t, "invite without a live binding", r, http.StatusConflict)

		m.get("/admin/people/2021000603")
		r = m.post("/admin/people/2021000603/repair", reasonForm("后台修复前先处理"))
		expectStatus(t, "repair", r, http.StatusSeeOther)
		if b, err := e.svc.FindBinding(context.Background(), "2021000603"); err != nil || b.Status != app.StatusPending {
			t.Fatalf("repair stored %+v, %v", b, err)
		}
		expectPage(t, "after repair", m.get("/admin/people/2021000603"), "已修复", "补全绑定")
		r = m.post("/admin/people/2021000604/repair", reasonForm("x"))
		expectStatus(t, "repair of a fresh intent", r, http.StatusConflict)
		r = m.post("/admin/people/2021000601/repair", reasonForm("x"))
		expectStatus(t, "repair without an intent", r, http.StatusConflict)

		r = m.get("/admin/people/2021000601/unbind")
		expectStatus(t, "GET of a POST route", r, http.StatusSeeOther)
	})
}

// TestAdminInviteActive: a member who has joined is not invited again (409).
func TestAdminInviteActive(t *testing.T) {
	e := newAdminEnv(t)
	e.createBinding("2021000701", "2021000701", "13800000701", app.StatusActive)
	m := e.newAdmin(opUser)
	m.get("/admin/people/2021000701")
	r := m.post("/admin/people/2021000701/invite", reasonForm("x"))
	expectStatus(t, "invite of an active member", r, http.StatusConflict)
	if n := e.sim.CallCount("batch/invite"); n != 0 {
		t.Fatalf("batch/invite called %d times", n)
	}
}

// TestAdminExport: operators get the CSV of `binding list --csv`, formula cells escaped; the
// export is audited; an unknown status is a 400.
func TestAdminExport(t *testing.T) {
	storeKinds(t, func(t *testing.T, opts ...envOption) {
		e := newAdminEnv(t, opts...)
		ctx := context.Background()
		b := &app.Binding{Number: "2021000801", UserID: "2021000801", Mobile: "13800000801", Name: "=HYPERLINK(\"http://x\")",
			Type: "student", Department: 2, Status: app.StatusPending}
		if err := e.db.CreateBinding(ctx, b, app.Event{Kind: app.EventBound, Actor: app.ActorSystem}); err != nil {
			t.Fatal(err)
		}
		e.createBinding("2021000802", "2021000802", "13800000802", app.StatusActive)
		m := e.newAdmin(opUser)
		r := m.get("/admin/export.csv?status=pending")
		expectStatus(t, "export", r, http.StatusOK)
		if ct := r.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || strings.Join(rows[0], ",") != strings.Join(app.BindingFields, ",") {
			t.Fatalf("rows %q", rows)
		}
		if rows[1][0] != "2021000801" || rows[1][3] != `'=HYPERLINK("http://x")` {
			t.Fatalf("row %q: the formula cell is not escaped", rows[1])
		}
		if !hasEvent(e.adminEvents(""), app.EventAdminExport, "status pending: 1 rows", "[admin "+opUser+"]") {
			t.Error("the export is not audited")
		}
		expectStatus(t, "unknown status", m.get("/admin/export.csv?status=gone"), http.StatusBadRequest)
	})
}

// TestAdminSessionCookieHTTPS: on an https base_url the console cookies are Secure and carry
// the __Host- prefix.
func TestAdminSessionCookieHTTPS(t *testing.T) {
	e := newEnv(t)
	e.svc.Admins = app.AdminPolicy{Operators: []string{opUser}}
	if err := e.sim.AddMember(wecomtest.Member{UserID: opUser, Name: "操作员", Mobile: "13900000001", Department: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(e.srv.URL + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	first := response{status: res.StatusCode, header: res.Header}
	login := setCookie(first, "__Host-wecampus_admin_login")
	if login == nil || !login.Secure || !login.HttpOnly {
		t.Fatalf("login cookie %+v", login)
	}
	state := e.oauthLocation(first, "/admin")
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/admin?code="+e.sim.IssueOAuthCode(opUser)+"&state="+state, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: login.Name, Value: login.Value})
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	ck := setCookie(response{header: res.Header}, "__Host-"+adminCookie)
	if res.StatusCode != http.StatusSeeOther || ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("status %d, session cookie %+v", res.StatusCode, ck)
	}
}

// TestAdminRateLimit: GET /admin carrying a code counts against server.rate_limit like the member
// pages' OAuth returns: beyond it a 429 page and no WeCom call; without a code it is not limited.
func TestAdminRateLimit(t *testing.T) {
	clock := &testClock{t: time.Now()}
	e := newAdminEnv(t, withRateLimiter(handlers.NewLocalRateLimiter(2, 0, clock.Now)))
	var m *member
	for i := range 2 {
		m = e.newMember()
		state := e.oauthLocation(m.get("/admin"), "/admin")
		expectStatus(t, "sign-in "+strconv.Itoa(i), m.get("/admin?code="+e.sim.IssueOAuthCode(opUser)+"&state="+state), http.StatusSeeOther)
	}
	calls := e.sim.CallCount("auth/getuserinfo")
	r := m.get("/admin?code=" + e.sim.IssueOAuthCode(opUser) + "&state=x")
	expectStatus(t, "third code", r, http.StatusTooManyRequests)
	if n := e.sim.CallCount("auth/getuserinfo"); n != calls {
		t.Fatalf("a limited sign-in called getuserinfo (%d → %d)", calls, n)
	}
	expectStatus(t, "dashboard without a code", m.get("/admin"), http.StatusOK)
}
