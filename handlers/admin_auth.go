package handlers

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/securecookie"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/internal/keys"
)

// Console cookies, apart from the member flows': all HttpOnly, SameSite=Lax (a Strict cookie set
// on the redirect back from WeCom would not be sent on the 303 that follows), Secure on https.
const (
	// adminCookieName holds the session token; the session itself is server-side (≤ 8 h,
	// revoked on sign-out), the database keeps only the token's hash.
	adminCookieName = "wecampus_admin"
	// adminLoginCookieName holds the OAuth state of a sign-in in progress (sealed, ≤ 10 min),
	// binding the state to this browser.
	adminLoginCookieName = "wecampus_admin_login"
	// adminFlashCookieName carries the outcome of an action to the page the 303 leads to.
	adminFlashCookieName = "wecampus_admin_flash"
)

// adminCookieNames are the wire names of the console cookies: with the __Host- prefix when
// base_url is https (browserGuard.cookieName); each may come at most once in a request.
type adminCookieNames struct{ session, login, flash string }

// adminCtxKey is where adminAuth leaves the console user in the gin context.
const adminCtxKey = "wecampus.admin"

// adminLogin is the sealed content of adminLoginCookieName.
type adminLogin struct {
	State   string `json:"s"`
	Expires int64  `json:"e"` // unix seconds
}

// newAdminCookies seals the console's login and flash cookies with keys of their own.
func newAdminCookies(secret string) *securecookie.SecureCookie {
	sc := securecookie.New(keys.Derive(secret, keys.AdminHash), keys.Derive(secret, keys.AdminBlock))
	sc.MaxAge(int(app.AdminLoginTTL / time.Second))
	sc.SetSerializer(securecookie.JSONEncoder{})
	return sc
}

// setAdminCookie writes (maxAge > 0) or clears (maxAge < 0) a console cookie; name is its wire
// name (adminNames).
func (s *Server) setAdminCookie(c *gin.Context, name, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.guard.https, SameSite: http.SameSiteLaxMode})
}

func (s *Server) adminToken(c *gin.Context) string {
	ck, err := c.Request.Cookie(s.adminNames.session)
	if err != nil {
		return ""
	}
	return ck.Value
}

// adminOf returns the console user adminAuth found.
func adminOf(c *gin.Context) *app.Admin {
	a, _ := c.Get(adminCtxKey)
	admin, _ := a.(*app.Admin)
	return admin
}

// adminAuth guards every /admin/... route: without a session a GET goes to the sign-in (302)
// and a POST gets 403; a userid no longer listed gets 403; a viewer's POST (but sign-out) 403.
func (s *Server) adminAuth(c *gin.Context) {
	a, ok := s.adminOrSignIn(c)
	if !ok {
		c.Abort()
		return
	}
	c.Set(adminCtxKey, a)
	c.Next()
}

// adminOperator refuses a viewer (403).
func (s *Server) adminOperator(c *gin.Context) {
	if a := adminOf(c); !a.CanAct() {
		c.Abort()
		s.renderAdminMessage(c, http.StatusForbidden, a, &adminView{Title: "无权操作",
			Paragraphs: []string{"你是只读账号（admin.viewers）：可以查询和查看，不能执行操作或导出数据。"}})
		return
	}
	c.Next()
}

// adminOrSignIn returns the console user of the request's session, or answers: the sign-in for a
// GET without a session, 403 otherwise.
func (s *Server) adminOrSignIn(c *gin.Context) (*app.Admin, bool) {
	a, err := s.svc.AdminFromSession(c.Request.Context(), s.adminToken(c))
	switch app.ErrorCode(err) {
	case "":
		return a, true
	case app.EUNAUTHORIZED:
		if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead {
			s.startAdminSignIn(c)
			return nil, false
		}
		s.renderAdminMessage(c, http.StatusForbidden, nil, &adminView{Title: "请先登录",
			Paragraphs: []string{"登录已过期或尚未登录管理控制台，本次操作未执行。"},
			Actions:    []action{{Label: "登录管理控制台", URL: "/admin", Primary: true}}})
	case app.EFORBIDDEN:
		s.renderAdminMessage(c, http.StatusForbidden, nil, &adminView{Title: "无权访问",
			Paragraphs: []string{app.ErrorMessage(err)}, Actions: []action{{Label: "重新登录", URL: "/admin"}}})
	default:
		s.renderAdminError(c, nil, err, "")
	}
	return nil, false
}

