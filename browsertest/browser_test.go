package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/wecampus/wecampus/app"
)

// Phone viewport of the browser tests (iPhone 6/7/8 in CSS pixels).
const (
	viewportWidth  = 375
	viewportHeight = 667
)

// findBrowser returns the Chromium (or Chrome) to drive: $WECAMPUS_CHROMIUM, Debian's
// /usr/bin/chromium, or one on PATH; "" if there is none.
func findBrowser() string {
	if p := os.Getenv("WECAMPUS_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// screenshotDir is where the browser tests save their screenshots.
func screenshotDir() string {
	if d := os.Getenv("WECAMPUS_SCREENSHOTS"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "wecampus-screenshots")
}

// browser is one headless Chromium tab on a demo of its own.
type browser struct {
	t      *testing.T
	ctx    context.Context
	d      *demo
	dir    string
	prefix string // of the screenshot files: the test's name, and the viewport of a second tab
	shot   int

	audits []*axePage // the accessibility audit of every member page visited (axe_test.go)
}

// newBrowser starts a demo and a browser on it at a phone's viewport; without a browser the test
// skips (fails under CI=true) before anything starts.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := browserPath(t)
	return openBrowser(t, path, runDemo(t), viewportWidth, viewportHeight, "")
}

// browserPath returns the Chromium to drive, or skips the test (fails it under CI=true).
func browserPath(t *testing.T) string {
	t.Helper()
	path := findBrowser()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium found: the browser tests are mandatory under CI=true (apt-get install -y chromium)")
		}
		t.Skip("no Chromium found (install Debian's chromium package or set WECAMPUS_CHROMIUM)")
	}
	return path
}

// openBrowser opens a browser tab on d with a viewport of width×height CSS pixels and, when ua
// is not "", that User-Agent.
func openBrowser(t *testing.T, path string, d *demo, width, height int, ua string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	if ua != "" {
		opts = append(opts, chromedp.UserAgent(ua))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(tabCtx, chromedp.EmulateViewport(int64(width), int64(height), chromedp.EmulateScale(2))); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	dir := screenshotDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	prefix := t.Name()
	if ua != "" || width != viewportWidth {
		prefix += fmt.Sprintf("-%dx%d", width, height)
	}
	old, _ := filepath.Glob(filepath.Join(dir, prefix+"-[0-9]*.png"))
	for _, f := range old {
		_ = os.Remove(f) // stale screenshots of an earlier run
	}
	t.Logf("screenshots: %s", dir)
	b := &browser{t: t, ctx: tabCtx, d: d, dir: dir, prefix: prefix}
	t.Cleanup(b.axeReport)
	return b
}

// screen saves a screenshot of the whole page as <dir>/<prefix>-<nn>-<name>.png.
func (b *browser) screen(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.shot++
	path := filepath.Join(b.dir, fmt.Sprintf("%s-%02d-%s.png", b.prefix, b.shot, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// open navigates to path, checks the status of the page and audits its accessibility.
func (b *browser) open(path string, status int64) {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.d.base+path))
	if err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	if resp.Status != status {
		b.t.Fatalf("open %s: status %d, want %d\n%s", path, resp.Status, status, b.text())
	}
	b.audit()
}

// click clicks the element sel, which must cause a navigation, checks the status of the page it
// ends on and audits its accessibility.
func (b *browser) click(sel string, status int64) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
	if resp.Status != status {
		b.t.Fatalf("click %s: status %d, want %d (%s)\n%s", sel, resp.Status, status, resp.URL, b.text())
	}
	b.audit()
}

// aboveFold checks that each element sel lies within the first screen (viewportHeight CSS pixels
// at viewportWidth), the page scrolled to its top.
func (b *browser) aboveFold(step string, sels ...string) {
	b.t.Helper()
	for _, sel := range sels {
		bottom, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](`(window.scrollTo(0, 0), document.querySelector(`+strconv.Quote(sel)+`).getBoundingClientRect().bottom)`))
		if err != nil {
			b.t.Fatalf("%s: %s: %v", step, sel, err)
		}
		if bottom > viewportHeight {
			b.t.Errorf("%s: %s ends %.0f px down, below the first screen (%d px)", step, sel, bottom, viewportHeight)
		}
	}
}

