package handlers

import (
	"errors"
	"net/http"
	"strings"
	"time"

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
// single sign-on cookie says. The pre-login flow it starts is what lets /bind/cas send the ticket
// to CAS; the service URL carries nothing of it (CONTRACT §3 fixes it).
func (s *Server) handleBindLogin(c *gin.Context) {
	if err := s.flows.save(c, &flow{Kind: flowLogin, Expires: time.Now().Add(loginTTL).Unix()}); err != nil {
		s.renderAppError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, s.svc.LoginURL(s.casService()))
}

// handleBindSwitch handles "GET /bind/switch" (不是你? 切换账号): CAS logout, then a fresh login.
func (s *Server) handleBindSwitch(c *gin.Context) {
	s.flows.clear(c)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, s.svc.LogoutURL(s.cfg.BaseURL+"/bind/login"))
}

// handleBindCAS handles "GET /bind/cas?ticket=…": validate the ticket once, then show the mobile
// form, or the already-bound page. Only a browser that started the login at /bind/login gets its
// ticket validated (login CSRF: a ticket someone else obtained, sent in a link, is refused
// without asking CAS); the pre-login flow is used up by this request whatever CAS answers.
func (s *Server) handleBindCAS(c *gin.Context) {
	if _, err := s.flows.load(c, flowLogin); err != nil {
		s.renderMessage(c, http.StatusUnauthorized, &pageView{Title: "请重新登录",
			Paragraphs: []string{"登录已过期，或登录不是从本页面发起的。为保护你的账号安全，请在本页面重新登录统一身份认证。"},
			Actions:    []action{{Label: "重新登录", URL: "/bind/login", Primary: true}}})
		return
	}
	login, err := s.svc.Authenticate(c.Request.Context(), c.Query("ticket"), s.casService())
	if err != nil {
		s.flows.clear(c)
	}
	switch app.ErrorCode(err) {
	case "":
	case app.EFORBIDDEN:
		// The CAS account is not admitted: logging in again as the same person cannot help.
		s.renderAppError(c, err, action{Label: "使用其他账号登录", URL: "/bind/switch"})
		return
	default:
		s.renderAppError(c, err, action{Label: "重新登录", URL: "/bind/login", Primary: true})
		return
	}
	if err := s.flows.save(c, &flow{Kind: flowBind, Person: login.Person}); err != nil {
		s.renderAppError(c, err)
		return
	}
	if login.Bound != nil {
		s.renderAlreadyBound(c, login.Bound)
		return
	}
	s.renderPage(c, http.StatusOK, "bind_mobile", &pageView{Title: "绑定手机号", Person: login.Person})
}

// handleBindMobile handles "POST /bind/mobile": create or adopt the member and store the binding.
func (s *Server) handleBindMobile(c *gin.Context) {
	f, err := s.flows.load(c, flowBind)
	if err != nil || f.Person == nil {
		s.flowExpired(c)
		return
	}
	raw := c.PostForm("mobile")
	res, err := s.svc.Bind(c.Request.Context(), f.ref(), f.Person, raw)
	switch code := app.ErrorCode(err); {
	case errors.Is(err, app.ErrFlowFinished):
		s.flowFinished(c, err)
	case code == app.EINVALID:
		s.renderPage(c, http.StatusBadRequest, "bind_mobile", &pageView{Title: "绑定手机号", Person: f.Person, Mobile: raw, Error: app.ErrorMessage(err)})
	case code == app.EUNAVAILABLE:
		// Nothing is half-done: the same form, filled in, submits again once WeCom recovers.
		s.log.Warn("bind: dependency unavailable", "err", err, "request_id", RequestID(c.Request.Context()))
		s.renderPage(c, http.StatusServiceUnavailable, "bind_mobile", &pageView{Title: "系统繁忙", Person: f.Person, Mobile: raw,
			Error: app.ErrorMessage(err) + "你填写的信息已保留，稍后点击“下一步”重试即可。"})
	default:
		s.renderBindResult(c, f, res, err, "注册成功")
	}
}

