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

// oauthReturn completes an OAuth return for kind: the state must be the one this browser was
// given. Its code is redeemed once, for the member's userid ("" for a visitor), which the flow
// keeps; the same return again (a reload, Back) is recognised by the code and redeems nothing.
// A bad state, or another code with a used state, is answered here with 403 and errRendered; a
// code WeCom refuses comes back as the error for the caller to render.
func (s *Server) oauthReturn(c *gin.Context, kind flowKind) (*flow, error) {
	f, err := s.flows.load(c, kind)
	code := c.Query("code")
	if err != nil || !stateMatches(f.State, c.Query("state")) || (f.Link != "" && f.Link != linkDigest(code)) {
		s.renderMessage(c, http.StatusForbidden, restartPage("链接已失效",
			"该授权链接已使用、已过期或不是从本页面发起的。", c.Request.URL.Path))
		return nil, errRendered
	}
	if f.Link != "" {
		return f, nil
	}
	userID, err := s.svc.UserFromCode(c.Request.Context(), code)
	if err != nil {
		s.flows.clear(c)
		return nil, err
	}
	f.Link, f.UserID = linkDigest(code), userID
	if err := s.flows.save(c, f); err != nil {
		return nil, err
	}
	return f, nil
}

// renderOAuthError renders an error of oauthReturn or of the binding it leads to (unless it
// answered already).
func (s *Server) renderOAuthError(c *gin.Context, err error) {
	if errors.Is(err, errRendered) {
		return
	}
	s.renderAppError(c, err, action{Label: "去注册绑定", URL: "/bind"})
}

// handleUnbind handles "GET /unbind": OAuth, then the unbind flow's current step (the binding and
// the SMS form at first). In a browser whose unbind flow has finished, every /unbind link shows
// the finished state, "已解除绑定".
func (s *Server) handleUnbind(c *gin.Context) {
	if f, err := s.flows.load(c, flowUnbind); err == nil && f.Step == stepDone {
		s.showUnbindStep(c, f)
		return
	}
	if c.Query("code") == "" {
		s.startOAuth(c, flowUnbind, "/unbind")
		return
	}
	f, err := s.oauthReturn(c, flowUnbind)
	if err != nil {
		s.renderOAuthError(c, err)
		return
	}
	s.showUnbindStep(c, f)
}

// showUnbindPage handles the GET of "/unbind/sms" and "/unbind/confirm": the unbind flow's
// current step.
func (s *Server) showUnbindPage(c *gin.Context) {
	f, err := s.flows.load(c, flowUnbind)
	if err != nil || f.Link == "" {
		s.flowExpired(c)
		return
	}
	s.showUnbindStep(c, f)
}

// showUnbindStep shows the step of unbind flow f from the stored binding and SMS code: the
// binding with the SMS form, the code page, or the finished state.
func (s *Server) showUnbindStep(c *gin.Context, f *flow) {
	ctx := c.Request.Context()
	if f.Step == stepDone {
		b, err := s.svc.BindingByID(ctx, f.BindingID)
		if err != nil {
			s.renderAppError(c, err)
			return
		}
		s.renderMessage(c, http.StatusOK, &pageView{Title: "已解除绑定", Icon: "success", Binding: bindingViewOf(b),
			Paragraphs: []string{"学号/工号 " + b.Number + " 已解除绑定，对应的企业微信账号已删除。",
				"你现在就可以用新的学号/工号重新注册绑定，无需清除微信缓存。"},
			Actions: []action{{Label: "绑定新的学号/工号", URL: "/bind", Primary: true}}})
		return
	}
	b, err := s.svc.MemberBindingOf(ctx, f.UserID)
	switch {
	case err != nil:
		s.renderOAuthError(c, err)
	case f.Step == stepCode:
		s.renderCodePage(c, unbindCodeStep(b), codeAnswer{status: http.StatusOK, resent: f.Sent > 1})
	default:
		s.renderPage(c, http.StatusOK, "unbind_show", &pageView{Title: "解除绑定", Binding: bindingViewOf(b)})
	}
}

// handleUnbindSMS handles "POST /unbind/sms": the code to the bound mobile, then 303 to GET
// /unbind/sms (the code page).
func (s *Server) handleUnbindSMS(c *gin.Context) {
	f, err := s.flows.load(c, flowUnbind)
	if err != nil || f.UserID == "" {
		s.flowExpired(c)
		return
	}
	b, err := s.svc.SendUnbindCode(c.Request.Context(), f.ref(), f.UserID, c.ClientIP())
	switch {
	case errors.Is(err, app.ErrFlowFinished):
		s.flowFinished(c, err)
	case err == nil || (app.ErrorCode(err) == app.ETOOMANY && b != nil):
		s.codeSent(c, f, err, unbindCodeStep(b), "/unbind/sms")
	default:
		s.renderAppError(c, err, action{Label: "返回", URL: "/unbind"})
	}
}

func unbindCodeStep(b *app.MemberBinding) codeStep {
	return codeStep{title: "确认解除绑定", mobile: b.Mobile, purpose: app.PurposeUnbind, action: "/unbind/confirm",
		submit: "确认解除绑定", resend: "/unbind/sms", effect: "确认后，学号/工号 " + b.Number + " 的企业微信账号将被删除。"}
}

// handleUnbindConfirm handles "POST /unbind/confirm": delete the member, mark the binding unbound,
// then 303 to GET /unbind/confirm (the finished state).
func (s *Server) handleUnbindConfirm(c *gin.Context) {
	f, err := s.flows.load(c, flowUnbind)
	if err != nil || f.UserID == "" || (f.Step != stepCode && f.Step != stepDone) {
		s.flowExpired(c)
		return
	}
	b, err := s.svc.Unbind(c.Request.Context(), f.ref(), f.UserID, c.PostForm("sms_code"))
	switch code := app.ErrorCode(err); {
	case err == nil:
		f.Step, f.BindingID = stepDone, b.ID
		if serr := s.flows.save(c, f); serr != nil {
			s.renderAppError(c, serr)
			return
		}
		seeOther(c, "/unbind/confirm")
	case errors.Is(err, app.ErrFlowFinished):
		s.flowFinished(c, err)
	case (code == app.EINVALID || code == app.EEXPIRED) && b != nil:
		// A wrong or expired code: the binding came back with it, ask again.
		s.renderCodePage(c, unbindCodeStep(b), codeAnswer{status: http.StatusBadRequest, resent: f.Sent > 1, errMsg: app.ErrorMessage(err)})
	default:
		s.renderAppError(c, err, action{Label: "返回", URL: "/unbind"})
	}
}

// handleMe handles "GET /me": OAuth, then the member's own binding and what to do next. /me is a
// status page: a member without a binding also gets 200, with the way to bind. Reloading it
// shows the binding as stored now, without another OAuth code.
func (s *Server) handleMe(c *gin.Context) {
	if c.Query("code") == "" {
		s.startOAuth(c, flowMe, "/me")
		return
	}
	f, err := s.oauthReturn(c, flowMe)
	var b *app.MemberBinding
	if err == nil {
		b, err = s.svc.MemberBindingOf(c.Request.Context(), f.UserID)
	}
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
