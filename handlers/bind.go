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

// handleBindCAS handles "GET /bind/cas?ticket=…": validate the ticket once, then 303 to GET
// /bind/mobile, which shows the mobile form or the already-bound page (CONTRACT §7). Only a
// browser that started the login at /bind/login gets its ticket validated (login CSRF: a ticket
// someone else obtained, sent in a link, is refused without asking CAS); the pre-login flow is
// used up by this request whatever CAS answers.
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
	seeOther(c, "/bind/mobile")
}

// showBindStep handles "GET /bind/mobile" and the GET of the bind flow's other routes: the
// flow's current step, from the flow cookie and the stored binding. Nothing is written.
func (s *Server) showBindStep(c *gin.Context) {
	f, err := s.flows.load(c, flowBind)
	if err != nil || f.Person == nil {
		s.flowExpired(c)
		return
	}
	st, err := s.svc.BindState(c.Request.Context(), f.Person.Number)
	switch {
	case err != nil:
		s.renderAppError(c, err)
	case f.Step == stepDone && st != nil && f.RebindFrom != 0:
		s.renderFollow(c, st, "换绑成功", msgRebound)
	case f.Step == stepDone && st != nil:
		s.renderFollow(c, st, "注册成功")
	case f.Step == stepDone:
		// Bound in this flow, unbound since: this flow cannot bind again.
		s.renderMessage(c, http.StatusConflict, restartPage("操作已完成", "本次注册绑定已经完成，该学号/工号已解除绑定。如需再次绑定，请重新开始。", "/bind"))
	case st != nil:
		s.renderAlreadyBound(c, st)
	case f.Step == stepPending:
		s.renderRebindPending(c, http.StatusOK, nil)
	case f.Step == stepCode:
		s.renderCodePage(c, s.rebindCodeStep(f), codeAnswer{status: http.StatusOK, resent: f.Sent > 1})
	case f.RebindFrom != 0:
		s.renderRebindOffer(c, f, http.StatusOK, "")
	default:
		s.renderPage(c, http.StatusOK, "bind_mobile", &pageView{Title: "绑定手机号", Person: f.Person})
	}
}

// handleBindMobile handles "POST /bind/mobile": create or adopt the member and store the binding,
// then 303 to GET /bind/mobile (the follow page). Refusals answer with their 4xx directly.
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
		if res != nil && res.Binding != nil {
			f.Mobile, f.RebindFrom = "", 0 // a plain bind, whatever was offered before
		}
		s.bindOutcome(c, f, res, err, "/bind/mobile")
	}
}

// msgRebound is the follow page's second line after a 换绑.
const msgRebound = "原学号/工号的企业微信账号已删除。请用同一个微信重新关注加入，即可使用新学号/工号。"

// bindOutcome answers a Bind or Rebind that the step did not handle itself: a refusal or a
// failure directly, a mobile conflict with its 409 page (a 换绑 offer is kept in the flow),
// anything else with 303 to the GET page at path, after recording that this flow has bound.
func (s *Server) bindOutcome(c *gin.Context, f *flow, res *app.BindResult, err error, path string) {
	switch {
	case app.ErrorCode(err) == app.ECONFLICT:
		s.renderBindRefusal(c, f, http.StatusConflict, err)
	case err != nil:
		s.renderAppError(c, err, action{Label: "重新开始", URL: "/bind"})
	case res.Conflict != nil:
		f.Step, f.Mobile, f.RebindFrom = "", "", res.Conflict.RebindFrom
		if f.RebindFrom != 0 {
			f.Mobile = res.Conflict.Mobile
		}
		if serr := s.flows.save(c, f); serr != nil {
			s.renderAppError(c, serr)
			return
		}
		if f.RebindFrom != 0 {
			s.renderRebindOffer(c, f, http.StatusConflict, res.Conflict.Message)
			return
		}
		s.renderPage(c, http.StatusConflict, "conflict", &pageView{Title: "手机号已被使用", Paragraphs: []string{res.Conflict.Message}, Person: f.Person})
	default:
		if res.Binding != nil {
			f.Step = stepDone
			if serr := s.flows.save(c, f); serr != nil {
				s.renderAppError(c, serr)
				return
			}
		}
		seeOther(c, path)
	}
}

// renderBindRefusal answers a refused bind step with its message and the mobile form, so that the
// member can go on with another mobile without logging in again.
func (s *Server) renderBindRefusal(c *gin.Context, f *flow, status int, err error) {
	s.renderPage(c, status, "conflict", &pageView{Title: errorTitles[app.ErrorCode(err)],
		Paragraphs: []string{app.ErrorMessage(err)}, Person: f.Person})
}

// renderRebindOffer shows the 换绑 offer of the flow: the mobile held by the person's earlier
// binding, a button that sends it a code, and the form for another mobile. msg explains the
// conflict; "" (a GET of the offer) reads the offer again from what is stored.
func (s *Server) renderRebindOffer(c *gin.Context, f *flow, status int, msg string) {
	if msg == "" {
		cf, err := s.svc.RebindOffer(c.Request.Context(), f.Person, f.RebindFrom, f.Mobile)
		switch code := app.ErrorCode(err); {
		case code == app.ECONFLICT || code == app.EFORBIDDEN:
			s.renderBindRefusal(c, f, appStatus(err), err) // released since: the mobile form
			return
		case err != nil:
			s.renderAppError(c, err)
			return
		}
		msg = cf.Message
	}
	s.renderPage(c, status, "conflict", &pageView{Title: "可以换绑", Paragraphs: []string{msg}, Person: f.Person,
		RebindFrom: f.RebindFrom, Mobile: app.MaskMobile(f.Mobile)})
}

