package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wecampus/wecampus/app"
)

// handleVerify handles "GET /verify": WeCom's join-verification redirect (?code=…), or, without a
// code, the menu entry that goes through OAuth and shows whether the member is verified. An OAuth
// return is recognised by the state this browser was given.
func (s *Server) handleVerify(c *gin.Context) {
	code := c.Query("code")
	if code == "" {
		s.startOAuth(c, flowVerify, "/verify")
		return
	}
	if f, err := s.flows.load(c, flowVerify); err == nil && f.State != "" && stateMatches(f.State, c.Query("state")) {
		s.showVerifyStatus(c, code)
		return
	}
	st, b, err := s.svc.StartVerify(c.Request.Context(), code)
	if err != nil {
		s.renderVerifyError(c, err)
		return
	}
	if err := s.flows.save(c, &flow{Kind: flowVerify, Verify: st}); err != nil {
		s.renderAppError(c, err)
		return
	}
	s.renderPage(c, http.StatusOK, "verify_mobile", &pageView{Title: "关注身份验证", Mobile: app.MaskMobile(b.Mobile)})
}

// showVerifyStatus answers the OAuth return of the menu entry: whether the member is verified.
func (s *Server) showVerifyStatus(c *gin.Context, code string) {
	s.flows.clear(c) // the state is single use
	b, err := s.svc.BindingFromCode(c.Request.Context(), code)
	if err != nil {
		s.renderVerifyError(c, err)
		return
	}
	v := &pageView{Title: "身份验证状态", Icon: "success", Binding: bindingViewOf(b)}
	if b.Status == app.StatusActive {
		v.Paragraphs = []string{"你已完成验证并加入企业微信，无需再次验证。"}
	} else {
		v.Icon = "info"
		v.Paragraphs = []string{"你还没有完成加入。请在企业微信弹出的“身份验证”页面中填写注册时的手机号并输入短信验证码；也可以重新点击邀请通知加入。"}
	}
	s.renderMessage(c, http.StatusOK, v)
}

// renderVerifyError renders a verify failure: no binding sends the member to bind; an expired or
// used WeCom code (or tfa_code) tells them to re-enter from WeCom, which is the only way to get a
// new one.
func (s *Server) renderVerifyError(c *gin.Context, err error) {
	switch app.ErrorCode(err) {
	case app.ENOTFOUND:
		s.renderAppError(c, err, action{Label: "去注册绑定", URL: "/bind", Primary: true})
	case app.EEXPIRED:
		s.flows.clear(c)
		s.renderMessage(c, http.StatusBadRequest, &pageView{Title: "验证已失效",
			Paragraphs: []string{app.ErrorMessage(err), "关闭本页后回到企业微信重新操作，企业微信会再次打开身份验证页面。"}})
	default:
		s.renderAppError(c, err)
	}
}

// handleVerifySMS handles "POST /verify/sms": the mobile must be the bound one; send the code.
func (s *Server) handleVerifySMS(c *gin.Context) {
	f, err := s.flows.load(c, flowVerify)
	if err != nil || f.Verify == nil {
		s.flowExpired(c)
		return
	}
	raw := c.PostForm("mobile")
	if raw == "" && f.Mobile != "" {
		raw = f.Mobile // 重新获取验证码: the mobile is in the flow cookie, not in the page
	}
	mobile, err := s.svc.SendVerifyCode(c.Request.Context(), f.ref(), f.Verify, raw, c.ClientIP())
	if errors.Is(err, app.ErrFlowFinished) {
		s.flowFinished(c, err)
		return
	}
	switch app.ErrorCode(err) {
	case "":
	case app.EINVALID:
		s.renderPage(c, http.StatusBadRequest, "verify_mobile", &pageView{Title: "关注身份验证", Typed: raw, Error: app.ErrorMessage(err)})
		return
	case app.ETOOMANY:
		if !f.CodeSent {
			s.renderAppError(c, err)
			return
		}
	default:
		s.renderVerifyError(c, err)
		return
	}
	f.CodeSent, f.Mobile = true, mobile
	if serr := s.flows.save(c, f); serr != nil {
		s.renderAppError(c, serr)
		return
	}
	s.renderPage(c, http.StatusOK, "code", s.verifyCodeView(mobile, app.ErrorMessage(err)))
}

func (s *Server) verifyCodeView(mobile, errMsg string) *pageView {
	return &pageView{Title: "输入验证码", Paragraphs: []string{s.codeSentText(mobile)},
		Error: errMsg, Mobile: app.MaskMobile(mobile), Action: "/verify/confirm", Submit: "完成验证",
		ResendAction: "/verify/sms"}
}

// handleVerifyConfirm handles "POST /verify/confirm": check the code and pass the member.
func (s *Server) handleVerifyConfirm(c *gin.Context) {
	f, err := s.flows.load(c, flowVerify)
	if err != nil || f.Verify == nil || !f.CodeSent {
		s.flowExpired(c)
		return
	}
	b, err := s.svc.ConfirmVerify(c.Request.Context(), f.ref(), f.Verify, c.PostForm("sms_code"))
	switch code := app.ErrorCode(err); {
	case err == nil:
	case errors.Is(err, app.ErrFlowFinished):
		s.flowFinished(c, err)
		return
	case errors.Is(err, app.ErrVerifyRestart):
		s.renderVerifyError(c, err)
		return
	case (code == app.EINVALID || code == app.EEXPIRED) && b != nil:
		// A wrong, used or expired SMS code: ask again, with a resend button.
		s.renderPage(c, http.StatusBadRequest, "code", s.verifyCodeView(b.Mobile, app.ErrorMessage(err)))
		return
	default:
		s.renderVerifyError(c, err)
		return
	}
	s.flows.clear(c)
	s.renderMessage(c, http.StatusOK, &pageView{Title: "验证成功", Icon: "success", Binding: bindingViewOf(b),
		Paragraphs: []string{"你已完成关注身份验证，可以返回企业微信或微信开始使用了。"}})
}
