package handlers

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wecampus/wecampus/app"
)

// adminRoutes adds the helpdesk console (CONTRACT §9): GET /admin signs in (WeCom OAuth, or the
// web login QR on a PC) and shows the dashboard; every other route needs a console session
// (adminAuth), and a POST also the operator role and a CSRF token. The browser guard of the
// member pages comes first (headers, duplicated cookies, Origin, form body).
func (s *Server) adminRoutes(e *gin.Engine) {
	protect := s.csrfMiddleware()
	e.GET("/admin", s.memberGuard, s.limitOutbound, protect, s.handleAdmin)
	a := e.Group("/admin", s.memberGuard, s.adminAuth, protect)
	a.GET("/search", s.handleAdminSearch)
	a.GET("/people/:number", s.handleAdminPerson)
	a.GET("/export.csv", s.adminOperator, s.handleAdminExport)
	a.POST("/logout", s.handleAdminLogout)
	a.POST("/people/:number/unbind", s.adminOperator, s.handleAdminUnbind)
	a.POST("/people/:number/invite", s.adminOperator, s.handleAdminInvite)
	a.POST("/people/:number/repair", s.adminOperator, s.handleAdminRepair)
	// A GET of a POST-only route (a reload, a pasted link) goes back to the page it belongs to.
	for _, p := range []string{"/logout", "/people/:number/unbind", "/people/:number/invite", "/people/:number/repair"} {
		a.GET(p, s.handleAdminPostOnly)
	}
}

// handleAdmin handles "GET /admin": the return from WeCom (code and state), else the dashboard
// for a console user, else the sign-in.
func (s *Server) handleAdmin(c *gin.Context) {
	if c.Query("code") != "" || c.Query("state") != "" {
		s.adminSignInReturn(c)
		return
	}
	a, ok := s.adminOrSignIn(c)
	if !ok {
		return
	}
	d, err := s.svc.AdminDashboard(c.Request.Context())
	if err != nil {
		s.renderAdminError(c, a, err, "")
		return
	}
	s.renderAdmin(c, http.StatusOK, "admin_dashboard", &adminView{Title: "管理控制台", Admin: adminUserOf(a), Dash: dashViewOf(d, a)})
}

// searchView is the view of admin_search.html.
type searchView struct {
	Query  string
	Hits   []bindingRowView
	Capped bool
}

// handleAdminSearch handles "GET /admin/search?q=…".
func (s *Server) handleAdminSearch(c *gin.Context) {
	a := adminOf(c)
	res, err := s.svc.SearchBindings(c.Request.Context(), c.Query("q"))
	if err != nil {
		s.renderAdminError(c, a, err, "")
		return
	}
	s.renderAdmin(c, http.StatusOK, "admin_search", &adminView{Title: "搜索", Admin: adminUserOf(a), Query: res.Query,
		Search: &searchView{Query: res.Query, Hits: bindingRowsOf(res.Bindings), Capped: res.Capped}})
}

// handleAdminPerson handles "GET /admin/people/{number}": the person page (audited).
func (s *Server) handleAdminPerson(c *gin.Context) {
	a := adminOf(c)
	number := c.Param("number")
	p, err := s.svc.ViewPerson(c.Request.Context(), a, number)
	if err != nil {
		s.renderAdminError(c, a, err, "")
		return
	}
	s.renderAdmin(c, http.StatusOK, "admin_person", &adminView{Title: "学号/工号 " + number, Admin: adminUserOf(a),
		Flash: s.takeFlash(c), Person: personViewOf(p, a)})
}

// handleAdminUnbind handles "POST /admin/people/{number}/unbind": like `binding unbind`.
func (s *Server) handleAdminUnbind(c *gin.Context) {
	a, number := adminOf(c), c.Param("number")
	b, err := s.svc.UnbindAsAdmin(c.Request.Context(), a, number, c.PostForm("reason"))
	if err != nil {
		s.renderAdminError(c, a, err, number)
		return
	}
	s.flashTo(c, number, "已解除绑定：企业微信成员 "+b.UserID+" 已删除，绑定已标记为已解除。")
}

// handleAdminInvite handles "POST /admin/people/{number}/invite": the WeCom invitation again.
func (s *Server) handleAdminInvite(c *gin.Context) {
	a, number := adminOf(c), c.Param("number")
	b, err := s.svc.InviteAsAdmin(c.Request.Context(), a, number, c.PostForm("reason"))
	if err != nil {
		s.renderAdminError(c, a, err, number)
		return
	}
	s.flashTo(c, number, "已通过企业微信重新向 "+b.UserID+" 发送加入邀请。")
}

// handleAdminRepair handles "POST /admin/people/{number}/repair": the open intent settled now.
func (s *Server) handleAdminRepair(c *gin.Context) {
	a, number := adminOf(c), c.Param("number")
	outcome, err := s.svc.RepairAsAdmin(c.Request.Context(), a, number, c.PostForm("reason"))
	if err != nil {
		s.renderAdminError(c, a, err, number)
		return
	}
	s.flashTo(c, number, "已修复："+outcome)
}

