package app

import (
	"context"
	"fmt"
)

// BindingFromCode redeems a WeCom OAuth code (snsapi_base) and returns the member's live binding
// (its UserID is the member's). A visitor who is not a member of the corp, or a member without a
// binding, gets ENOTFOUND with a page text.
func (s *Service) BindingFromCode(ctx context.Context, code string) (*MemberBinding, error) {
	userID, err := s.memberFromCode(ctx, code)
	if err != nil {
		return nil, err
	}
	b, err := s.bindingOfMember(ctx, userID)
	if err != nil {
		return nil, err
	}
	return s.memberBinding(b), nil
}

// memberFromCode redeems a WeCom OAuth code for the member's userid; a visitor who is not a
// member of the corp gets ENOTFOUND.
func (s *Service) memberFromCode(ctx context.Context, code string) (string, error) {
	userID, err := s.UserFromCode(ctx, code)
	if err == nil && userID == "" {
		return "", errVisitor()
	}
	return userID, err
}

// bindingOfMember returns the live binding of a WeCom member, or ENOTFOUND with a page text.
func (s *Service) bindingOfMember(ctx context.Context, userID string) (*Binding, error) {
	b, err := s.Store.FindLiveBinding(ctx, "userid", userID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "你的企业微信账号没有通过本系统绑定的学号/工号。如有疑问，请联系学校信息化管理部门。")
	}
	return b, err
}

// SendUnbindCode sends the unbind SMS code to the member's bound mobile. The binding comes back
// also with a send error (ETOOMANY: a code sent moments ago is still valid). A finished flow fl
// gets ErrFlowFinished and no code.
func (s *Service) SendUnbindCode(ctx context.Context, fl Flow, userID, ip string) (*MemberBinding, error) {
	if err := s.checkFlow(ctx, fl); err != nil {
		return nil, err
	}
	b, err := s.bindingOfMember(ctx, userID)
	if err != nil {
		return nil, err
	}
	return s.memberBinding(b), s.SendCode(ctx, b.Mobile, PurposeUnbind, ip)
}

// Unbind checks the SMS code, deletes the member in WeCom and marks the binding unbound. A member
// already gone in WeCom (60111) is still marked unbound. A wrong, used or expired SMS code
// (EINVALID, EEXPIRED) comes back with the binding, for the code form to be shown again.
// Unbinding finishes fl; a finished flow gets ErrFlowFinished and no WeCom call.
func (s *Service) Unbind(ctx context.Context, fl Flow, userID, code string) (*MemberBinding, error) {
	if err := s.checkFlow(ctx, fl); err != nil {
		return nil, err
	}
	b, err := s.bindingOfMember(ctx, userID)
	if err != nil {
		return nil, err
	}
	if err := s.CheckCode(ctx, b.Mobile, PurposeUnbind, code); err != nil {
		return s.memberBinding(b), err
	}
	if b, err = s.release(ctx, b, ActorMember, "unbound by member", ""); err != nil {
		return nil, err
	}
	s.finishFlow(ctx, fl)
	return s.memberBinding(b), nil
}

// AdminUnbind releases the live binding of number from the CLI.
func (s *Service) AdminUnbind(ctx context.Context, number, reason string) (*Binding, error) {
	b, err := s.liveBindingOf(ctx, number)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "学号/工号 %s 没有生效中的绑定", number)
	} else if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "unbound by admin"
	}
	return s.release(ctx, b, ActorAdmin, reason, "")
}

// release deletes b's member in WeCom (one already gone counts as deleted) and marks b unbound
// with reason; a binding released concurrently is returned as it is now. by, when not "", is the
// console user who did it, named in the audit event.
func (s *Service) release(ctx context.Context, b *Binding, actor, reason, by string) (*Binding, error) {
	if err := s.WeCom.DeleteUser(ctx, b.UserID); err != nil && WeComCode(err) != WeComUserNotFound {
		if WeComTemporary(err) {
			return nil, Wrap(EUNAVAILABLE, err, "企业微信系统繁忙，解除绑定未完成，请稍后再试。")
		}
		return nil, Wrap(EUNAVAILABLE, err, "企业微信未能删除该成员，解除绑定未完成，请稍后再试或联系学校信息化管理部门。")
	}
	out, err := s.Store.UpdateBinding(ctx, b.ID, BindingUpdate{
		Status:   Ptr(StatusUnbound),
		Reason:   Ptr(reason),
		IfStatus: []Status{StatusPending, StatusActive},
	}, Event{Kind: EventUnbound, Actor: actor, Detail: releaseDetail(b, reason, by)})
	if ErrorCode(err) == ECONFLICT {
		return s.Store.FindBindingByID(ctx, b.ID) // released concurrently (callback or another tab)
	}
	if err != nil {
		return nil, err
	}
	s.log().Info("unbound", "number", b.Number, "userid", b.UserID, "actor", actor)
	return out, nil
}

// releaseDetail is the audit detail of a release.
func releaseDetail(b *Binding, reason, by string) string {
	d := fmt.Sprintf("%s; member %s deleted in WeCom", reason, b.UserID)
	if by != "" {
		d += " [admin " + by + "]"
	}
	return d
}
