package demo

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// Limits of the console's lists.
const (
	maxRows       = 30
	maxEvents     = 20
	maxMessages   = 20
	maxCallbacks  = 10
	maxTextLength = 200
	// joinWait is how long the console waits for the change_contact callback of a join before it
	// shows the page (WeCom delivers within seconds; locally it takes milliseconds).
	joinWait = 3 * time.Second
)

var bindingStatusText = map[app.Status]string{
	app.StatusPending: "待加入",
	app.StatusActive:  "已绑定",
	app.StatusUnbound: "已解除",
	app.StatusRebound: "已换绑",
}

var memberStatusText = map[int]string{
	1: "已加入",
	2: "已禁用",
	4: "已邀请,未加入",
	5: "已退出",
}

var purposeText = map[app.Purpose]string{
	app.PurposeVerify: "关注身份验证",
	app.PurposeUnbind: "解除绑定",
	app.PurposeRebind: "换绑",
}

// identityRow is one test identity on the console.
type identityRow struct {
	Identity
	Label       string // the identity rule's label, e.g. 学生
	Refused     string // why the identity rules refuse this person, or ""
	UserID      string
	Member      string // WeCom member status, or ""
	CanJoin     bool   // invited and not joined: 加入 / 身份验证 are possible
	Binding     string // binding status, or ""
	BindingTone string // CSS class of the binding status
	Selected    bool
}

type menuItem struct {
	Name string // "我的 › 解除绑定"
	Type string
	URL  string
	Key  string
}

type smsRow struct {
	Mobile, Purpose, Code, At string
	Count                     int
}

// apiRow counts the calls the WeCom simulator received for one endpoint.
type apiRow struct {
	Endpoint string
	Count    int
}

type bindingRow struct {
	ID                                   int64
	Number, UserID, Name, Mobile, Status string
	Tone, Updated                        string
}

type eventRow struct {
	Kind, Actor, Number, Detail, At string
}

type messageRow struct {
	To, Content, At string
}

type callbackRow struct {
	Path, Kind, UserID, At string
	Status                 int
}

// consoleView is the view of templates/console.html.
type consoleView struct {
	Title     string
	Base      string
	DataDir   string
	Notice    string
	Error     string
	Selected  *identityRow
	Rows      []identityRow
	Menu      []menuItem
	SMS       []smsRow
	APICalls  []apiRow // by endpoint, in order of first call
	Bindings  []bindingRow
	Events    []eventRow
	Messages  []messageRow
	Callbacks []callbackRow
	// AdminUserID is the demo's helpdesk operator, who signs in to /admin.
	AdminUserID string
}

func (c *Console) handleConsole(w http.ResponseWriter, r *http.Request) {
	v := c.consoleView(r)
	switch r.URL.Query().Get("done") {
	case "selected":
		if v.Selected != nil {
			v.Notice = "当前身份:" + v.Selected.Name + "(" + v.Selected.Number + ")。菜单、授权和身份验证都以此身份进行。"
		}
	case "joined":
		v.Notice = "成员 " + r.URL.Query().Get("u") + " 已加入企业微信;企业微信已向 /wecom/contacts 推送加密的成员变更事件(update_user,Status=1),绑定随之生效并发送欢迎消息。"
	case "join-slow":
		v.Notice = "成员 " + r.URL.Query().Get("u") + " 已加入企业微信;成员变更事件仍在投递中,请稍后刷新本页。"
	}
	c.render(w, http.StatusOK, "console", v)
}

func (c *Console) consoleError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := c.consoleView(r)
	v.Error = msg
	c.render(w, status, "console", v)
}