// renderBindResult renders the outcome of Bind or Rebind that the step did not handle itself: a
// refusal, a failure, the already-bound page, a mobile conflict, or the follow page with title
// and the extra paragraphs.
func (s *Server) renderBindResult(c *gin.Context, f *flow, res *app.BindResult, err error, title string, extra ...string) {
	switch {
	case app.ErrorCode(err) == app.ECONFLICT:
		s.renderBindRefusal(c, f, http.StatusConflict, err)
	case err != nil:
		s.renderAppError(c, err, action{Label: "重新开始", URL: "/bind"})
	case res.AlreadyBound != nil:
		s.renderAlreadyBound(c, res)
	case res.Conflict != nil:
		s.renderConflict(c, f, res.Conflict)
	default:
		s.renderFollow(c, res, title, extra...)
	}
}

// renderBindRefusal answers a refused bind step with its message and the mobile form, so that the
// member can go on with another mobile without logging in again.
func (s *Server) renderBindRefusal(c *gin.Context, f *flow, status int, err error) {
	s.renderPage(c, status, "conflict", &pageView{Title: errorTitles[app.ErrorCode(err)],
		Paragraphs: []string{app.ErrorMessage(err)}, Person: f.Person})
}

func (s *Server) renderConflict(c *gin.Context, f *flow, cf *app.Conflict) {
	v := &pageView{Title: "手机号已被使用", Paragraphs: []string{cf.Message}, Person: f.Person}
	if cf.RebindFrom != 0 {
		f.Mobile, f.RebindFrom, f.CodeSent = cf.Mobile, cf.RebindFrom, false
		if err := s.flows.save(c, f); err != nil {
			s.renderAppError(c, err)
			return
		}
		v.Title, v.RebindFrom, v.Mobile = "可以换绑", cf.RebindFrom, app.MaskMobile(cf.Mobile)
	}
	s.renderPage(c, http.StatusConflict, "conflict", v)
}

// handleRebindCode handles "POST /bind/migrate/code": the 换绑 SMS code to the held mobile.
func (s *Server) handleRebindCode(c *gin.Context) {
	f, err := s.flows.load(c, flowBind)
	if err != nil || f.Person == nil || f.RebindFrom == 0 {
		s.flowExpired(c)
		return
	}
	err = s.svc.SendRebindCode(c.Request.Context(), f.ref(), f.Person, f.RebindFrom, f.Mobile, c.ClientIP())
	switch code := app.ErrorCode(err); {
	case errors.Is(err, app.ErrFlowFinished):
		s.flowFinished(c, err)
		return
	case err == nil || (code == app.ETOOMANY && f.CodeSent):
		// sent, or an earlier code is still on its way: the code form (with the notice)
	case code == app.ETOOMANY:
		// e.g. a code for another purpose went to that mobile a moment ago: offer it again
		s.renderPage(c, http.StatusTooManyRequests, "conflict", &pageView{Title: errorTitles[code],
			Paragraphs: []string{app.ErrorMessage(err)}, Person: f.Person, RebindFrom: f.RebindFrom, Mobile: app.MaskMobile(f.Mobile)})
		return
	case code == app.ECONFLICT:
		s.renderBindRefusal(c, f, http.StatusConflict, err)
		return
	default:
		s.renderAppError(c, err, action{Label: "重新开始", URL: "/bind"})
		return
	}
	f.CodeSent = true
	if serr := s.flows.save(c, f); serr != nil {
		s.renderAppError(c, serr)
		return
	}
	s.renderPage(c, http.StatusOK, "code", s.rebindCodeView(f, app.ErrorMessage(err)))
}

func (s *Server) rebindCodeView(f *flow, errMsg string) *pageView {
	return &pageView{Title: "换绑验证", Paragraphs: []string{s.codeSentText(f.Mobile) + "验证通过后，原学号/工号的企业微信账号将被解除，并绑定新学号/工号 " + f.Person.Number + "。"},
		Error: errMsg, Mobile: app.MaskMobile(f.Mobile), Action: "/bind/migrate", Submit: "确认换绑", ResendAction: "/bind/migrate/code"}
}