// typeInto types text into the input sel, key by key.
func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	// Clear first: a refused form keeps what the member typed.
	if err := chromedp.Do(b.ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("wait for %s: %v", sel, err)
	}
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(document.querySelector(`+strconv.Quote(sel)+`).value = "") === ""`)); err != nil {
		b.t.Fatalf("clear %s: %v", sel, err)
	}
	if err := chromedp.Do(b.ctx, chromedp.SendKeys(chromedp.CSS(sel), text)); err != nil {
		b.t.Fatalf("type into %s: %v", sel, err)
	}
}

// text is what the member sees: the page's rendered text.
func (b *browser) text() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		b.t.Fatalf("read the page: %v", err)
	}
	return s
}

// html is the page's markup.
func (b *browser) html() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if err != nil {
		b.t.Fatalf("read the page: %v", err)
	}
	return s
}

// sees checks that the page shows every want and none of the hidden strings (unmasked data).
func (b *browser) sees(step string, want []string, hidden ...string) {
	b.t.Helper()
	text := b.text()
	for _, w := range want {
		if !strings.Contains(text, w) {
			b.t.Errorf("%s: the page does not show %q:\n%s", step, w, text)
		}
	}
	for _, h := range hidden {
		if strings.Contains(text, h) {
			b.t.Errorf("%s: the page shows %q:\n%s", step, h, text)
		}
	}
}

// section is the rendered text of the element sel (e.g. a console section).
func (b *browser) section(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(sel)+`).innerText`))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

func (b *browser) location() string {
	b.t.Helper()
	u, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

// smsCode reads the last code the log SMS provider "sent" to mobile, from the console.
func (b *browser) smsCode(mobile string) string {
	b.t.Helper()
	code := b.d.smsCode(b.t, mobile)
	if !regexp.MustCompile(`^[0-9]{6}$`).MatchString(code) {
		b.t.Fatalf("no SMS code was sent to %s (got %q)", app.MaskMobile(mobile), code)
	}
	return code
}

// selectIdentity picks the test identity number on the console.
func (b *browser) selectIdentity(number, name string) {
	b.t.Helper()
	b.open("/demo", 200)
	b.click(`[data-number="`+number+`"] form[action="/demo/select"] button`, 200)
	b.sees("select identity", []string{"当前身份:" + name + "(" + number + ")"})
}

// bind registers number with mobile through /bind: the identity page, the CAS login form (typed),
// the mobile form, the follow page.
func (b *browser) bind(number, name, label, mobile string) {
	b.t.Helper()
	b.open("/bind", 200)
	b.sees("bind start", []string{"用户注册", "在校师生"})
	b.screen("bind-start")
	b.click(`a[href="/bind/login"]`, 200)
	b.sees("CAS login", []string{"统一身份认证"})
	b.typeInto("#username", number)
	b.typeInto("#password", demoPassword)
	b.screen("cas-login")
	b.click(`button[type="submit"]`, 200)
	if loc := b.location(); loc != b.d.base+"/bind/mobile" {
		b.t.Errorf("after the CAS login the browser is at %s, want /bind/mobile (303 from /bind/cas)", loc)
	}
	b.sees("mobile form", []string{"绑定手机号", "当前身份：" + name + "（" + label + " " + number + "）", "不是你？切换账号", "重新点击菜单“注册绑定”"})
	b.screen("bind-mobile")
	b.typeInto(`input[name="mobile"]`, mobile)
	b.click(`form[action="/bind/mobile"] button[type="submit"]`, 200)
	b.sees("follow page", []string{"注册成功", "企业微信账号已创建", app.MaskMobile(mobile), number, app.MaskName(name), "待加入"}, mobile)
	b.aboveFold("follow page", ".join h1", ".join p", ".qr img")
	b.screen("bind-follow")
}

// join lets number's member join WeCom from the console and waits for the welcome message.
func (b *browser) join(userID string) {
	b.t.Helper()
	b.open("/demo", 200)
	b.click(`[data-join="`+userID+`"]`, 200)
	b.sees("console after join", []string{"已加入企业微信"})
	b.waitWelcome(userID, 1)
}

// waitWelcome waits until userID has n welcome messages, and checks it gets no more: the change
// events of userID are delivered, and the outbox (woken by each of them) had time to send
// another.
func (b *browser) waitWelcome(userID string, n int) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.d.welcomes(b.t, userID) < n {
		if time.Now().After(deadline) {
			b.t.Fatalf("%s got %d welcome messages, want %d", userID, b.d.welcomes(b.t, userID), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.d.waitDelivered(b.t, userID, 3*time.Second)
	time.Sleep(500 * time.Millisecond) // a second activation (the change_contact callback) would send another
	if got := b.d.welcomes(b.t, userID); got != n {
		b.t.Errorf("%s got %d welcome messages, want exactly %d", userID, got, n)
	}
}

// binding is the binding of number, read with `wecampus binding get --json`.
func (b *browser) binding(number string) *bindingJSON {
	b.t.Helper()
	return b.d.binding(b.t, number)
}

// TestBrowserBind: console, bind (CAS form typed, mobile, follow page), join WeCom from the
// console, the member's own binding through the menu (OAuth), an alumnus refused.
func TestBrowserBind(t *testing.T) {
	b := newBrowser(t)
	d := b.d

	b.open("/demo", 200)
	b.sees("console", []string{"演示控制台", "测试身份", "2021000101", "demo123", "应用菜单"})
	b.screen("console")
	b.selectIdentity("2021000101", "张三")
	b.screen("console-selected")

	b.bind("2021000101", "张三", "学生", "13800000101")
	if bd := b.binding("2021000101"); bd.Status != app.StatusPending || bd.Mobile != "13800000101" {
		t.Fatalf("binding after bind: %+v", bd)
	}

	b.join("2021000101")
	b.open("/demo", 200)
	b.sees("console after join", []string{"欢迎加入", "已绑定", "change_contact.update_user", "138****0101"})
	if bs := b.section("#bindings"); !strings.Contains(bs, "138****0101") || strings.Contains(bs, "13800000101") || !strings.Contains(bs, "张*") {
		t.Errorf("the console's bindings table does not mask the mobile and name:\n%s", bs)
	}
	b.screen("console-joined")
	if bd := b.binding("2021000101"); bd.Status != app.StatusActive {
		t.Errorf("binding after join: %s, want active", bd.Status)
	}

	// 我的 › 绑定信息: WeCom OAuth (silent for the selected member), then the binding.
	b.click(`a[href="`+d.base+`/me"]`, 200)
	b.sees("me", []string{"我的绑定", "2021000101", "张*", "138****0101", "已绑定", "更换学号/工号（如预科转本科、本科读研）", "更换学号/工号（换绑）"}, "13800000101")
	b.screen("me")

	// 使用帮助: the encrypted click and its decrypted passive reply.
	b.open("/demo", 200)
	b.click(`form[action="/demo/click"] button`, 200)
	b.sees("help reply", []string{"微校园助手使用帮助", d.base + "/bind", d.base + "/unbind", d.base + "/me", "更换学号/工号（如预科转本科、本科读研）", "遇到问题请联系："})
	b.screen("help-reply")

	// The text 换绑 is answered with what a 换绑 does and the link to /bind; any other text gets
	// the help text.
	b.open("/demo", 200)
	b.typeInto(`form[action="/demo/text"] input[name="content"]`, "换绑")
	b.click(`form[action="/demo/text"] button`, 200)
	b.sees("换绑 reply", []string{"更换学号/工号（换绑", d.base + "/bind", "原学号/工号的企业微信账号将被删除"})
	b.screen("rebind-reply")
	b.open("/demo", 200)
	b.typeInto(`form[action="/demo/text"] input[name="content"]`, "你好")
	b.click(`form[action="/demo/text"] button`, 200)
	b.sees("other text reply", []string{"微校园助手使用帮助", d.base + "/me"})

	// An alumnus logs in and is refused.
	b.open("/bind/login", 200)
	b.typeInto("#username", "2010000001")
	b.typeInto("#password", demoPassword)
	b.click(`button[type="submit"]`, 403)
	b.sees("refused", []string{"无法办理", "20******01 的身份是“校友”", "使用其他账号登录"}, "alumni", "2010000001")
	b.screen("alumni-refused")

	// A page that does not exist: the error page (its own template).
	b.open("/bind/nowhere", 404)
	b.sees("not found", []string{"页面不存在", "请从微校园助手的菜单重新进入"})

	// The console as an admin sees it on a desktop.
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	b.open("/demo", 200)
	b.screen("console-desktop")
}

// TestBrowserVerify: a member whose WeChat mobile differs verifies: the tfa redirect, the mobile
// (a wrong one first), the SMS code from the log provider, success; one welcome message.
func TestBrowserVerify(t *testing.T) {
	b := newBrowser(t)
	d := b.d
	b.bind("2021000102", "李四", "学生", "13800000102")
	b.selectIdentity("2021000102", "李四")

	b.click(`[data-verify="2021000102"]`, 200)
	if loc := b.location(); !strings.HasPrefix(loc, d.base+"/verify?code=") {
		t.Errorf("the verification redirect is at %s", loc)
	}
	b.sees("verify mobile", []string{"关注身份验证", "发送验证码到 138****0102"}, "13800000102")
	b.screen("verify-mobile")

	b.typeInto(`input[name="mobile"]`, "13800009999")
	b.click(`form[action="/verify/sms"] button`, 400)
	b.sees("wrong mobile", []string{"不一致", "138****0102"})
	b.screen("verify-wrong-mobile")

	b.typeInto(`input[name="mobile"]`, "13800000102")
	b.click(`form[action="/verify/sms"] button`, 200)
	b.sees("verify code", []string{"输入验证码", "验证码已发送到 138****0102", "完成验证"}, "13800000102")
	b.screen("verify-code")

	b.typeInto(`input[name="sms_code"]`, b.smsCode("13800000102"))
	b.click(`form[action="/verify/confirm"] button[type="submit"]`, 200)
	b.sees("verified", []string{"验证成功", "2021000102", "138****0102", "已绑定"}, "13800000102")
	b.screen("verify-success")

	if bd := b.binding("2021000102"); bd.Status != app.StatusActive {
		t.Errorf("binding after verification: %s, want active", bd.Status)
	}
	if m := d.member(t, "2021000102"); m != "已加入" {
		t.Errorf("WeCom member after verification: %q, want 已加入", m)
	}
	b.waitWelcome("2021000102", 1)
}

// TestBrowserUnbind: the menu's 解除绑定 (OAuth), the binding shown masked, the SMS code, the
// success page with the way back to /bind.
func TestBrowserUnbind(t *testing.T) {
	b := newBrowser(t)
	d := b.d
	b.bind("2021000103", "王芳", "学生", "13800000103")
	b.join("2021000103")
	b.selectIdentity("2021000103", "王芳")

	b.click(`a[href="`+d.base+`/unbind"]`, 200)
	if loc := b.location(); !strings.HasPrefix(loc, d.base+"/unbind?") || !strings.Contains(loc, "code=") {
		t.Errorf("after OAuth the browser is at %s", loc)
	}
	b.sees("unbind show", []string{"解除绑定", "2021000103", "王*", "138****0103", "已绑定", "发送验证码并解除绑定"}, "13800000103", "王芳")
	b.screen("unbind-show")

	b.click(`form[action="/unbind/sms"] button`, 200)
	b.sees("unbind code", []string{"确认解除绑定", "验证码已发送到 138****0103"}, "13800000103")
	b.screen("unbind-code")

	b.typeInto(`input[name="sms_code"]`, "000000")
	b.click(`form[action="/unbind/confirm"] button[type="submit"]`, 400)
	b.sees("wrong code", []string{"验证码错误"})
	b.screen("unbind-wrong-code")

	b.typeInto(`input[name="sms_code"]`, b.smsCode("13800000103"))
	b.click(`form[action="/unbind/confirm"] button[type="submit"]`, 200)
	b.sees("unbound", []string{"已解除绑定", "2021000103", "绑定新的学号/工号", "无需清除微信缓存"}, "13800000103")
	if !strings.Contains(b.html(), `href="/bind"`) {
		t.Error("the success page has no link to /bind")
	}
	b.screen("unbind-success")

	if bd := b.binding("2021000103"); bd.Status != app.StatusUnbound {
		t.Errorf("binding after unbind: %s, want unbound", bd.Status)
	}
	if m := d.member(t, "2021000103"); m != "" {
		t.Errorf("the WeCom member still exists after unbind (%s)", m)
	}

	// The menu's 解除绑定 again: the finished state, not an error.
	b.open("/demo", 200)
	b.click(`a[href="`+d.base+`/unbind"]`, 200)
	b.sees("unbind again", []string{"已解除绑定", "2021000103", "绑定新的学号/工号"}, "13800000103")
	b.screen("unbind-again")

	// Once the flow cookie is gone (it lasts 15 minutes; here it is deleted), the menu goes
	// through OAuth: the member is no longer a member of the corp.
	if _, err := chromedp.Call(b.ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "wecampus_flow", URL: d.base}); err != nil {
		t.Fatal(err)
	}
	b.open("/demo", 200)
	b.click(`a[href="`+d.base+`/unbind"]`, 200)
	b.sees("unbind later", []string{"企业微信网页授权(模拟)", "还不是企业微信成员"})
	b.screen("unbind-again-authorize")
	b.click(`form[action="/demo/oauth/pick"]:last-of-type button`, 404)
	b.sees("not a member", []string{"还不是本单位企业微信成员"})
	b.screen("unbind-again-visitor")
}

// TestBrowserRebind: 换绑 — the same person (same name) with a new number and the same mobile:
// the 409 page offers the switch, the SMS code, the follow page for the new number.
func TestBrowserRebind(t *testing.T) {
	b := newBrowser(t)
	d := b.d
	b.bind("2020000401", "刘洋", "学生", "13600000401")
	b.join("2020000401")

	b.open("/bind/login", 200)
	b.typeInto("#username", "2024000401")
	b.typeInto("#password", demoPassword)
	b.click(`button[type="submit"]`, 200)
	b.sees("mobile form", []string{"当前身份：刘洋（学生 2024000401）"})
	b.typeInto(`input[name="mobile"]`, "13600000401")
	b.click(`form[action="/bind/mobile"] button[type="submit"]`, 409)
	// The old number is masked apart from the new one, which the member logged in with.
	b.sees("conflict", []string{"可以换绑", "136****0401", "已绑定你原来的学号/工号 20*0****01", "已更换为 2024000401", "换绑到新学号/工号"}, "13600000401", "2020000401")
	b.screen("migrate-conflict")

	b.click(`form[action="/bind/migrate/code"] button`, 200)
	b.sees("migrate code", []string{"换绑验证", "验证码已发送到 136****0401", "2024000401", "确认换绑"}, "13600000401")
	b.screen("migrate-code")

	b.typeInto(`input[name="sms_code"]`, b.smsCode("13600000401"))
	b.click(`form[action="/bind/migrate"] button[type="submit"]`, 200)
	b.sees("migrated", []string{"换绑成功", "2024000401", "136****0401"}, "13600000401")
	b.screen("migrate-follow")

	if old := b.binding("2020000401"); old.Status != app.StatusRebound {
		t.Errorf("old binding: %s, want migrated", old.Status)
	}
	if nb := b.binding("2024000401"); !nb.Status.Live() || nb.Mobile != "13600000401" {
		t.Errorf("new binding: %+v", nb)
	}
	if m := d.member(t, "2020000401"); m != "" {
		t.Errorf("the old WeCom member still exists after 换绑 (%s)", m)
	}
	if m := d.member(t, "2024000401"); m == "" {
		t.Error("no WeCom member for the new number after 换绑")
	}
	b.open("/demo", 200)
	b.sees("console after migrate", []string{"已换绑"})
	if bs := b.section("#bindings"); strings.Count(bs, "136****0401") != 2 || strings.Contains(bs, "13600000401") {
		t.Errorf("the console's bindings table after 换绑:\n%s", bs)
	}
	b.screen("console-migrated")
}
