package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wecampus/wecampus/app"
)

// casService is the exact service URL CAS returns to (CONTRACT §3).
func (s *Server) casService() string { return s.cfg.BaseURL + "/bind/cas" }

// handleBindStart handles "GET /bind": choose the identity (在校师生).
func (s *Server) handleBindStart(c *gin.Context) {
	s.renderPage(c, http.StatusOK, "bind_start", &pageView{Title: "用户注册"})
}

// handleBindLogin handles "GET /bind/login": a fresh CAS login (renew=true), whatever the CAS
// single sign-on cookie says.
func (s *Server) handleBindLogin(c *gin.Context) {
	s.flows.clear(c)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, s.svc.CAS.LoginURL(s.casService()))
}

// handleBindSwitch handles "GET /bind/switch" (不是你? 切换账号): CAS logout, then a fresh login.
func (s *Server) handleBindSwitch(c *gin.Context) {
	s.flows.clear(c)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, s.svc.CAS.LogoutURL(s.cfg.BaseURL+"/bind/login"))
}

// handleBindCAS handles "GET /bind/cas?ticket=…": validate the ticket once, then show the mobile
// form, or the already-bound page.
func (s *Server) handleBindCAS(c *gin.Context) {
	p, err := s.svc.Authenticate(c.Request.Context(), c.Query("ticket"), s.casService())
	if err != nil {
		s.renderAppError(c, err, action{Label: "重新登录", URL: "/bind/login", Primary: true})
		return
	}
	if err := s.flows.save(c, &flow{Kind: "bind", Person: p}); err != nil {
		s.renderAppError(c, err)
		return
	}
	if b, err := s.svc.LiveBindingOf(c.Request.Context(), p.Number); err == nil {
		s.renderAlreadyBound(c, b)
		return
	} else if app.ErrorCode(err) != app.ENOTFOUND {
		s.renderAppError(c, err)
		return
	}
	s.renderPage(c, http.StatusOK, "bind_mobile", &pageView{Title: "绑定手机号", Person: p})
}

// handleBindMobile handles "POST /bind/mobile": create or adopt the member and store the binding.
func (s *Server) handleBindMobile(c *gin.Context) {
	f, err := s.flows.load(c, "bind")
	if err != nil || f.Person == nil {
		s.flowExpired(c)
		return
	}
	raw := c.PostForm("mobile")
	res, err := s.svc.Bind(c.Request.Context(), f.Person, raw)
	switch {
	case app.ErrorCode(err) == app.EINVALID:
		s.renderPage(c, http.StatusBadRequest, "bind_mobile", &pageView{Title: "绑定手机号", Person: f.Person, Mobile: raw, Error: app.ErrorMessage(err)})
	case err != nil:
		s.renderAppError(c, err, action{Label: "返回重新填写", URL: "/bind/login"})
	case res.AlreadyBound != nil:
		s.renderAlreadyBound(c, res.AlreadyBound)
	case res.Conflict != nil:
		s.renderConflict(c, f, raw, res.Conflict)
	default:
		s.renderFollow(c, res.Binding, "注册成功")
	}
}

func (s *Server) renderConflict(c *gin.Context, f *flow, raw string, cf *app.Conflict) {
	v := &pageView{Title: "手机号已被使用", Paragraphs: []string{cf.Message},
		Actions: []action{{Label: "换一个手机号", URL: "/bind/login"}}}
	if cf.MigrateFrom != 0 {
		mobile, _ := app.NormalizeMobile(raw)
		f.Mobile, f.MigrateFrom, f.CodeSent = mobile, cf.MigrateFrom, false
		if err := s.flows.save(c, f); err != nil {
			s.renderAppError(c, err)
			return
		}
		v.Title, v.MigrateFrom, v.Mobile = "可以换绑", cf.MigrateFrom, app.MaskMobile(mobile)
	}
	s.renderPage(c, http.StatusConflict, "conflict", v)
}

