package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrVerifyRestart is the cause of a join-verification error that only a fresh start from WeCom
// can cure: the tfa_code ran out of time or WeCom no longer accepts it. Check with errors.Is; the
// *Error around it (EEXPIRED) carries the member-facing text.
var ErrVerifyRestart = errors.New("app: join verification must restart from WeCom")

// VerifyMode is how a member's join verification is passed in WeCom (wecom.verify_mode).
type VerifyMode string

// Verify modes.
const (
	// VerifyTfa redeems the code with auth/get_tfa_info and passes with user/tfa_succ (default).
	VerifyTfa VerifyMode = "tfa"
	// VerifyAuthSucc redeems the code with auth/getuserinfo and passes with user/authsucc (legacy).
	VerifyAuthSucc VerifyMode = "authsucc"
)

// tfaLifetime is how long WeCom accepts a tfa_code (and the join-verification code) after
// auth/get_tfa_info: 5 minutes (WECOM.md §4).
const tfaLifetime = 5 * time.Minute

// VerifyState is the join-verification context carried in the flow cookie between the verify
// steps.
type VerifyState struct {
	UserID   string `json:"u"`
	TfaCode  string `json:"c,omitempty"` // tfa mode only
	IssuedAt int64  `json:"t"`           // unix seconds when the code was redeemed
}

// StartVerify redeems the code WeCom appended to the verification page: auth/get_tfa_info in tfa
// mode, auth/getuserinfo in authsucc mode. The member must have a binding (else ENOTFOUND).
func (s *Service) StartVerify(ctx context.Context, code string) (*VerifyState, *Binding, error) {
	if code == "" {
		return nil, nil, Errorf(EINVALID, "缺少验证参数，请从企业微信重新进入身份验证页面。")
	}
	st := &VerifyState{IssuedAt: s.now().Unix()}
	var err error
	if s.VerifyMode == VerifyAuthSucc {
		st.UserID, _, err = s.WeCom.UserFromCode(ctx, code)
	} else {
		st.UserID, st.TfaCode, err = s.WeCom.TfaInfo(ctx, code)
	}
	if err != nil {
		return nil, nil, s.codeError(err)
	}
	if st.UserID == "" { // a visitor who is not a member (auth/getuserinfo gave an openid only)
		return nil, nil, Errorf(ENOTFOUND, "你还不是本单位企业微信成员，请先完成注册绑定。")
	}
	b, err := s.Store.FindLiveBinding(ctx, "userid", st.UserID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, nil, Errorf(ENOTFOUND, "没有找到你的绑定记录。请先完成注册绑定，再进入企业微信完成身份验证。")
	} else if err != nil {
		return nil, nil, err
	}
	return st, b, nil
}

// codeError maps a failed OAuth/tfa code redemption for the member.
func (s *Service) codeError(err error) error {
	switch {
	case WeComCode(err) == WeComInvalidCode:
		return Wrap(EEXPIRED, err, "链接已失效或已被使用，请从企业微信重新进入。")
	case WeComTemporary(err):
		return Wrap(EUNAVAILABLE, err, "企业微信系统繁忙，请稍后再试。")
	}
	return err
}

// verifyBinding checks that the verification in st can still be completed and returns the
// member's live binding. In tfa mode WeCom accepts the tfa_code for 5 minutes only (WECOM.md §4):
// after that the member must re-enter from WeCom, so the steps refuse at once rather than after
// an SMS round trip.
func (s *Service) verifyBinding(ctx context.Context, st *VerifyState) (*Binding, error) {
	if st == nil || st.UserID == "" {
		return nil, Wrap(EEXPIRED, ErrVerifyRestart, "页面已过期，请从企业微信重新进入身份验证页面。")
	}
	if st.TfaCode != "" && s.now().Sub(time.Unix(st.IssuedAt, 0)) >= tfaLifetime {
		return nil, Wrap(EEXPIRED, ErrVerifyRestart, "验证已超过企业微信规定的 5 分钟时限，请返回企业微信重新进入身份验证页面。")
	}
	b, err := s.Store.FindLiveBinding(ctx, "userid", st.UserID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "没有找到你的绑定记录，请先完成注册绑定。")
	}
	return b, err
}

// SendVerifyCode sends the verification SMS code to the bound mobile. rawMobile may be empty (the
// member taps "发送验证码到 138****0102"); a mobile that is typed must be the bound one (CONTRACT
// §7). It returns the normalised mobile once it is known to be the bound one, also with a send
// error (ETOOMANY: a code sent moments ago is still valid). A finished flow fl gets
// ErrFlowFinished and no code.
func (s *Service) SendVerifyCode(ctx context.Context, fl Flow, st *VerifyState, rawMobile, ip string) (string, error) {
	if err := s.checkFlow(ctx, fl); err != nil {
		return "", err
	}
	b, err := s.verifyBinding(ctx, st)
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(rawMobile) == "" {
		return b.Mobile, s.SendCode(ctx, b.Mobile, PurposeVerify, ip)
	}
	mobile, ok := NormalizeMobile(rawMobile)
	if !ok {
		return "", Errorf(EINVALID, msgMobileInvalid)
	}
	if mobile != b.Mobile {
		return "", Errorf(EINVALID, "填写的手机号与注册绑定时的手机号（%s）不一致，请填写注册时使用的手机号。", MaskMobile(b.Mobile))
	}
	return mobile, s.SendCode(ctx, mobile, PurposeVerify, ip)
}

// ConfirmVerify checks the SMS code, passes the member's join verification in WeCom
// (user/tfa_succ or user/authsucc) and activates the binding (one welcome message). A wrong, used
// or expired SMS code (EINVALID, EEXPIRED) comes back with the member's binding, for the code
// form to be shown again. Passing finishes fl; a finished flow gets ErrFlowFinished and no WeCom
// call.
func (s *Service) ConfirmVerify(ctx context.Context, fl Flow, st *VerifyState, code string) (*MemberBinding, error) {
	if err := s.checkFlow(ctx, fl); err != nil {
		return nil, err
	}
	b, err := s.verifyBinding(ctx, st)
	if err != nil {
		return nil, err
	}
	if err := s.CheckCode(ctx, b.Mobile, PurposeVerify, code); err != nil {
		return s.memberBinding(b), err
	}
	if s.VerifyMode == VerifyAuthSucc {
		err = s.WeCom.AuthSucc(ctx, st.UserID)
	} else {
		err = s.WeCom.TfaSucc(ctx, st.UserID, st.TfaCode)
	}
	switch {
	case WeComCode(err) == WeComUserNotFound:
		return nil, Wrap(ENOTFOUND, err, "你的企业微信账号不存在或已被删除，请重新注册绑定。")
	case WeComCode(err) == WeComInvalidCode:
		// The tfa_code was used or ran out: only a fresh start from WeCom gives a new one.
		return nil, Wrap(EEXPIRED, fmt.Errorf("%w: %w", ErrVerifyRestart, err), "本次验证已失效（企业微信的验证只能使用一次，且须在 5 分钟内完成），请返回企业微信重新进入身份验证页面。")
	case err != nil:
		return nil, s.codeError(err)
	}
	if err := s.Store.Tx(ctx, func(tx Store) error { return s.activate(ctx, tx, b.UserID, "verify") }); err != nil {
		return nil, err
	}
	s.wakeOutbox()
	s.finishFlow(ctx, fl)
	if b, err = s.Store.FindBindingByID(ctx, b.ID); err != nil {
		return nil, err
	}
	return s.memberBinding(b), nil
}