// handleRebindCode handles "POST /bind/migrate/code": the 换绑 SMS code to the held mobile, then
// 303 to GET /bind/migrate/code (the code page). A send the cooldown or a daily cap holds back
// answers 429 with the code page and a note.
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
	case err == nil || code == app.ETOOMANY:
		s.codeSent(c, f, err, s.rebindCodeStep(f), "/bind/migrate/code")
	case code == app.ECONFLICT:
		s.renderBindRefusal(c, f, http.StatusConflict, err)
	default:
		s.renderAppError(c, err, action{Label: "重新开始", URL: "/bind"})
	}
}

// codeSent records a send step in the flow (sendErr nil: a code went out; ETOOMANY: none did),
// then answers: 303 to the code page at path, or the code page with status 429 and the reason.
func (s *Server) codeSent(c *gin.Context, f *flow, sendErr error, st codeStep, path string) {
	f.Step = stepCode
	if sendErr == nil {
		f.Sent++
	}
	if err := s.flows.save(c, f); err != nil {
		s.renderAppError(c, err)
		return
	}
	if sendErr != nil {
		s.renderCodePage(c, st, codeAnswer{status: http.StatusTooManyRequests, note: app.ErrorMessage(sendErr)})
		return
	}
	seeOther(c, path)
}

func (s *Server) rebindCodeStep(f *flow) codeStep {
	return codeStep{title: "换绑验证", mobile: f.Mobile, purpose: app.PurposeRebind, action: "/bind/migrate", submit: "确认换绑",
		resend: "/bind/migrate/code", effect: "验证通过后，原学号/工号的企业微信账号将被解除，并绑定新学号/工号 " + f.Person.Number + "。"}
}

// handleRebind handles "POST /bind/migrate": check the code, release the old member, bind the
// new number, then 303 to GET /bind/migrate (the follow page).
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
		s.renderCodePage(c, s.rebindCodeStep(f), codeAnswer{status: http.StatusBadRequest, resent: f.Sent > 1, errMsg: app.ErrorMessage(err)})
	case code == app.EUNAVAILABLE && errors.Is(err, app.ErrRebindPending):
		// The code was accepted and the 换绑 recorded: a retry continues it, no new code.
		s.log.Warn("rebind: dependency unavailable", "err", err, "request_id", RequestID(ctx))
		f.Step = stepPending
		if serr := s.flows.save(c, f); serr != nil {
			s.renderAppError(c, serr)
			return
		}
		s.renderRebindPending(c, http.StatusServiceUnavailable, err)
	case code == app.EUNAVAILABLE:
		s.log.Warn("rebind: dependency unavailable", "err", err, "request_id", RequestID(ctx))
		s.renderCodePage(c, s.rebindCodeStep(f), codeAnswer{status: http.StatusServiceUnavailable, errMsg: app.ErrorMessage(err) + "请稍后重新获取验证码再试。"})
	default:
		s.bindOutcome(c, f, res, err, "/bind/migrate")
	}
}

// renderRebindPending shows a 换绑 whose code was accepted but whose WeCom steps are not done:
// a retry button continues it. err is the failure just met (nil: a GET of the page).
func (s *Server) renderRebindPending(c *gin.Context, status int, err error) {
	msg := "企业微信暂未完成换绑。"
	if err != nil {
		msg = app.ErrorMessage(err)
	}
	s.renderPage(c, status, "conflict", &pageView{Title: "换绑未完成", Icon: "wait",
		Paragraphs: []string{msg, "验证码已通过，本次换绑已记录，无需重新获取验证码。请稍后点击“重试”继续完成换绑。"},
		Action:     "/bind/migrate", Submit: "重试"})
}

// renderAlreadyBound shows st.AlreadyBound: the follow page while it is pending, else a message.
func (s *Server) renderAlreadyBound(c *gin.Context, st *app.BindResult) {
	b := st.AlreadyBound
	v := &pageView{Title: "该学号/工号已绑定", Icon: "info", Binding: bindingViewOf(b)}
	if b.Status == app.StatusPending {
		v.Paragraphs = []string{"你已完成注册，但还没有加入企业微信。请按下方指引关注加入；如果注册时填写的不是当前微信绑定的手机号，加入时企业微信会打开“身份验证”页面，输入短信验证码即可。"}
		v.QRCodeURL = st.QRCodeURL
		s.renderPage(c, http.StatusOK, "follow", v)
		return
	}
	v.Paragraphs = []string{"你的学号/工号已绑定企业微信，可以直接在微信或企业微信中进入“微校园助手”。",
		rebindText, "更换手机号或离校时，请先解除绑定。"}
	v.Actions = []action{rebindAction, {Label: "解除绑定", URL: "/unbind"}}
	s.renderMessage(c, http.StatusOK, v)
}

// renderFollow shows the binding this flow made (st.AlreadyBound, read back): the follow page
// (join QR code and invitation), or a success message for a member who has joined already.
func (s *Server) renderFollow(c *gin.Context, st *app.BindResult, title string, extra ...string) {
	b := st.AlreadyBound
	if b.Status == app.StatusActive {
		// An admin-imported member who had already joined, or one who joined since: nothing left to do.
		s.renderMessage(c, http.StatusOK, &pageView{Title: title, Icon: "success", Binding: bindingViewOf(b),
			Paragraphs: []string{"你已加入企业微信，学号/工号已绑定成功，可以直接在微信或企业微信中进入“微校园助手”。"}})
		return
	}
	s.renderPage(c, http.StatusOK, "follow", &pageView{Title: title, Binding: bindingViewOf(b),
		Paragraphs: append([]string{"企业微信账号已创建，邀请已发送到手机号 " + app.MaskMobile(b.Mobile) + "。请立即关注加入。"}, extra...),
		QRCodeURL:  st.QRCodeURL})
}