// consoleView gathers what the console shows for the person of r.
func (c *Console) consoleView(r *http.Request) *consoleView {
	ctx := r.Context()
	v := &consoleView{Title: "演示控制台", Base: c.base, DataDir: c.cfg.DataDir, AdminUserID: c.cfg.Admin.UserID}
	sel, hasSel := c.selected(r)
	for _, id := range c.cfg.Identities {
		row := identityRow{Identity: id, Selected: hasSel && sel.Number == id.Number}
		userID, rule, err := c.userIDOf(id)
		if err != nil {
			row.Refused = app.ErrorMessage(err)
		} else {
			row.UserID, row.Label = userID, rule.Label
			if m, ok := c.cfg.WeCom.Member(userID); ok {
				row.Member = memberStatusText[m.Status]
				row.CanJoin = m.Status == 4
			}
		}
		if b, err := c.cfg.Service.FindBinding(ctx, id.Number); err == nil && b.Number == id.Number {
			row.Binding, row.BindingTone = bindingStatusText[b.Status], string(b.Status)
		}
		v.Rows = append(v.Rows, row)
	}
	for i := range v.Rows {
		if v.Rows[i].Selected {
			v.Selected = &v.Rows[i]
		}
	}
	v.Menu = c.menuItems()
	for _, s := range c.cfg.SMS.Sends() {
		code, _ := c.cfg.SMS.Last(s.Mobile)
		v.SMS = append(v.SMS, smsRow{Mobile: app.MaskMobile(s.Mobile), Purpose: cmp.Or(purposeText[s.Purpose], string(s.Purpose)), Code: code, At: clock(s.At), Count: s.Count})
	}
	v.APICalls = c.apiCalls()
	c.addBindings(ctx, v)
	msgs := c.cfg.WeCom.Messages()
	for i := len(msgs) - 1; i >= 0 && len(v.Messages) < maxMessages; i-- {
		v.Messages = append(v.Messages, messageRow{To: msgs[i].ToUser, Content: msgs[i].Content, At: clock(msgs[i].At)})
	}
	cbs := c.Callbacks()
	for i := len(cbs) - 1; i >= 0 && len(v.Callbacks) < maxCallbacks; i-- {
		cb := cbs[i]
		v.Callbacks = append(v.Callbacks, callbackRow{Path: cb.Path, Kind: cb.Kind, UserID: cb.UserID, Status: cb.Status, At: clock(cb.At)})
	}
	return v
}

// apiCalls counts the calls the WeCom simulator received, by endpoint: what a reload or Back
// must not repeat shows here.
func (c *Console) apiCalls() []apiRow {
	var out []apiRow
	for _, call := range c.cfg.WeCom.Calls() {
		i := slices.IndexFunc(out, func(r apiRow) bool { return r.Endpoint == call.Endpoint })
		if i < 0 {
			i = len(out)
			out = append(out, apiRow{Endpoint: call.Endpoint})
		}
		out[i].Count++
	}
	return out
}

// menuItems flattens the app menu: one item per leaf button.
func (c *Console) menuItems() []menuItem {
	var out []menuItem
	for _, b := range c.cfg.Menu {
		if len(b.SubButton) == 0 {
			out = append(out, menuItem{Name: b.Name, Type: b.Type, URL: b.URL, Key: b.Key})
		}
		for _, sb := range b.SubButton {
			out = append(out, menuItem{Name: b.Name + " › " + sb.Name, Type: sb.Type, URL: sb.URL, Key: sb.Key})
		}
	}
	return out
}

// addBindings fills the bindings table (newest first) and the audit events of those bindings.
func (c *Console) addBindings(ctx context.Context, v *consoleView) {
	bs, err := c.cfg.Service.ListBindings(ctx, app.BindingFilter{})
	if err != nil {
		c.log.Error("demo: list bindings", "err", err)
		v.Error = "读取绑定记录失败:" + app.ErrorMessage(err)
		return
	}
	slices.Reverse(bs)
	if len(bs) > maxRows {
		bs = bs[:maxRows]
	}
	var events []*app.Event
	for _, b := range bs {
		v.Bindings = append(v.Bindings, bindingRow{ID: b.ID, Number: b.Number, UserID: b.UserID, Name: app.MaskName(b.Name),
			Mobile: app.MaskMobile(b.Mobile), Status: bindingStatusText[b.Status], Tone: string(b.Status), Updated: clock(b.UpdatedAt)})
		evs, err := c.cfg.Service.Events(ctx, b.ID)
		if err != nil {
			c.log.Error("demo: list events", "binding", b.ID, "err", err)
			continue
		}
		events = append(events, evs...)
	}
	slices.SortFunc(events, func(a, b *app.Event) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	for _, e := range events[:min(len(events), maxEvents)] {
		v.Events = append(v.Events, eventRow{Kind: e.Kind, Actor: e.Actor, Number: e.Number, Detail: e.Detail, At: clock(e.CreatedAt)})
	}
}

func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("15:04:05")
}

// handleSelect handles "POST /demo/select": remember the identity the person plays.
func (c *Console) handleSelect(w http.ResponseWriter, r *http.Request) {
	id, ok := c.identity(r.PostFormValue("number"))
	if !ok {
		c.consoleError(w, r, http.StatusBadRequest, "没有这个测试身份。")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: selectedCookie, Value: id.Number, Path: ConsolePath, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, ConsolePath+"?done=selected", http.StatusSeeOther)
}

