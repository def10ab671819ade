package browsertest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/wecampus/wecampus/app"
)

// Refresh and Back at every step of the member flows (CONTRACT §7): each page a step lands on is
// a GET, so that a reload (pull-to-refresh, reopening from WeChat's "…" menu) shows it again and
// Back lands on a page of the service, never on Chrome's "Confirm Form Resubmission"; neither
// sends a form again, an SMS or a WeCom call.

// titleSuffix ends the title of every page of the service.
const titleSuffix = " - 微校园助手"

// shown is what identifies the page the browser shows: its title and how it was reached.
type shown struct {
	title, nav string
	status     int
}

func (b *browser) shown() shown {
	b.t.Helper()
	title, err := chromedp.Run(b.ctx, chromedp.Title())
	if err != nil {
		b.t.Fatalf("read the title: %v", err)
	}
	nav, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(performance.getEntriesByType("navigation")[0] || {}).type || ""`))
	if err != nil {
		b.t.Fatalf("read the navigation type: %v", err)
	}
	status, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`(performance.getEntriesByType("navigation")[0] || {}).responseStatus || 0`))
	if err != nil {
		b.t.Fatalf("read the status: %v", err)
	}
	return shown{title: title, nav: nav, status: status}
}

// onServicePage fails unless the browser shows a page of the service (not Chrome's error page
// for a POST it would have to send again) answered with 200, showing every want.
func (b *browser) onServicePage(step string, want ...string) shown {
	b.t.Helper()
	if loc := b.location(); strings.HasPrefix(loc, "chrome-error:") || !strings.HasPrefix(loc, b.d.base) {
		b.t.Fatalf("%s: the browser is at %s, not on a page of the service:\n%s", step, loc, b.text())
	}
	p := b.shown()
	if !strings.HasSuffix(p.title, titleSuffix) || p.status != 200 {
		b.t.Fatalf("%s: title %q, status %d\n%s", step, p.title, p.status, b.text())
	}
	b.sees(step, want)
	return p
}

// noEffects fails if the service did anything since before: a POST, an SMS, a WeCom call.
func (b *browser) noEffects(step string, before effects) {
	b.t.Helper()
	if after := b.d.effects(b.t); after != before {
		b.t.Errorf("%s: the service did something: %+v -> %+v", step, before, after)
	}
}

// reload reloads the page as pull-to-refresh does: the same page (same title), a plain reload,
// nothing done again.
func (b *browser) reload(step string, want ...string) {
	b.t.Helper()
	before, was := b.d.effects(b.t), b.shown()
	if _, err := chromedp.Run(b.ctx, chromedp.Reload()); err != nil {
		b.t.Fatalf("%s: reload: %v\n%s", step, err, b.text())
	}
	p := b.onServicePage(step+" (reloaded)", want...)
	if p.title != was.title || p.nav != "reload" {
		b.t.Errorf("%s: reloaded to %q (%s), was %q", step, p.title, p.nav, was.title)
	}
	b.noEffects(step+" (reloaded)", before)
}

// back goes back one page: a page of the service, fetched with GET (back_forward), showing every
// want, nothing sent again. The screenshot is taken as name.
func (b *browser) back(step, name string, want ...string) {
	b.t.Helper()
	before := b.d.effects(b.t)
	if err := b.traverse(-1); err != nil {
		b.t.Fatalf("%s: Back: %v\n%s", step, err, b.text())
	}
	if p := b.onServicePage(step+" (Back)", want...); p.nav != "back_forward" {
		b.t.Errorf("%s: Back was a %q navigation", step, p.nav)
	}
	b.noEffects(step+" (Back)", before)
	b.screen(name)
	b.resync()
}

// backToCAS goes back from the mobile form to the CAS login page, where the login started.
func (b *browser) backToCAS(step, name string) {
	b.t.Helper()
	before := b.d.effects(b.t)
	if err := b.traverse(-1); err != nil {
		b.t.Fatalf("%s: Back: %v\n%s", step, err, b.text())
	}
	if loc := b.location(); !strings.HasPrefix(loc, b.d.base+"/demo/cas/login?") {
		b.t.Fatalf("%s: Back went to %s, want the CAS login page", step, loc)
	}
	b.sees(step+" (Back)", []string{"统一身份认证"})
	b.noEffects(step+" (Back)", before)
	b.screen(name)
	b.resync()
}

// resync reloads the page after a history traversal: chromedp keeps the document it knew before
// the traversal for its element queries (clicks, typing), and a reload makes it load the current
// one. Reloading a page of the service is a GET with no effect.
func (b *browser) resync() {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Reload()); err != nil {
		b.t.Fatalf("reload after a history traversal: %v", err)
	}
}

// forward goes forward one page, the way back after back.
func (b *browser) forward(step string, want ...string) {
	b.t.Helper()
	before := b.d.effects(b.t)
	if err := b.traverse(1); err != nil {
		b.t.Fatalf("%s: Forward: %v\n%s", step, err, b.text())
	}
	b.onServicePage(step+" (Forward)", want...)
	b.noEffects(step+" (Forward)", before)
	b.resync()
}

// TestBrowserRefreshBackBind: the mobile form reloads (no new login), the follow page reloads
// (no second user/create), Back from it shows the binding, not the form and not a prompt.
func TestBrowserRefreshBackBind(t *testing.T) {
	b := newBrowser(t)
	b.open("/bind", 200)
	b.reload("bind start", "用户注册", "在校师生")
	b.click(`a[href="/bind/login"]`, 200)
	b.typeInto("#username", "2021000101")
	b.typeInto("#password", demoPassword)
	b.click(`button[type="submit"]`, 200)
	if loc := b.location(); loc != b.d.base+"/bind/mobile" {
		t.Fatalf("after the CAS login the browser is at %s, want /bind/mobile (303)", loc)
	}
	b.reload("mobile form", "绑定手机号", "张三", "下一步")
	b.screen("mobile-reloaded")
	// Back to the CAS login page, and forward again: the form, still valid.
	b.backToCAS("mobile form", "back-to-cas")
	b.forward("mobile form", "绑定手机号", "下一步")

	b.typeInto(`input[name="mobile"]`, "13800000101")
	b.click(`form[action="/bind/mobile"] button[type="submit"]`, 200)
	b.onServicePage("follow page", "注册成功", "138****0101")
	b.reload("follow page", "注册成功", "138****0101")
	b.screen("follow-reloaded")
	b.back("follow page", "back-from-follow", "注册成功", "138****0101")
	b.reload("follow page after Back", "注册成功")
	b.backToCAS("Back twice from the follow page", "back-to-cas-after-bind")
	if n := b.wecomCalls("user/create"); n != 1 {
		t.Errorf("user/create called %d times, want 1", n)
	}
}

// TestBrowserRefreshBackVerify: the verify page (the WeCom link) reloads without redeeming the
// code again; the code page reloads without a second SMS; the success page reloads without a
// second tfa_succ; Back shows "你已完成验证".
func TestBrowserRefreshBackVerify(t *testing.T) {
	b := newBrowser(t)
	b.bind("2021000102", "李四", "学生", "13800000102")
	b.selectIdentity("2021000102", "李四")
	b.click(`[data-verify="2021000102"]`, 200)
	b.onServicePage("verify page", "关注身份验证", "发送验证码到 138****0102")
	b.reload("verify page", "发送验证码到 138****0102")

	b.click(`form[action="/verify/sms"] button`, 200) // one tap: the mobile left empty
	if loc := b.location(); loc != b.d.base+"/verify/sms" {
		t.Errorf("after the send the browser is at %s, want /verify/sms (303)", loc)
	}
	b.onServicePage("code page", "输入验证码", "验证码已发送到 138****0102")
	b.reload("code page", "验证码已发送到 138****0102")
	b.screen("verify-code-reloaded")
	b.back("code page", "verify-back-from-code", "输入验证码") // the link again: the current step
	b.forward("code page", "输入验证码")

	b.typeInto(`input[name="sms_code"]`, b.smsCode("13800000102"))
	b.click(`form[action="/verify/confirm"] button[type="submit"]`, 200)
	b.onServicePage("verified", "验证成功", "2021000102")
	b.reload("verified", "验证成功")
	b.back("verified", "verify-back-from-success", "你已完成验证", "2021000102")
	b.back("code page after success", "verify-back-to-link", "你已完成验证")
	for ep, want := range map[string]int{"auth/get_tfa_info": 1, "user/tfa_succ": 1} {
		if n := b.wecomCalls(ep); n != want {
			t.Errorf("%s called %d times, want %d", ep, n, want)
		}
	}
	if n := b.d.effects(t).SMS; n != 1 {
		t.Errorf("%d SMS codes sent, want 1", n)
	}
}

// TestBrowserRefreshBackUnbind: unbind, then bind again at once (unbind+rebind): every page
// reloads and goes back without a prompt, and the used unbind link shows "已解除绑定".
func TestBrowserRefreshBackUnbind(t *testing.T) {
	b := newBrowser(t)
	d := b.d
	b.bind("2021000103", "王芳", "学生", "13800000103")
	b.join("2021000103")
	b.selectIdentity("2021000103", "王芳")

	b.click(`a[href="`+d.base+`/unbind"]`, 200)
	b.onServicePage("unbind page", "解除绑定", "发送验证码并解除绑定")
	b.reload("unbind page", "发送验证码并解除绑定") // no second OAuth code redeemed
	b.click(`form[action="/unbind/sms"] button`, 200)
	b.onServicePage("unbind code", "确认解除绑定", "验证码已发送到 138****0103")
	b.reload("unbind code", "验证码已发送到 138****0103")
	b.back("unbind code", "unbind-back-from-code", "确认解除绑定")
	b.forward("unbind code", "确认解除绑定")

	b.typeInto(`input[name="sms_code"]`, b.smsCode("13800000103"))
	b.click(`form[action="/unbind/confirm"] button[type="submit"]`, 200)
	b.onServicePage("unbound", "已解除绑定", "2021000103", "绑定新的学号/工号")
	b.reload("unbound", "已解除绑定")
	b.back("unbound", "unbind-back-from-success", "已解除绑定", "2021000103")
	b.back("unbind code after success", "unbind-back-to-link", "已解除绑定", "2021000103")
	b.forward("unbind link", "已解除绑定")
	b.forward("unbind code", "已解除绑定")
	if bd := b.binding("2021000103"); bd.Status != app.StatusUnbound {
		t.Fatalf("binding after unbind: %s", bd.Status)
	}

	// Bind again at once, same number and mobile, no cache to clear.
	b.click(`a[href="/bind"]`, 200)
	b.click(`a[href="/bind/login"]`, 200)
	b.typeInto("#username", "2021000103")
	b.typeInto("#password", demoPassword)
	b.click(`button[type="submit"]`, 200)
	b.reload("mobile form after unbind", "绑定手机号", "王芳")
	b.typeInto(`input[name="mobile"]`, "13800000103")
	b.click(`form[action="/bind/mobile"] button[type="submit"]`, 200)
	b.onServicePage("bound again", "注册成功", "138****0103")
	b.reload("bound again", "注册成功")
	b.back("bound again", "rebind-back-from-follow", "注册成功")
	for ep, want := range map[string]int{"user/delete": 1, "user/create": 2} {
		if n := b.wecomCalls(ep); n != want {
			t.Errorf("%s called %d times, want %d", ep, n, want)
		}
	}
}

// TestBrowserRefreshBackRebind: 换绑 — the code page reloads without a second SMS, the follow
// page without a second delete or create, Back from it shows the outcome. (The 换绑 offer is the
// 409 answer to the mobile form, a refusal answered directly (CONTRACT §3): the page before the
// code page is that POST's answer, which Chrome cannot show again without sending it.)
func TestBrowserRefreshBackRebind(t *testing.T) {
	b := newBrowser(t)
	b.bind("2020000401", "刘洋", "学生", "13600000401")
	b.join("2020000401")
	b.open("/bind/login", 200)
	b.typeInto("#username", "2024000401")
	b.typeInto("#password", demoPassword)
	b.click(`button[type="submit"]`, 200)
	b.typeInto(`input[name="mobile"]`, "13600000401")
	b.click(`form[action="/bind/mobile"] button[type="submit"]`, 409)
	b.sees("offer", []string{"可以换绑"})

	b.click(`form[action="/bind/migrate/code"] button`, 200)
	b.onServicePage("换绑 code", "换绑验证", "验证码已发送到 136****0401")
	b.reload("换绑 code", "换绑验证", "验证码已发送到 136****0401")
	b.screen("migrate-code-reloaded")

	b.typeInto(`input[name="sms_code"]`, b.smsCode("13600000401"))
	b.click(`form[action="/bind/migrate"] button[type="submit"]`, 200)
	b.onServicePage("换绑 follow", "换绑成功", "2024000401")
	b.reload("换绑 follow", "换绑成功")
	b.back("换绑 follow", "migrate-back-from-follow", "换绑成功", "2024000401")
	b.reload("code page after 换绑", "换绑成功")
	for ep, want := range map[string]int{"user/delete": 1, "user/create": 2} {
		if n := b.wecomCalls(ep); n != want {
			t.Errorf("%s called %d times, want %d", ep, n, want)
		}
	}
	if n := b.d.effects(t).SMS; n != 1 {
		t.Errorf("%d SMS codes sent, want 1", n)
	}
}

// TestBrowserRefusals: refusals answer the POST directly (CONTRACT §3), so Back onto one is
// Chrome's resubmission page (the checks above would see one: this proves that they can); a
// resend within the cooldown is a 429 code page with a note; the last wrong guess of a code
// heads the page.
func TestBrowserRefusals(t *testing.T) {
	b := newBrowser(t)
	b.open("/bind/login", 200)
	b.typeInto("#username", "2021000101")
	b.typeInto("#password", demoPassword)
	b.click(`button[type="submit"]`, 200)
	b.typeInto(`input[name="mobile"]`, "12345")
	b.click(`form[action="/bind/mobile"] button[type="submit"]`, 400)
	b.typeInto(`input[name="mobile"]`, "13800000101")
	b.click(`form[action="/bind/mobile"] button[type="submit"]`, 200)
	before := b.d.effects(t)
	if err := b.traverse(-1); err != nil {
		t.Fatal(err)
	}
	if loc, text := b.location(), b.text(); !strings.HasPrefix(loc, "chrome-error:") || !strings.Contains(text, "ERR_CACHE_MISS") {
		t.Fatalf("Back onto the 400 answer: at %s; want Chrome's resubmission page\n%s", loc, text)
	}
	b.noEffects("Back onto a refusal", before)
	b.screen("back-onto-refusal")

	b.selectIdentity("2021000101", "张三")
	b.click(`[data-verify="2021000101"]`, 200)
	b.click(`form[action="/verify/sms"] button`, 200)
	b.click(`form[action="/verify/sms"] button`, 429) // 重新获取验证码, at once
	b.sees("resend within the cooldown", []string{"输入验证码", "秒后再试", "之前发送的验证码仍然有效"}, "新的验证码")
	b.screen("verify-resend-cooldown")
	if n := b.d.effects(t).SMS; n != 1 {
		t.Errorf("%d SMS codes sent, want 1", n)
	}
	wrong := "000000"
	if b.smsCode("13800000101") == wrong {
		wrong = "111111"
	}
	for i := range 5 {
		b.typeInto(`input[name="sms_code"]`, wrong)
		b.click(`form[action="/verify/confirm"] button[type="submit"]`, 400)
		if i < 4 {
			b.sees("wrong code", []string{"验证码错误"})
		}
	}
	b.sees("too many wrong codes", []string{"验证码错误次数过多", "重新获取验证码"})
	if h, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("h1").innerText`)); h != "验证码错误次数过多" {
		t.Errorf("heading after the last wrong guess: %q", h)
	}
	b.screen("verify-too-many-wrong")
}

