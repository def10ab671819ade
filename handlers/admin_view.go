package handlers

import (
	"bytes"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wecampus/wecampus/app"
)

// adminPageNames are the templates of the console, each parsed with the shared layout and
// admin_base.html.
var adminPageNames = []string{"admin_login", "admin_message", "admin_dashboard", "admin_search", "admin_person"}

func parseAdminPages() (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(adminPageNames))
	for _, name := range adminPageNames {
		t, err := template.New(name).ParseFS(templateFS, "templates/layout.html", "templates/admin_base.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("handlers: parse template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// adminView is the view of every console page; each page uses the fields it needs.
type adminView struct {
	Title       string
	RequestID   string
	HelpContact *helpContact // server.help_contact; nil when not set
	CSRF        string
	Admin       *adminUser // nil on the sign-in and signed-out pages
	Query       string     // the search box
	Flash       string

	// admin_message
	Icon       string
	Paragraphs []string
	Actions    []action

	// admin_login
	QRLoginURL, OAuthURL string

	Dash   *dashView
	Search *searchView
	Person *personView
}

type adminUser struct {
	UserID, RoleText string
}

var roleText = map[app.AdminRole]string{app.RoleOperator: "操作员", app.RoleViewer: "只读"}

func adminUserOf(a *app.Admin) *adminUser {
	if a == nil {
		return nil
	}
	return &adminUser{UserID: a.UserID, RoleText: roleText[a.Role]}
}

// renderAdmin renders a console page into a buffer, then writes it with the headers of a page
// that shows personal data.
func (s *Server) renderAdmin(c *gin.Context, status int, name string, v *adminView) {
	v.RequestID = RequestID(c.Request.Context())
	v.HelpContact = s.help
	if v.CSRF == "" {
		v.CSRF = csrfToken(c)
	}
	t := s.adminPages[name]
	var buf bytes.Buffer
	if t == nil {
		s.log.Error("unknown admin template", "page", name, "request_id", v.RequestID)
		s.renderError(c, http.StatusInternalServerError, "系统内部错误", "请稍后再试。")
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		s.log.Error("render admin page", "page", name, "err", err, "request_id", v.RequestID)
		s.renderError(c, http.StatusInternalServerError, "系统内部错误", "请稍后再试。")
		return
	}
	s.guard.pageHeaders(c.Writer.Header(), "")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// renderAdminMessage renders a console message page (refusal, sign-out).
func (s *Server) renderAdminMessage(c *gin.Context, status int, a *app.Admin, v *adminView) {
	if v.Icon == "" {
		v.Icon = "warn"
	}
	v.Admin = adminUserOf(a)
	if len(v.Actions) == 0 {
		v.Actions = []action{{Label: "返回管理控制台", URL: "/admin", Primary: true}}
	}
	s.renderAdmin(c, status, "admin_message", v)
}

var adminErrorTitles = map[string]string{
	app.EINVALID:      "请补充信息",
	app.EUNAUTHORIZED: "登录失败",
	app.EEXPIRED:      "登录已失效",
	app.EFORBIDDEN:    "无权访问",
	app.ENOTFOUND:     "未找到",
	app.ECONFLICT:     "无法执行",
	app.ETOOMANY:      "操作过于频繁",
	app.EUNAVAILABLE:  "系统繁忙",
	app.EINTERNAL:     "系统内部错误",
}

// renderAdminError renders err as a console page with its status; number, when not "", adds a
// way back to that person's page.
func (s *Server) renderAdminError(c *gin.Context, a *app.Admin, err error, number string) {
	code := app.ErrorCode(err)
	rid := RequestID(c.Request.Context())
	switch code {
	case app.EINTERNAL:
		s.log.Error("admin request failed", "path", c.FullPath(), "err", err, "request_id", rid)
	case app.EUNAVAILABLE:
		s.log.Warn("admin request: dependency unavailable", "path", c.FullPath(), "err", err, "request_id", rid)
	}
	v := &adminView{Title: adminErrorTitles[code], Paragraphs: []string{app.ErrorMessage(err)}}
	if code == app.EUNAVAILABLE || code == app.EINTERNAL {
		v.Icon = "wait"
	}
	if number != "" && a != nil {
		v.Actions = []action{{Label: "返回 " + number + " 的详情", URL: "/admin/people/" + number, Primary: true}, {Label: "返回概览", URL: "/admin"}}
	} else if a == nil {
		v.Actions = []action{{Label: "重新登录", URL: "/admin", Primary: true}}
	}
	s.renderAdminMessage(c, appStatus(err), a, v)
}

// consoleTime formats a time for the console (China Standard Time).
func consoleTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(app.ConsoleZone()).Format("2006-01-02 15:04")
}

// bindingRowView is one binding in a console list, personal data masked.
type bindingRowView struct {
	ID                         int64
	Number, UserID, Name, Type string
	Mobile, StatusText, Reason string
	Created, Updated           string
	Live                       bool
}

func bindingRowOf(b *app.Binding) bindingRowView {
	return bindingRowView{ID: b.ID, Number: b.Number, UserID: b.UserID, Name: app.MaskName(b.Name), Type: b.Type,
		Mobile: app.MaskMobile(b.Mobile), StatusText: statusText[b.Status], Reason: b.Reason,
		Created: consoleTime(b.CreatedAt), Updated: consoleTime(b.UpdatedAt), Live: b.Status.Live()}
}

func bindingRowsOf(bs []*app.Binding) []bindingRowView {
	out := make([]bindingRowView, len(bs))
	for i, b := range bs {
		out[i] = bindingRowOf(b)
	}
	return out
}

// intentView is an open intent, the mobile masked.
type intentView struct {
	Number, Op, UserID, Mobile, Created string
}

var intentOpText = map[app.IntentOp]string{app.OpBind: "注册绑定", app.OpRebind: "换绑"}

func intentViewOf(in *app.Intent) *intentView {
	op := intentOpText[in.Op]
	if op == "" {
		op = string(in.Op)
	}
	return &intentView{Number: in.Number, Op: op, UserID: in.UserID, Mobile: app.MaskMobile(in.Mobile), Created: consoleTime(in.CreatedAt)}
}

// maskIP keeps the network part of an address: 10.1.*.* or 2001:db8:*.
func maskIP(ip string) string {
	p := net.ParseIP(ip)
	switch {
	case ip == "":
		return ""
	case p == nil:
		return "*"
	case p.To4() != nil:
		v4 := p.To4()
		return fmt.Sprintf("%d.%d.*.*", v4[0], v4[1])
	}
	parts := strings.SplitN(p.String(), ":", 3)
	return parts[0] + ":" + parts[1] + ":*"
}