// handleJoin handles "POST /demo/join": the member accepts the invitation in WeCom. The simulator
// then reports the change; the console waits briefly for that callback so the page shows its
// effect.
func (c *Console) handleJoin(w http.ResponseWriter, r *http.Request) {
	userID := r.PostFormValue("userid")
	if err := c.cfg.WeCom.Join(userID); err != nil {
		c.consoleError(w, r, http.StatusBadRequest, "无法加入:"+err.Error())
		return
	}
	done := "joined"
	if !c.WaitDelivered(userID, joinWait) {
		done = "join-slow"
	}
	http.Redirect(w, r, ConsolePath+"?done="+done+"&u="+url.QueryEscape(userID), http.StatusSeeOther)
}

// handleVerify handles "GET /demo/verify?userid=…": what WeCom does when a member joins with a
// WeChat whose mobile differs from the registered one: it opens the verification page with a
// single-use code.
func (c *Console) handleVerify(w http.ResponseWriter, r *http.Request) {
	userID := r.URL.Query().Get("userid")
	m, ok := c.cfg.WeCom.Member(userID)
	if !ok {
		c.consoleError(w, r, http.StatusNotFound, "企业微信中没有成员 "+userID+",请先完成注册绑定。")
		return
	}
	http.Redirect(w, r, c.base+"/verify?code="+url.QueryEscape(c.cfg.WeCom.IssueTfaCode(m.UserID)), http.StatusFound)
}

// replyView is the view of templates/reply.html.
type replyView struct {
	Title    string
	What     string // what was sent, e.g. 点击菜单「使用帮助」
	UserID   string
	Reply    *PassiveReply
	Error    string
	Envelope string // the encrypted envelope, shortened
}

// handleClick handles "POST /demo/click": a menu click of the selected member.
func (c *Console) handleClick(w http.ResponseWriter, r *http.Request) {
	key := r.PostFormValue("key")
	name := key
	for _, m := range c.menuItems() {
		if m.Key == key && m.Type == "click" {
			name = m.Name
		}
	}
	userID := c.memberOrVisitor(r)
	rep, err := c.Click(r.Context(), userID, key)
	c.renderReply(w, "点击菜单「"+name+"」", userID, rep, err)
}

// handleText handles "POST /demo/text": a text message from the selected member.
func (c *Console) handleText(w http.ResponseWriter, r *http.Request) {
	content := strings.TrimSpace(r.PostFormValue("content"))
	if content == "" || utf8.RuneCountInString(content) > maxTextLength {
		c.consoleError(w, r, http.StatusBadRequest, "请输入 1 到 200 个字的消息。")
		return
	}
	userID := c.memberOrVisitor(r)
	rep, err := c.Text(r.Context(), userID, content)
	c.renderReply(w, "发送消息「"+content+"」", userID, rep, err)
}

// memberOrVisitor is the userid the console's callbacks come from: the selected identity's, or
// a placeholder member when none is selected.
func (c *Console) memberOrVisitor(r *http.Request) string {
	if u := c.selectedUserID(r); u != "" {
		return u
	}
	return "demo_member"
}

func (c *Console) renderReply(w http.ResponseWriter, what, userID string, rep *PassiveReply, err error) {
	v := &replyView{Title: "被动回复", What: what, UserID: userID, Reply: rep}
	status := http.StatusOK
	if err != nil {
		v.Error = "回调投递失败:" + err.Error()
		status = http.StatusBadGateway
	} else if rep != nil && len(rep.Encrypted) > 0 {
		v.Envelope = rep.Encrypted
		if len(v.Envelope) > 240 {
			v.Envelope = v.Envelope[:240] + "…"
		}
	}
	c.render(w, status, "reply", v)
}

// authorizeView is the view of templates/authorize.html.
type authorizeView struct {
	Title       string
	RedirectURI string
	State       string
	Target      string // the path the member is going to
	Selected    string // the selected identity when it is not a member
	Members     []wecomtest.Member
	WebLogin    bool // the web login (QR) stand-in rather than OAuth
}

// handleAuthorize handles "GET /demo/oauth/connect/oauth2/authorize": it stands in for WeCom's
// OAuth2 page (snsapi_base, silent inside WeCom). With a selected identity that is a member it
// redirects at once with a code for that member, like WeCom; otherwise the person picks one.
func (c *Console) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, ok := c.checkAuthorize(w, q.Get("appid"), q.Get("redirect_uri"), q.Get("response_type"), q.Get("scope"))
	if !ok {
		return
	}
	state := q.Get("state")
	// The helpdesk console is for its operator, not for the identity picked on the console.
	if userID := c.selectedUserID(r); userID != "" && !strings.HasPrefix(redirect.Path, "/admin") {
		if m, ok := c.cfg.WeCom.Member(userID); ok {
			http.Redirect(w, r, withCode(redirect, c.cfg.WeCom.IssueOAuthCode(m.UserID), state), http.StatusFound)
			return
		}
	}
	v := c.pickView(r, redirect, state)
	if id, ok := c.selected(r); ok && !strings.HasPrefix(redirect.Path, "/admin") {
		v.Selected = id.Name + "(" + id.Number + ")"
	}
	c.render(w, http.StatusOK, "authorize", v)
}