// startAdminSignIn begins a sign-in with a fresh state bound to this browser: inside WeCom (or
// any client that is not a desktop browser) a 302 to WeCom OAuth (CONTRACT §9); in a desktop
// browser a page that also offers WeCom's web login QR, since OAuth only works inside WeCom.
func (s *Server) startAdminSignIn(c *gin.Context) {
	st := newState()
	v, err := s.adminCookies.Encode(adminLoginCookieName, adminLogin{State: st, Expires: time.Now().Add(app.AdminLoginTTL).Unix()})
	if err != nil {
		s.renderAdminError(c, nil, err, "")
		return
	}
	s.setAdminCookie(c, s.adminNames.login, v, int(app.AdminLoginTTL/time.Second))
	back := s.cfg.BaseURL + "/admin"
	oauth := s.authURL(back, st)
	if s.webLoginURL != nil && desktopBrowser(c.Request.UserAgent()) {
		s.renderAdmin(c, http.StatusOK, "admin_login", &adminView{Title: "登录管理控制台",
			QRLoginURL: s.webLoginURL(back, st), OAuthURL: oauth})
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, oauth)
}

// desktopBrowser reports whether ua is a browser on a PC outside WeCom (whose client says
// "wxwork"): there the web login QR is the way in.
func desktopBrowser(ua string) bool {
	if !strings.HasPrefix(ua, "Mozilla/") || strings.Contains(ua, "wxwork") {
		return false
	}
	for _, m := range []string{"Mobile", "Android", "iPhone", "iPad"} {
		if strings.Contains(ua, m) {
			return false
		}
	}
	return true
}

// adminSignInReturn handles the return from WeCom (GET /admin?code&state): the state must be the
// one this browser was given, and is spent; the code gives the member, who must be listed. The
// session cookie is set and the browser sent on to the dashboard (303).
func (s *Server) adminSignInReturn(c *gin.Context) {
	var l adminLogin
	ck, err := c.Request.Cookie(s.adminNames.login)
	ok := err == nil && s.adminCookies.Decode(adminLoginCookieName, ck.Value, &l) == nil &&
		time.Now().Unix() <= l.Expires && stateMatches(l.State, c.Query("state"))
	s.setAdminCookie(c, s.adminNames.login, "", -1) // single use, whatever happens next
	if !ok {
		s.renderAdminMessage(c, http.StatusForbidden, nil, &adminView{Title: "登录链接已失效",
			Paragraphs: []string{"该登录链接已使用、已过期或不是从本浏览器发起的。"},
			Actions:    []action{{Label: "重新登录", URL: "/admin", Primary: true}}})
		return
	}
	token, a, err := s.svc.AdminSignIn(c.Request.Context(), c.Query("code"), l.State)
	if err != nil {
		s.renderAdminError(c, nil, err, "")
		return
	}
	if old := s.adminToken(c); old != "" {
		if err := s.svc.AdminSignOut(c.Request.Context(), old); err != nil {
			s.log.Warn("revoke replaced console session", "err", err, "request_id", RequestID(c.Request.Context()))
		}
	}
	s.setAdminCookie(c, s.adminNames.session, token, int(time.Until(a.Expires)/time.Second))
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, "/admin")
}

// handleAdminLogout handles "POST /admin/logout": the session is revoked server-side.
func (s *Server) handleAdminLogout(c *gin.Context) {
	if err := s.svc.AdminSignOut(c.Request.Context(), s.adminToken(c)); err != nil {
		s.renderAdminError(c, adminOf(c), err, "")
		return
	}
	s.setAdminCookie(c, s.adminNames.session, "", -1)
	s.renderAdminMessage(c, http.StatusOK, nil, &adminView{Title: "已退出管理控制台", Icon: "success",
		Paragraphs: []string{"本次登录已注销；在其他标签页中打开的控制台页面也已失效。"},
		Actions:    []action{{Label: "重新登录", URL: "/admin", Primary: true}}})
}

// setFlash keeps msg for the next console page (one minute at most).
func (s *Server) setFlash(c *gin.Context, msg string) {
	v, err := s.adminCookies.Encode(adminFlashCookieName, msg)
	if err != nil {
		s.log.Warn("seal flash", "err", err)
		return
	}
	s.setAdminCookie(c, s.adminNames.flash, v, 60)
}

// takeFlash returns the message setFlash kept, once.
func (s *Server) takeFlash(c *gin.Context) string {
	ck, err := c.Request.Cookie(s.adminNames.flash)
	if err != nil {
		return ""
	}
	s.setAdminCookie(c, s.adminNames.flash, "", -1)
	var msg string
	if s.adminCookies.Decode(adminFlashCookieName, ck.Value, &msg) != nil {
		return ""
	}
	return msg
}