// handleMigrateCode handles "POST /bind/migrate/code": the 换绑 SMS code to the held mobile.
func (s *Server) handleMigrateCode(c *gin.Context) {
	f, err := s.flows.load(c, "bind")
	if err != nil || f.Person == nil || f.MigrateFrom == 0 {
		s.flowExpired(c)
		return
	}
	err = s.svc.SendMigrateCode(c.Request.Context(), f.Person, f.MigrateFrom, f.Mobile, c.ClientIP())
	if err != nil && !(app.ErrorCode(err) == app.ETOOMANY && f.CodeSent) {
		s.renderAppError(c, err, action{Label: "重新开始", URL: "/bind"})
		return
	}
	f.CodeSent = true
	if serr := s.flows.save(c, f); serr != nil {
		s.renderAppError(c, serr)
		return
	}
	s.renderPage(c, http.StatusOK, "code", s.migrateCodeView(f, app.ErrorMessage(err)))
}

func (s *Server) migrateCodeView(f *flow, errMsg string) *pageView {
	return &pageView{Title: "换绑验证", Paragraphs: []string{"验证码已发送到 " + app.MaskMobile(f.Mobile) + ",5 分钟内有效。验证通过后,原学号/工号的企业微信账号将被解除,并绑定新学号/工号 " + f.Person.Number + "。"},
		Error: errMsg, Mobile: app.MaskMobile(f.Mobile), Action: "/bind/migrate", Submit: "确认换绑", ResendAction: "/bind/migrate/code"}
}

// handleMigrate handles "POST /bind/migrate": check the code, release the old member, bind the
// new number.
func (s *Server) handleMigrate(c *gin.Context) {
	f, err := s.flows.load(c, "bind")
	if err != nil || f.Person == nil || f.MigrateFrom == 0 {
		s.flowExpired(c)
		return
	}
	res, err := s.svc.Migrate(c.Request.Context(), f.Person, f.MigrateFrom, f.Mobile, c.PostForm("sms_code"))
	switch code := app.ErrorCode(err); {
	case code == app.EINVALID || code == app.EEXPIRED:
		s.renderPage(c, http.StatusBadRequest, "code", s.migrateCodeView(f, app.ErrorMessage(err)))
	case code == app.EUNAVAILABLE:
		s.renderPage(c, http.StatusServiceUnavailable, "code", &pageView{Title: "换绑未完成",
			Paragraphs: []string{app.ErrorMessage(err), "已验证的操作会被保留,请稍后点击“重试”继续。"},
			Mobile:     app.MaskMobile(f.Mobile), Action: "/bind/migrate", Submit: "重试"})
	case err != nil:
		s.renderAppError(c, err, action{Label: "重新开始", URL: "/bind"})
	case res.AlreadyBound != nil:
		s.renderAlreadyBound(c, res.AlreadyBound)
	case res.Conflict != nil:
		s.renderConflict(c, f, f.Mobile, res.Conflict)
	default:
		s.renderFollow(c, res.Binding, "换绑成功")
	}
}

func (s *Server) renderAlreadyBound(c *gin.Context, b *app.Binding) {
	v := &pageView{Title: "该学号/工号已绑定", Icon: "info", Binding: newBindingView(b)}
	if b.Status == app.StatusPending {
		v.Paragraphs = []string{"你已完成注册,但还没有加入企业微信。请按下方指引关注加入;如果注册时填写的不是当前微信绑定的手机号,关注后请进入“微校园助手”完成身份验证。"}
		v.QRCodeURL = s.svc.JoinQRCode(c.Request.Context())
		s.renderPage(c, http.StatusOK, "follow", v)
		return
	}
	v.Paragraphs = []string{"你的学号/工号已绑定企业微信,可以直接在微信或企业微信中进入“微校园助手”。如需更换学号/工号或手机号,请先解除绑定。"}
	v.Actions = []action{{Label: "解除绑定", URL: "/unbind"}}
	s.renderMessage(c, http.StatusOK, v)
}

func (s *Server) renderFollow(c *gin.Context, b *app.Binding, title string) {
	s.renderPage(c, http.StatusOK, "follow", &pageView{Title: title, Binding: newBindingView(b),
		Paragraphs: []string{"企业微信账号已创建,邀请已发送到手机号 " + app.MaskMobile(b.Mobile) + "。请立即关注加入。"},
		QRCodeURL:  s.svc.JoinQRCode(c.Request.Context())})
}