// pickView is the member picker of the authorize and web login pages. The demo's helpdesk
// operator is offered, first, only on the way to the console (/admin): the member pages are
// the students' and staff's.
func (c *Console) pickView(_ *http.Request, redirect *url.URL, state string) *authorizeView {
	v := &authorizeView{Title: "企业微信网页授权(模拟)", RedirectURI: redirect.String(), State: state, Target: redirect.Path}
	console := strings.HasPrefix(redirect.Path, "/admin")
	for _, m := range c.cfg.WeCom.Members() {
		if c.cfg.Admin.UserID != "" && strings.EqualFold(m.UserID, c.cfg.Admin.UserID) {
			if console {
				v.Members = append([]wecomtest.Member{m}, v.Members...)
			}
			continue
		}
		v.Members = append(v.Members, m)
	}
	return v
}

// handleWebLogin handles "GET /demo/oauth/wwlogin/sso/login": it stands in for WeCom's web login
// (QR) for a self-built app: instead of scanning, the person picks the member.
func (c *Console) handleWebLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("login_type") != "CorpApp" || q.Get("agentid") != strconv.FormatInt(c.cfg.AgentID, 10) {
		c.renderNotice(w, http.StatusBadRequest, "参数错误", "login_type 须为 CorpApp,agentid 须为本应用的 AgentId。")
		return
	}
	redirect, ok := c.checkAuthorize(w, q.Get("appid"), q.Get("redirect_uri"), "code", "snsapi_base")
	if !ok {
		return
	}
	v := c.pickView(r, redirect, q.Get("state"))
	v.Title = "企业微信扫码登录(模拟)"
	v.WebLogin = true
	c.render(w, http.StatusOK, "authorize", v)
}

// handlePick handles "POST /demo/oauth/pick": the person chose a member (or a visitor who is not
// one) on the authorize page.
func (c *Console) handlePick(w http.ResponseWriter, r *http.Request) {
	redirect, ok := c.checkAuthorize(w, c.cfg.CorpID, r.PostFormValue("redirect_uri"), "code", "snsapi_base")
	if !ok {
		return
	}
	var code string
	if userID := r.PostFormValue("userid"); userID != "" {
		m, ok := c.cfg.WeCom.Member(userID)
		if !ok {
			c.renderNotice(w, http.StatusBadRequest, "成员不存在", "企业微信中没有成员 "+userID+"。")
			return
		}
		code = c.cfg.WeCom.IssueOAuthCode(m.UserID)
	} else {
		code = c.cfg.WeCom.IssueOAuthCodeForOpenID("demo-visitor-openid")
	}
	http.Redirect(w, r, withCode(redirect, code, r.PostFormValue("state")), http.StatusSeeOther)
}

// checkAuthorize checks the authorize parameters like WeCom: the corp id, and a redirect_uri on
// the trusted domain (here: the service's origin).
func (c *Console) checkAuthorize(w http.ResponseWriter, appID, redirectURI, responseType, scope string) (*url.URL, bool) {
	if appID != c.cfg.CorpID {
		c.renderNotice(w, http.StatusBadRequest, "参数错误", "appid 不是本企业的 CorpID。")
		return nil, false
	}
	u, err := url.Parse(redirectURI)
	if err != nil || !strings.HasPrefix(redirectURI, c.base+"/") || u.User != nil {
		c.renderNotice(w, http.StatusBadRequest, "redirect_uri参数错误", "跳转地址不在可信域名 "+c.base+" 下。")
		return nil, false
	}
	if responseType != "code" || scope != "snsapi_base" {
		c.renderNotice(w, http.StatusBadRequest, "参数错误", "response_type 须为 code,scope 须为 snsapi_base。")
		return nil, false
	}
	u.Fragment = ""
	return u, true
}

// withCode appends code and state to the redirect URI, as WeCom does.
func withCode(u *url.URL, code, state string) string {
	out := *u
	q := out.Query()
	q.Set("code", code)
	q.Set("state", state)
	out.RawQuery = q.Encode()
	return out.String()
}
