package browsertest

import (
	"fmt"
	"strings"
	"testing"
)

// Viewports of the console tests: a PC, and the WeCom app on a phone (as the member pages).
const (
	pcWidth, pcHeight = 1280, 800
	// wecomUA is a WeCom app User-Agent (iOS): it carries "wxwork".
	wecomUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 wxwork/4.1.22 MicroMessenger/7.0.1 Language/zh"
	// demoOperator is the demo's helpdesk operator (admin.operators).
	demoOperator = "helpdesk"
)

// TestBrowserAdmin: the helpdesk console on a PC (1280×800: the sign-in page with the web login
// QR, the dashboard, search, the person page, re-sending an invitation and an unbind with their
// reasons, sign-out) and in the WeCom app (375×667: OAuth, dashboard, person page; a member on
// neither list refused), each screen checked with axe-core (no serious or critical violation).
func TestBrowserAdmin(t *testing.T) {
	path := browserPath(t)
	axe := axeSource(t)
	d := runDemo(t)

	// A student binds on a phone: a pending member for the console to find.
	phone := openBrowser(t, path, d, viewportWidth, viewportHeight, "")
	phone.selectIdentity("2021000101", "张三")
	phone.bind("2021000101", "张三", "学生", "13800000101")

	pc := openBrowser(t, path, d, pcWidth, pcHeight, "")
	pc.open("/demo", 200)
	pc.sees("demo console", []string{"管理控制台 /admin", "helpdesk"})
	pc.click("#open-admin", 200)
	pc.sees("sign-in page", []string{"登录管理控制台", "企业微信扫码登录", "已在企业微信中打开？直接进入"})
	pc.checked("admin-signin", axe)
	pc.click("#qr-login", 200)
	pc.sees("web login stand-in", []string{"企业微信扫码登录(模拟)", "服务台(helpdesk)"})
	pc.click(`[data-pick="`+demoOperator+`"]`, 200)
	pc.sees("dashboard", []string{"概览", "helpdesk(操作员)", "待加入", "近 30 天每日新增绑定（合计 1）", "导出 CSV"})
	pc.checked("admin-dashboard", axe)

	pc.typeInto("#q", "138 0000 0101")
	pc.click(`form[action="/admin/search"] button`, 200)
	pc.sees("search", []string{"找到 1 条绑定记录", "2021000101", "138****0101", "张*"}, "13800000101", "张三")
	pc.checked("admin-search", axe)
	pc.click(`a[href="/admin/people/2021000101"]`, 200)
	pc.sees("person", []string{"学号/工号 2021000101", "未激活（尚未加入）", "重新发送邀请", "解除绑定", "查看详情", "[admin helpdesk]"}, "13800000101")
	pc.checked("admin-person", axe)

	pc.typeInto("#reason-invite", "本人来电:没收到邀请")
	pc.click(`form[action="/admin/people/2021000101/invite"] button`, 200)
	pc.sees("invited", []string{"已通过企业微信重新向 2021000101 发送加入邀请", "重新邀请", "本人来电:没收到邀请"})
	pc.screen("admin-invited")

	phoneAdmin := openBrowser(t, path, d, viewportWidth, viewportHeight, wecomUA)
	phoneAdmin.open("/admin", 200) // the demo's OAuth stand-in: who signs in
	phoneAdmin.sees("OAuth stand-in", []string{"企业微信网页授权(模拟)", "服务台(helpdesk)"})
	phoneAdmin.click(`[data-pick="2021000101"]`, 403)
	phoneAdmin.sees("not listed", []string{"无权访问", "不在管理控制台的名单中"})
	phoneAdmin.checked("admin-refused", axe)
	phoneAdmin.open("/admin", 200)
	phoneAdmin.click(`[data-pick="`+demoOperator+`"]`, 200)
	phoneAdmin.sees("dashboard in WeCom", []string{"概览", "helpdesk(操作员)"})
	phoneAdmin.checked("admin-dashboard", axe)
	phoneAdmin.open("/admin/people/2021000101", 200)
	phoneAdmin.checked("admin-person", axe)

	pc.typeInto("#reason-unbind", "本人申请:学号有误")
	pc.click(`form[action="/admin/people/2021000101/unbind"] button`, 200)
	pc.sees("unbound", []string{"已解除绑定：企业微信成员 2021000101 已删除", "当前没有生效中的绑定", "本人申请:学号有误"})
	pc.screen("admin-unbound")
	if b := d.binding(t, "2021000101"); b.Status != "unbound" {
		t.Errorf("binding after the console's unbind: %s", b.Status)
	}
	pc.click(`form[action="/admin/logout"] button`, 200)
	pc.sees("signed out", []string{"已退出管理控制台"})
	pc.checked("admin-signed-out", axe)
	phoneAdmin.open("/admin", 200) // a session of its own: still signed in
	phoneAdmin.sees("other session", []string{"概览"})
}

// checked saves a screenshot of the page and runs axe-core on it (WCAG 2 A/AA and best
// practices); a serious or critical violation fails the test, a lesser one is logged.
func (b *browser) checked(name, axe string) {
	b.t.Helper()
	b.screen(name)
	if axe == "" {
		return
	}
	vs := b.runAxe(name, axe)
	for _, v := range vs {
		line := fmt.Sprintf("%s: axe %s (%s): %s at %s", name, v.ID, v.Impact, v.Help, strings.Join(v.targets(), ", "))
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Error(line)
		} else {
			b.t.Log(line)
		}
	}
}