// handleAdminExport handles "GET /admin/export.csv?status=S": the CSV of `binding list --csv`.
func (s *Server) handleAdminExport(c *gin.Context) {
	a := adminOf(c)
	status := app.Status(c.Query("status"))
	list, err := s.svc.ExportBindings(c.Request.Context(), a, status)
	if err != nil {
		s.renderAdminError(c, a, err, "")
		return
	}
	var buf bytes.Buffer
	if err := app.WriteBindingsCSV(&buf, list); err != nil {
		s.renderAdminError(c, a, err, "")
		return
	}
	name := "all"
	if status != "" {
		name = string(status)
	}
	name = "wecampus-bindings-" + name + "-" + time.Now().In(app.ConsoleZone()).Format("20060102") + ".csv"
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Data(http.StatusOK, "text/csv; charset=utf-8", buf.Bytes())
}

// handleAdminPostOnly answers a GET of a POST-only console route with the page it belongs to.
func (s *Server) handleAdminPostOnly(c *gin.Context) {
	to := "/admin"
	if n := c.Param("number"); n != "" {
		to = "/admin/people/" + url.PathEscape(n)
	}
	c.Redirect(http.StatusSeeOther, to)
}

// flashTo answers an action with 303 to the person page, which shows msg once.
func (s *Server) flashTo(c *gin.Context, number, msg string) {
	s.setFlash(c, msg)
	c.Redirect(http.StatusSeeOther, "/admin/people/"+url.PathEscape(number))
}

// statView is one count of the dashboard.
type statView struct {
	Label string
	N     int
}

// dashView is the view of admin_dashboard.html.
type dashView struct {
	Stats      []statView
	Total      int
	Chart      chartView
	Stale      []bindingRowView
	StaleTotal int
	StaleMore  bool
	Intents    []*intentView
	Outbox     app.OutboxBacklog
	Exports    []action // operators only
}

func dashViewOf(d *app.Dashboard, a *app.Admin) *dashView {
	v := &dashView{Total: d.Total, Chart: chartOf(d.Days), Stale: bindingRowsOf(d.StalePending),
		StaleTotal: d.StalePendingTotal, StaleMore: d.StalePendingTotal > len(d.StalePending), Outbox: d.Outbox}
	for _, st := range []app.Status{app.StatusPending, app.StatusActive, app.StatusUnbound, app.StatusRebound} {
		v.Stats = append(v.Stats, statView{Label: statusText[st], N: d.Counts[st]})
	}
	for _, in := range d.OpenIntents {
		v.Intents = append(v.Intents, intentViewOf(in))
	}
	if a.CanAct() {
		v.Exports = []action{{Label: "全部", URL: "/admin/export.csv"}}
		for _, st := range []app.Status{app.StatusPending, app.StatusActive, app.StatusUnbound, app.StatusRebound} {
			v.Exports = append(v.Exports, action{Label: statusText[st], URL: "/admin/export.csv?status=" + string(st)})
		}
	}
	return v
}

// chartView is the binds-per-day bar chart, drawn server-side as inline SVG.
type chartView struct {
	Width, Height, LabelY int
	Bars                  []barView
	Ticks                 []tickView
	Max, Total            int
	Summary               string // the chart in words, for screen readers
}

type barView struct {
	X, Y, W, H  int
	Label, Date string
	Count       int
}

type tickView struct {
	X     int
	Label string
}

// Chart geometry in SVG units; the SVG scales to the page's width.
const (
	chartSlot   = 20  // width per day
	chartPlot   = 120 // height of the tallest bar
	chartTop    = 18  // room for the "max" label
	chartLabels = 18  // room for the day labels
	chartPad    = 16  // left and right, so that the first and last day labels fit
)

func chartOf(days []app.DayCount) chartView {
	v := chartView{Width: chartSlot*len(days) + 2*chartPad, Height: chartTop + chartPlot + chartLabels}
	v.LabelY = v.Height - 4
	for _, d := range days {
		v.Max = max(v.Max, d.Count)
		v.Total += d.Count
	}
	for i, d := range days {
		h := 0
		if v.Max > 0 {
			h = d.Count * chartPlot / v.Max
		}
		if d.Count > 0 && h < 2 {
			h = 2 // a day with one bind among thousands is still visible
		}
		b := barView{X: chartPad + i*chartSlot + 3, Y: chartTop + chartPlot - h, W: chartSlot - 6, H: h,
			Label: d.Day.Format("01-02"), Date: d.Day.Format("2006-01-02"), Count: d.Count}
		v.Bars = append(v.Bars, b)
		if (len(days)-1-i)%7 == 0 {
			v.Ticks = append(v.Ticks, tickView{X: chartPad + i*chartSlot + chartSlot/2, Label: b.Label})
		}
	}
	v.Summary = "近 " + strconv.Itoa(len(days)) + " 天每日新增绑定柱状图：合计 " + strconv.Itoa(v.Total) +
		"，单日最多 " + strconv.Itoa(v.Max) + "。每日数据见下方表格。"
	return v
}
