package handlers

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/wecampus/wecampus/app"
)

// memberPages are the templates of the member H5 flows, each parsed with the shared layout.
var memberPages = []string{"message", "bind_start", "bind_mobile", "follow", "conflict", "code", "verify_mobile", "unbind_show"}

func parseMemberPages() (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(memberPages))
	for _, name := range memberPages {
		t, err := template.New(name).ParseFS(templateFS, "templates/layout.html", "templates/message.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("handlers: parse template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// pageView is the view of every member page; each page uses the fields it needs.
type pageView struct {
	Title       string
	Icon        string // message pages: success | warn | info | wait
	Paragraphs  []string
	Actions     []action
	Error       string // inline error above a form
	Note        string // information above a form (a refused resend: how long to wait)
	CSRF        string
	RequestID   string
	HelpContact *helpContact // server.help_contact; nil when not set
	// Invalid marks the form's input as the cause of Error (aria-invalid): renderPage sets it
	// for a 400 answer, which is the member's input refused.
	Invalid bool

	Person       *app.Person
	Binding      *bindingView
	Mobile       string // shown (masked) or prefilled (the member's own input)
	Typed        string // what the member typed, kept after a refusal
	QRCodeURL    string
	RebindFrom   int64  // the earlier binding a 换绑 would release: the conflict page offers it
	Action       string // code form target
	Submit       string // code form button
	ResendAction string
	ResendNote   string // next to the resend button: when it will work
}

type action struct {
	Label   string
	URL     string
	Primary bool
}

// bindingView shows a binding with personal data masked.
type bindingView struct {
	Number, Name, Label, Mobile, Status string
}

var statusText = map[app.Status]string{
	app.StatusPending: "已注册，待加入企业微信",
	app.StatusActive:  "已绑定",
	app.StatusUnbound: "已解除绑定",
	app.StatusRebound: "已换绑",
}

func bindingViewOf(b *app.MemberBinding) *bindingView {
	if b == nil {
		return nil
	}
	return &bindingView{Number: b.Number, Name: app.MaskName(b.Name), Label: b.Label,
		Mobile: app.MaskMobile(b.Mobile), Status: statusText[b.Status]}
}

// renderPage renders a member page into a buffer, then writes it with no-store caching (the
// pages show personal data).
func (s *Server) renderPage(c *gin.Context, status int, name string, v *pageView) {
	t := s.memberPages[name]
	v.RequestID = RequestID(c.Request.Context())
	v.HelpContact = s.help
	v.Invalid = v.Error != "" && status == http.StatusBadRequest
	if t == nil {
		s.log.Error("unknown page template", "page", name, "request_id", v.RequestID)
		s.renderError(c, http.StatusInternalServerError, "系统内部错误", "请稍后再试。")
		return
	}
	if v.CSRF == "" {
		v.CSRF = csrfToken(c)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.Error("render page", "page", name, "err", err, "request_id", v.RequestID)
		s.renderError(c, http.StatusInternalServerError, "系统内部错误", "请稍后再试。")
		return
	}
	s.guard.pageHeaders(c.Writer.Header(), originOrEmpty(v.QRCodeURL))
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// renderMessage renders a message page (success, refusal, restart).
func (s *Server) renderMessage(c *gin.Context, status int, v *pageView) {
	if v.Icon == "" {
		v.Icon = "warn"
	}
	s.renderPage(c, status, "message", v)
}

// helpContact is server.help_contact as the page footer shows it: the phone number in it (the
// first run of at least 7 digits, with - or spaces inside) kept on one line and tappable.
type helpContact struct {
	Text                 string
	Before, Phone, After string // Text = Before + Phone + After; Phone "" when there is none
	Tel                  string // Phone for a tel: link: its digits (and a leading +)
}

// phoneRe finds a phone number in server.help_contact: 0471-6576286, 400 810 8888, +86 10 1234 5678.
var phoneRe = regexp.MustCompile(`\+?[0-9][0-9 -]{5,}[0-9]`)

func parseHelpContact(text string) *helpContact {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil
	}
	h := &helpContact{Text: text, Before: text}
	loc := phoneRe.FindStringIndex(text)
	if loc == nil {
		return h
	}
	phone := text[loc[0]:loc[1]]
	tel := strings.Map(func(r rune) rune {
		if r == '+' || (r >= '0' && r <= '9') {
			return r
		}
		return -1
	}, phone)
	if len(tel) < 7 {
		return h
	}
	h.Before, h.Phone, h.After, h.Tel = text[:loc[0]], phone, text[loc[1]:], tel
	return h
}

// String is the whole text, for a template that prints the contact as it is.
func (h *helpContact) String() string { return h.Text }

// rebindText offers 换绑 in the words of a student, with what will happen; rebindAction starts
// it: a fresh CAS login (renew=true), as the new number.
const rebindText = "更换学号/工号（如预科转本科、本科读研）无需先解除绑定：点击“更换学号/工号”，用新学号/工号登录，" +
	"填写同一个手机号并输入验证码即可换绑。原学号/工号的企业微信账号将被删除，新学号/工号用同一个手机号注册，再用同一个微信加入即可。"

var rebindAction = action{Label: "更换学号/工号（换绑）", URL: "/bind/login"}

// restartPage is the page for a step reached out of order or with an expired flow.
func restartPage(title, msg, path string) *pageView {
	v := &pageView{Title: title, Paragraphs: []string{msg}}
	switch {
	case strings.HasPrefix(path, "/bind"):
		v.Actions = []action{{Label: "重新开始注册绑定", URL: "/bind", Primary: true}}
	case strings.HasPrefix(path, "/verify"):
		v.Paragraphs = append(v.Paragraphs, "请返回企业微信，重新进入“微校园助手”的身份验证页面。")
	case strings.HasPrefix(path, "/unbind"):
		v.Actions = []action{{Label: "重新开始解除绑定", URL: "/unbind", Primary: true}}
	case strings.HasPrefix(path, "/admin"):
		v.Actions = []action{{Label: "返回管理控制台", URL: "/admin", Primary: true}}
	default:
		v.Actions = []action{{Label: "返回", URL: "/me", Primary: true}}
	}
	return v
}

// flowExpired answers a step whose flow cookie is missing, forged or expired.
func (s *Server) flowExpired(c *gin.Context) {
	s.renderMessage(c, http.StatusUnauthorized, restartPage("页面已过期",
		"为保护你的信息安全，每次操作需在 15 分钟内完成，或者你是从其他页面直接进入的。", c.Request.URL.Path))
}

// flowFinished answers a step of a flow that has finished (err wraps app.ErrFlowFinished): the
// cookie was saved before the last step and sent again. Nothing was done; the member may start
// a new flow.
func (s *Server) flowFinished(c *gin.Context, err error) {
	s.flows.clear(c)
	s.renderMessage(c, http.StatusConflict, restartPage("操作已完成", app.ErrorMessage(err), c.Request.URL.Path))
}

// appStatus maps an app error code to the HTTP status of its page.
func appStatus(err error) int {
	switch app.ErrorCode(err) {
	case app.EINVALID, app.EEXPIRED:
		return http.StatusBadRequest
	case app.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case app.EFORBIDDEN:
		return http.StatusForbidden
	case app.ENOTFOUND:
		return http.StatusNotFound
	case app.ECONFLICT:
		return http.StatusConflict
	case app.ETOOMANY:
		return http.StatusTooManyRequests
	case app.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

var errorTitles = map[string]string{
	app.EINVALID:      "信息有误",
	app.EEXPIRED:      "已过期",
	app.EUNAUTHORIZED: "身份认证失败",
	app.EFORBIDDEN:    "无法办理",
	app.ENOTFOUND:     "未找到绑定信息",
	app.ECONFLICT:     "无法绑定",
	app.ETOOMANY:      "操作过于频繁",
	app.EUNAVAILABLE:  "系统繁忙",
	app.EINTERNAL:     "系统内部错误",
}

// renderAppError renders err as a message page; only internal errors are logged as faults.
func (s *Server) renderAppError(c *gin.Context, err error, actions ...action) {
	code := app.ErrorCode(err)
	rid := RequestID(c.Request.Context())
	switch code {
	case app.EINTERNAL:
		s.log.Error("request failed", "path", c.Request.URL.Path, "err", err, "request_id", rid)
	case app.EUNAVAILABLE:
		s.log.Warn("dependency unavailable", "path", c.Request.URL.Path, "err", err, "request_id", rid)
	}
	v := &pageView{Title: errorTitles[code], Paragraphs: []string{app.ErrorMessage(err)}, Actions: actions}
	if code == app.EUNAVAILABLE || code == app.EINTERNAL {
		v.Icon = "wait"
	}
	s.renderMessage(c, appStatus(err), v)
}