// traverse goes delta entries through the history, as Back (-1) and Forward (+1) do, and waits
// until the document there has loaded: a page of the service, or Chrome's error page for a POST
// it would have to send again. (chromedp's NavigateForward may wait forever for a load event it
// missed.)
func (b *browser) traverse(delta int) error {
	h, err := chromedp.Run(b.ctx, chromedp.NavigationEntries())
	if err != nil {
		return err
	}
	i := int(h.CurrentIndex) + delta
	if i < 0 || i >= len(h.Entries) {
		return fmt.Errorf("no history entry %d (of %d)", i, len(h.Entries))
	}
	if _, err := chromedp.Call(b.ctx, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: h.Entries[i].ID}); err != nil {
		return err
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		cur, err := chromedp.Run(ctx, chromedp.NavigationEntries())
		var state string
		if err == nil && cur.CurrentIndex == int64(i) {
			state, err = chromedp.Run(ctx, chromedp.EvaluateAsDevTools[string](`document.readyState`))
		}
		cancel()
		if err == nil && state == "complete" {
			return nil
		}
	}
	return fmt.Errorf("history entry %s did not load within 15s", h.Entries[i].URL)
}

// wecomCalls is how many calls of endpoint the WeCom simulator received (the console's count).
func (b *browser) wecomCalls(endpoint string) int {
	b.t.Helper()
	for _, row := range rows(find(b.d.console(b.t), "section", "id", "wecom-calls")) {
		if len(row) >= 2 && row[0] == endpoint {
			n, _ := strconv.Atoi(row[1])
			return n
		}
	}
	return 0
}
