package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wecampus/wecampus/app"
)

// handleVerify handles "GET /verify": WeCom's join-verification redirect (?code=…), or, without a
// code, the menu entry that goes through OAuth and shows whether the member is verified. An OAuth
// return is recognised by the state this browser was given. The verification link opened again
// (a reload, Back, the link reopened) is recognised by the code its flow redeemed: it shows the
// flow's current step ("你已完成验证" once verified) and redeems nothing.
func (s *Server) handleVerify(c *gin.Context) {
	code := c.Query("code")
	if code == "" {
		s.startOAuth(c, flowVerify, "/verify")
		return
	}
	if f, err := s.flows.load(c, flowVerify); err == nil {
		switch {
		case f.State != "" && stateMatches(f.State, c.Query("state")):
			s.showVerifyStatus(c)
			return
		case f.Verify != nil && f.Link == linkDigest(code):
			s.showVerifyStep(c, f, false)
			return
		}
	}
	st, b, err := s.svc.StartVerify(c.Request.Context(), code)
	if err != nil {
		s.renderVerifyError(c, err)
		return
	}
	if err := s.flows.save(c, &flow{Kind: flowVerify, Verify: st, Link: linkDigest(code)}); err != nil {
		s.renderAppError(c, err)
		return
	}
	s.renderVerifyMobile(c, http.StatusOK, b.Mobile, "", "")
}

// showVerifyPage handles the GET of "/verify/sms" and "/verify/confirm": the verification flow's
// current step; "/verify/confirm" is where a verification that just passed lands.
func (s *Server) showVerifyPage(c *gin.Context) {
	f, err := s.flows.load(c, flowVerify)
	if err != nil || f.Verify == nil {
		s.flowExpired(c)
		return
	}
	s.showVerifyStep(c, f, c.Request.URL.Path == "/verify/confirm")
}

// showVerifyStep shows the step of verification flow f from the stored binding and SMS code:
// the mobile page, the code page, or the finished state ("验证成功" where a verification that
// just passed lands, "你已完成验证" elsewhere).
func (s *Server) showVerifyStep(c *gin.Context, f *flow, landing bool) {
	ctx := c.Request.Context()
	if f.Step == stepDone {
		b, err := s.svc.MemberBindingOf(ctx, f.Verify.UserID)
		if err != nil {
			s.renderVerifyError(c, err)
			return
		}
		v := &pageView{Title: "你已完成验证", Icon: "success", Binding: bindingViewOf(b),
			Paragraphs: []string{"你已完成关注身份验证，无需再次验证，可以返回企业微信或微信开始使用了。"}}
		if landing {
			v.Title, v.Paragraphs = "验证成功", []string{"你已完成关注身份验证，可以返回企业微信或微信开始使用了。"}
		}
		s.renderMessage(c, http.StatusOK, v)
		return
	}
	b, err := s.svc.VerifyProgress(ctx, f.Verify)
	switch {
	case err != nil:
		s.renderVerifyError(c, err)
	case f.Step == stepCode:
		s.renderCodePage(c, verifyCodeStep(b.Mobile), codeAnswer{status: http.StatusOK, resent: f.Sent > 1})
	default:
		s.renderVerifyMobile(c, http.StatusOK, b.Mobile, "", "")
	}
}

// renderVerifyMobile renders the verify page: one button sends the code to the bound mobile
// (masked on the page); the member may also type the mobile, which must then be the bound one.
func (s *Server) renderVerifyMobile(c *gin.Context, status int, mobile, typed, errMsg string) {
	s.renderPage(c, status, "verify_mobile", &pageView{Title: "关注身份验证", Mobile: app.MaskMobile(mobile), Typed: typed, Error: errMsg})
}

// showVerifyStatus answers the OAuth return of the menu entry: whether the member is verified.
func (s *Server) showVerifyStatus(c *gin.Context) {
	f, err := s.oauthReturn(c, flowVerify)
	if errors.Is(err, errRendered) {
		return
	}
	var b *app.MemberBinding
	if err == nil {
		b, err = s.svc.MemberBindingOf(c.Request.Context(), f.UserID)
	}
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

// handleVerifySMS handles "POST /verify/sms": the code to the bound mobile (a typed mobile must be
// the bound one), then 303 to GET /verify/sms (the code page).
func (s *Server) handleVerifySMS(c *gin.Context) {
	f, err := s.flows.load(c, flowVerify)
	if err != nil || f.Verify == nil {
		s.flowExpired(c)
		return
	}
	ctx := c.Request.Context()
	raw := c.PostForm("mobile")
	mobile, err := s.svc.SendVerifyCode(ctx, f.ref(), f.Verify, raw, c.ClientIP())
	switch code := app.ErrorCode(err); {
	case errors.Is(err, app.ErrFlowFinished):
		s.flowFinished(c, err)
	case err == nil || code == app.ETOOMANY:
		s.codeSent(c, f, err, verifyCodeStep(mobile), "/verify/sms")
	case code == app.EINVALID:
		b, berr := s.svc.VerifyProgress(ctx, f.Verify)
		if berr != nil {
			s.renderVerifyError(c, berr)
			return
		}
		s.renderVerifyMobile(c, http.StatusBadRequest, b.Mobile, raw, app.ErrorMessage(err))
	default:
		s.renderVerifyError(c, err)
	}
}

func verifyCodeStep(mobile string) codeStep {
	return codeStep{title: "输入验证码", mobile: mobile, purpose: app.PurposeVerify, action: "/verify/confirm",
		submit: "完成验证", resend: "/verify/sms"}
}

// handleVerifyConfirm handles "POST /verify/confirm": check the code and pass the member, then
// 303 to GET /verify/confirm (the success page).
func (s *Server) handleVerifyConfirm(c *gin.Context) {
	f, err := s.flows.load(c, flowVerify)
	if err != nil || f.Verify == nil || (f.Step != stepCode && f.Step != stepDone) {
		s.flowExpired(c)
		return
	}
	b, err := s.svc.ConfirmVerify(c.Request.Context(), f.ref(), f.Verify, c.PostForm("sms_code"))
	switch code := app.ErrorCode(err); {
	case err == nil:
		f.Step = stepDone
		if serr := s.flows.save(c, f); serr != nil {
			s.renderAppError(c, serr)
			return
		}
		seeOther(c, "/verify/confirm")
	case errors.Is(err, app.ErrFlowFinished):
		s.flowFinished(c, err)
	case errors.Is(err, app.ErrVerifyRestart):
		s.renderVerifyError(c, err)
	case (code == app.EINVALID || code == app.EEXPIRED) && b != nil:
		// A wrong, used or expired SMS code: ask again, with a resend button.
		s.renderCodePage(c, verifyCodeStep(b.Mobile), codeAnswer{status: http.StatusBadRequest, resent: f.Sent > 1, errMsg: app.ErrorMessage(err)})
	default:
		s.renderVerifyError(c, err)
	}
}