// handleRebind handles "POST /bind/migrate": check the code, release the old member, bind the
// new number.
func (s *Server) handleRebind(c *gin.Context) {
	f, err := s.flows.load(c, flowBind)
	if err != nil || f.Person == nil || f.RebindFrom == 0 {
		s.flowExpired(c)
		return
	}
	ctx := c.Request.Context()
	res, err := s.svc.Rebind(ctx, f.ref(), f.Person, f.RebindFrom, f.Mobile, strings.TrimSpace(c.PostForm("sms_code")))
	switch code := app.ErrorCode(err); {
	case errors.Is(err, app.ErrFlowFinished):
		s.flowFinished(c, err)
	case code == app.EINVALID || code == app.EEXPIRED:
		s.renderPage(c, http.StatusBadRequest, "code", s.rebindCodeView(f, app.ErrorMessage(err)))
	case code == app.EUNAVAILABLE:
		s.log.Warn("rebind: dependency unavailable", "err", err, "request_id", RequestID(ctx))
		if !errors.Is(err, app.ErrRebindPending) {
			s.renderPage(c, http.StatusServiceUnavailable, "code", s.rebindCodeView(f, app.ErrorMessage(err)+"请稍后重新获取验证码再试。"))
			return
		}
		// The code was accepted and the 换绑 recorded: a retry continues it, no new code.
		s.renderPage(c, http.StatusServiceUnavailable, "conflict", &pageView{Title: "换绑未完成", Icon: "wait",
			Paragraphs: []string{app.ErrorMessage(err), "验证码已通过，本次换绑已记录，无需重新获取验证码。请稍后点击“重试”继续完成换绑。"},
			Action:     "/bind/migrate", Submit: "重试"})
	default:
		s.renderBindResult(c, f, res, err, "换绑成功",
			"原学号/工号的企业微信账号已删除。请用同一个微信重新关注加入，即可使用新学号/工号。")
	}
}

// renderAlreadyBound shows res.AlreadyBound: the follow page while it is pending, else a message.
func (s *Server) renderAlreadyBound(c *gin.Context, res *app.BindResult) {
	b := res.AlreadyBound
	v := &pageView{Title: "该学号/工号已绑定", Icon: "info", Binding: bindingViewOf(b)}
	if b.Status == app.StatusPending {
		v.Paragraphs = []string{"你已完成注册，但还没有加入企业微信。请按下方指引关注加入；如果注册时填写的不是当前微信绑定的手机号，加入时企业微信会打开“身份验证”页面，输入短信验证码即可。"}
		v.QRCodeURL = res.QRCodeURL
		s.renderPage(c, http.StatusOK, "follow", v)
		return
	}
	v.Paragraphs = []string{"你的学号/工号已绑定企业微信，可以直接在微信或企业微信中进入“微校园助手”。",
		rebindText, "更换手机号或离校时，请先解除绑定。"}
	v.Actions = []action{rebindAction, {Label: "解除绑定", URL: "/unbind"}}
	s.renderMessage(c, http.StatusOK, v)
}

// renderFollow shows res.Binding, bound now: the follow page (join QR code and invitation), or a
// success message for a member who had already joined.
func (s *Server) renderFollow(c *gin.Context, res *app.BindResult, title string, extra ...string) {
	b := res.Binding
	if b.Status == app.StatusActive {
		// An admin-imported member who had already joined: nothing left to do.
		s.renderMessage(c, http.StatusOK, &pageView{Title: title, Icon: "success", Binding: bindingViewOf(b),
			Paragraphs: []string{"你已加入企业微信，学号/工号已绑定成功，可以直接在微信或企业微信中进入“微校园助手”。"}})
		return
	}
	s.renderPage(c, http.StatusOK, "follow", &pageView{Title: title, Binding: bindingViewOf(b),
		Paragraphs: append([]string{"企业微信账号已创建，邀请已发送到手机号 " + app.MaskMobile(b.Mobile) + "。请立即关注加入。"}, extra...),
		QRCodeURL:  res.QRCodeURL})
}
