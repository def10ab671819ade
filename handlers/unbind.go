package handlers

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/wecampus/wecampus/app"
)

// startOAuth sends the member through WeCom OAuth (snsapi_base) back to path, with a fresh state
// bound to this browser's flow cookie.
func (s *Server) startOAuth(c *gin.Context, kind flowKind, path string) {
	st := newState()
	if err := s.flows.save(c, &flow{Kind: kind, State: st}); err != nil {
		s.renderAppError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, s.authURL(s.cfg.BaseURL+path, st))
}

// errRendered is returned by a helper that has already answered the request.
var errRendered = errors.New("handlers: answered")

// oauthBinding completes an OAuth return for kind: the state must be the one this browser was
// given (single use), then the code is redeemed for the member's binding, whose userid the flow
// keeps. A bad state is answered here with 403 and errRendered; a code WeCom refuses, a visitor
// who is not a member or a member without a binding (ENOTFOUND) comes back as the error for the
// caller to render.
func (s *Server) oauthBinding(c *gin.Context, kind flowKind) (*app.MemberBinding, error) {
	f, err := s.flows.load(c, kind)
	if err != nil || !stateMatches(f.State, c.Query("state")) {
		s.renderMessage(c, http.StatusForbidden, restartPage("链接已失效",
			"该授权链接已使用、已过期或不是从本页面发起的。", c.Request.URL.Path))
		return nil, errRendered
	}
	f.State = "" // single use
	b, err := s.svc.BindingFromCode(c.Request.Context(), c.Query("code"))
	if err != nil {
		s.flows.clear(c)
		return nil, err
	}
	f.UserID = b.UserID
	if err := s.flows.save(c, f); err != nil {
		return nil, err
	}
	return b, nil
}

// renderOAuthError renders an error of oauthBinding (unless it answered already).
func (s *Server) renderOAuthError(c *gin.Context, err error) {
	if errors.Is(err, errRendered) {
		return
	}
	s.renderAppError(c, err, action{Label: "去注册绑定", URL: "/bind"})
}

// handleUnbind handles "GET /unbind": OAuth, then the binding and the SMS form.
func (s *Server) handleUnbind(c *gin.Context) {
	if c.Query("code") == "" {
		s.startOAuth(c, flowUnbind, "/unbind")
		return
	}
	b, err := s.oauthBinding(c, flowUnbind)
	if err != nil {
		s.renderOAuthError(c, err)
		return
	}
	s.renderPage(c, http.StatusOK, "unbind_show", &pageView{Title: "解除绑定", Binding: bindingViewOf(b)})
}

// handleUnbindSMS handles "POST /unbind/sms": the code to the bound mobile.
func (s *Server) handleUnbindSMS(c *gin.Context) {
	f, err := s.flows.load(c, flowUnbind)
	if err != nil || f.UserID == "" {
		s.flowExpired(c)
		return
	}
	b, err := s.svc.SendUnbindCode(c.Request.Context(), f.ref(), f.UserID, c.ClientIP())
	if errors.Is(err, app.ErrFlowFinished) {
		s.flowFinished(c, err)
		return
	} else if err != nil && !(app.ErrorCode(err) == app.ETOOMANY && f.CodeSent) {
		s.renderAppError(c, err, action{Label: "返回", URL: "/unbind"})
		return
	}
	f.CodeSent = true
	if serr := s.flows.save(c, f); serr != nil {
		s.renderAppError(c, serr)
		return
	}
	s.renderPage(c, http.StatusOK, "code", s.unbindCodeView(b, app.ErrorMessage(err)))
}

func (s *Server) unbindCodeView(b *app.MemberBinding, errMsg string) *pageView {
	return &pageView{Title: "确认解除绑定", Paragraphs: []string{s.codeSentText(b.Mobile) + "确认后，学号/工号 " + b.Number + " 的企业微信账号将被删除。"},
		Error: errMsg, Mobile: app.MaskMobile(b.Mobile), Action: "/unbind/confirm", Submit: "确认解除绑定", ResendAction: "/unbind/sms"}
}

// handleUnbindConfirm handles "POST /unbind/confirm": delete the member, mark the binding unbound.
func (s *Server) handleUnbindConfirm(c *gin.Context) {
	f, err := s.flows.load(c, flowUnbind)
	if err != nil || f.UserID == "" || !f.CodeSent {
		s.flowExpired(c)
		return
	}
	b, err := s.svc.Unbind(c.Request.Context(), f.ref(), f.UserID, c.PostForm("sms_code"))
	if errors.Is(err, app.ErrFlowFinished) {
		s.flowFinished(c, err)
		return
	} else if code := app.ErrorCode(err); (code == app.EINVALID || code == app.EEXPIRED) && b != nil {
		// A wrong or expired code: the binding came back with it, ask again.
		s.renderPage(c, http.StatusBadRequest, "code", s.unbindCodeView(b, app.ErrorMessage(err)))
		return
	} else if err != nil {
		s.renderAppError(c, err, action{Label: "返回", URL: "/unbind"})
		return
	}
	s.flows.clear(c)
	s.renderMessage(c, http.StatusOK, &pageView{Title: "已解除绑定", Icon: "success", Binding: bindingViewOf(b),
		Paragraphs: []string{"学号/工号 " + b.Number + " 已解除绑定，对应的企业微信账号已删除。",
			"你现在就可以用新的学号/工号重新注册绑定，无需清除微信缓存。"},
		Actions: []action{{Label: "绑定新的学号/工号", URL: "/bind", Primary: true}}})
}

// handleMe handles "GET /me": OAuth, then the member's own binding and what to do next. /me is a
// status page: a member without a binding also gets 200, with the way to bind.
func (s *Server) handleMe(c *gin.Context) {
	if c.Query("code") == "" {
		s.startOAuth(c, flowMe, "/me")
		return
	}
	b, err := s.oauthBinding(c, flowMe)
	if errors.Is(err, errRendered) {
		return
	} else if app.ErrorCode(err) == app.ENOTFOUND {
		s.renderMessage(c, http.StatusOK, &pageView{Title: "我的绑定", Icon: "info",
			Paragraphs: []string{app.ErrorMessage(err), "学生和教职工可以用统一身份认证账号注册绑定。"},
			Actions:    []action{{Label: "去注册绑定", URL: "/bind", Primary: true}}})
		return
	} else if err != nil {
		s.renderAppError(c, err)
		return
	}
	v := &pageView{Title: "我的绑定", Icon: "info", Binding: bindingViewOf(b)}
	if b.Status == app.StatusPending {
		v.Paragraphs = []string{"你的账号已创建，但还没有完成加入企业微信。请点击企业微信发给你的邀请通知加入；如果注册时填写的手机号与当前微信绑定的手机号不同，加入时企业微信会打开“身份验证”页面，填写注册手机号并输入短信验证码即可。"}
		v.Actions = []action{{Label: "查看验证状态", URL: "/verify", Primary: true}}
	} else {
		v.Icon = "success"
		v.Paragraphs = []string{"你的学号/工号已绑定企业微信。"}
	}
	v.Paragraphs = append(v.Paragraphs, rebindText, "离校或不再使用时，请解除绑定。")
	v.Actions = append(v.Actions, rebindAction, action{Label: "解除绑定", URL: "/unbind"})
	s.renderMessage(c, http.StatusOK, v)
}
