package app

import (
	"context"
	"time"
)

// Read-only use cases of the member pages: after each step the HTTP layer redirects to a GET
// page (post/redirect/get, CONTRACT §7) that shows the flow's current step from what is stored,
// so that reloading it, or coming back to it, repeats nothing.

// BindState returns number's live binding as the bind pages show it (AlreadyBound, with the
// join QR code while it is pending), or nil, nil when the number has none.
func (s *Service) BindState(ctx context.Context, number string) (*BindResult, error) {
	b, err := s.liveBindingOf(ctx, number)
	switch ErrorCode(err) {
	case "":
		return s.withQRCode(ctx, s.alreadyBound(b)), nil
	case ENOTFOUND:
		return nil, nil
	}
	return nil, err
}

// RebindOffer is the 换绑 offer Bind made to p for mobile, held by p's earlier binding fromID,
// as stored now: the same Conflict, or ECONFLICT when that binding was released since.
func (s *Service) RebindOffer(ctx context.Context, p *Person, fromID int64, mobile string) (*Conflict, error) {
	old, err := s.checkRebind(ctx, p, fromID, mobile)
	if err != nil {
		return nil, err
	}
	if !old.Status.Live() {
		return nil, errOldReleased(old)
	}
	return s.mobileConflict(p.Name, p.Key, p.Number, mobile, old), nil
}

// UserFromCode redeems a WeCom OAuth code (snsapi_base) for the member's userid; "" for a
// visitor who is not a member of the corp.
func (s *Service) UserFromCode(ctx context.Context, code string) (string, error) {
	if code == "" {
		return "", Errorf(EINVALID, "缺少授权参数，请从企业微信重新进入。")
	}
	userID, _, err := s.WeCom.UserFromCode(ctx, code)
	if err != nil {
		return "", s.codeError(err)
	}
	return userID, nil
}

// MemberBindingOf returns the live binding of the WeCom member userID, as UserFromCode gave it:
// a visitor ("") or a member without a binding gets ENOTFOUND with a page text.
func (s *Service) MemberBindingOf(ctx context.Context, userID string) (*MemberBinding, error) {
	if userID == "" {
		return nil, errVisitor()
	}
	b, err := s.bindingOfMember(ctx, userID)
	if err != nil {
		return nil, err
	}
	return s.memberBinding(b), nil
}

// BindingByID returns binding id whatever its status, as the member pages show it (the
// finished state of an unbind).
func (s *Service) BindingByID(ctx context.Context, id int64) (*MemberBinding, error) {
	b, err := s.Store.FindBindingByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.memberBinding(b), nil
}

// VerifyProgress returns the member's binding for the join verification in st while it can
// still be completed: after WeCom's 5 minutes it is EEXPIRED with ErrVerifyRestart.
func (s *Service) VerifyProgress(ctx context.Context, st *VerifyState) (*MemberBinding, error) {
	b, err := s.verifyBinding(ctx, st)
	if err != nil {
		return nil, err
	}
	return s.memberBinding(b), nil
}

// CodeState is what a code page says about the latest SMS code of a mobile for a purpose.
type CodeState struct {
	Usable    bool          // a code was delivered and can still be entered
	Expired   bool          // the latest code ran out of time unused
	Exhausted bool          // the latest code took too many wrong guesses: even the right one is refused
	Left      time.Duration // how long the latest code stays valid, when Usable
	// Wait is how long the cooldown still holds back another code to the mobile (any purpose);
	// 0 when one may be sent now (the daily caps are not looked at).
	Wait time.Duration
}

// CodeState describes the latest code sent to mobile for purpose, and the cooldown on mobile.
func (s *Service) CodeState(ctx context.Context, mobile string, purpose Purpose) (*CodeState, error) {
	p := s.SMSPolicy.withDefaults()
	now := s.now()
	st := &CodeState{}
	last, err := s.Store.LatestSMSCode(ctx, mobile, "")
	switch ErrorCode(err) {
	case "":
		if wait := last.CreatedAt.Add(p.Cooldown).Sub(now); wait > 0 && !undelivered(last) {
			st.Wait = wait
		}
	case ENOTFOUND:
		return st, nil
	default:
		return nil, err
	}
	c, err := s.Store.LatestSMSCode(ctx, mobile, purpose)
	switch ErrorCode(err) {
	case "":
	case ENOTFOUND:
		return st, nil
	default:
		return nil, err
	}
	switch {
	case undelivered(c), c.UsedAt != nil:
	case !now.Before(c.ExpiresAt):
		st.Expired = true
	case c.Attempts >= p.MaxAttempts:
		st.Exhausted = true
	default:
		st.Usable, st.Left = true, c.ExpiresAt.Sub(now)
	}
	return st, nil
}

// undelivered reports whether c is a code the provider failed to send: it was marked used at
// once, and holds nobody back.
func undelivered(c *SMSCode) bool { return c.UsedAt != nil && !c.UsedAt.After(c.CreatedAt) }

// errVisitor answers a visitor who is not a member of the corp.
func errVisitor() error {
	return Errorf(ENOTFOUND, "你还不是本单位企业微信成员，没有通过本系统绑定的学号/工号。如需加入，请先完成注册绑定。")
}
