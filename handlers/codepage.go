package handlers

import (
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/wecampus/wecampus/app"
)

// codeStep is the code page of one flow: where the codes go, where its forms post and what
// confirming does.
type codeStep struct {
	title   string
	mobile  string // normalised
	purpose app.Purpose
	action  string // the code form
	submit  string
	resend  string // the resend form
	effect  string // what confirming does, after the line about the code
}

// codeAnswer is how one answer shows a code page.
type codeAnswer struct {
	status int
	resent bool   // the flow has sent more than one code: "新的验证码已发送"
	errMsg string // the code just entered was refused
	note   string // why no code was sent just now (429): information, not an error
}

// renderCodePage renders the code page of st from the stored state of its latest code: the
// heading says when that code took too many wrong guesses, the first line where it went and how
// long it stays valid, and a refused resend says how long to wait and that the earlier code
// still works.
func (s *Server) renderCodePage(c *gin.Context, st codeStep, a codeAnswer) {
	cs, err := s.svc.CodeState(c.Request.Context(), st.mobile, st.purpose)
	if err != nil {
		s.renderAppError(c, err)
		return
	}
	masked := app.MaskMobile(st.mobile)
	v := &pageView{Title: st.title, Mobile: masked, Action: st.action, Submit: st.submit,
		ResendAction: st.resend, Error: a.errMsg}
	switch {
	case cs.Exhausted:
		v.Title = "验证码错误次数过多"
		v.Paragraphs = []string{"这个验证码已经不能再使用。请点击“重新获取验证码”，输入新收到的验证码。"}
	case cs.Usable:
		lead := "验证码已发送到 "
		if a.resent {
			lead = "新的验证码已发送到 "
		}
		v.Paragraphs = []string{fmt.Sprintf("%s%s，%d 分钟内有效。", lead, masked, ceilMinutes(cs.Left))}
	case cs.Expired:
		v.Paragraphs = []string{"验证码已过期，请点击“重新获取验证码”。"}
	default:
		v.Paragraphs = []string{"请点击“重新获取验证码”，验证码将发送到 " + masked + "。"}
	}
	if st.effect != "" {
		v.Paragraphs = append(v.Paragraphs, st.effect)
	}
	switch {
	case a.note != "" && cs.Usable:
		v.Note = a.note + "之前发送的验证码仍然有效，可以直接输入。"
	case a.note != "":
		v.Note = a.note
	case cs.Wait > 0 && cs.Usable:
		v.ResendNote = fmt.Sprintf("没有收到？%d 秒后可以重新获取。", int(cs.Wait.Seconds())+1)
	case cs.Wait > 0:
		v.ResendNote = fmt.Sprintf("%d 秒后可以重新获取。", int(cs.Wait.Seconds())+1)
	}
	s.renderPage(c, a.status, "code", v)
}

// ceilMinutes is d in whole minutes, rounded up: a code valid for 4m10s is "5 分钟内有效".
func ceilMinutes(d time.Duration) int {
	return int((d + time.Minute - 1) / time.Minute)
}
