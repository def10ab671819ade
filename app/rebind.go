package app

import (
	"context"
	"errors"
	"fmt"
)

// ErrRebindPending is the cause of a Rebind error after the SMS code was accepted and the 换绑
// recorded: calling Rebind again (without a code) continues it. Check with errors.Is; the *Error
// around it (EUNAVAILABLE) carries the member-facing text.
var ErrRebindPending = errors.New("app: the rebind is recorded; a retry continues it")

// msgOldNotReleased answers a 换绑 whose old member WeCom has not deleted yet.
const msgOldNotReleased = "企业微信系统繁忙，原账号暂未解除，请稍后点击“重试”。"

// errOldReleased refuses a 换绑 from a binding that was released meanwhile: the number is free,
// so a plain bind does it.
func errOldReleased(old *Binding) error {
	return Errorf(ECONFLICT, "原绑定（学号/工号 %s）已解除，请直接重新提交手机号完成绑定。", MaskNumber(old.Number))
}

// checkRebind loads the binding p wants to take over and checks that it is p's own earlier
// binding holding mobile (samePerson: the same person id, or name without one; another number).
func (s *Service) checkRebind(ctx context.Context, p *Person, fromID int64, mobile string) (*Binding, error) {
	old, err := s.Store.FindBindingByID(ctx, fromID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ECONFLICT, "未找到要换绑的原绑定记录，请重新开始注册绑定。")
	} else if err != nil {
		return nil, err
	}
	if old.Mobile != mobile || !s.samePerson(p.Name, p.Key, p.Number, old) {
		return nil, Errorf(EFORBIDDEN, "该手机号绑定的不是你本人的其他学号/工号，不能换绑。")
	}
	return old, nil
}

// SendRebindCode sends the 换绑 SMS code to the mobile of p's earlier binding fromID. A finished
// flow fl gets ErrFlowFinished and no code.
func (s *Service) SendRebindCode(ctx context.Context, fl Flow, p *Person, fromID int64, mobile, ip string) error {
	if err := s.checkFlow(ctx, fl); err != nil {
		return err
	}
	old, err := s.checkRebind(ctx, p, fromID, mobile)
	if err != nil {
		return err
	}
	if !old.Status.Live() {
		return errOldReleased(old)
	}
	err = s.sendCode(ctx, codeRequest{mobile: mobile, purpose: PurposeRebind, ip: ip,
		rebind: &rebindRequest{requester: p.Number, from: old.Number}})
	if err != nil {
		return err
	}
	// The holder's trail names who asked for a code to their mobile.
	ev := Event{BindingID: old.ID, Kind: EventRebindCode, Actor: ActorMember, Number: old.Number, UserID: old.UserID,
		Detail: fmt.Sprintf("换绑验证码已发送至 %s，申请人学号/工号 %s", MaskMobile(mobile), p.Number)}
	if err := s.Store.AppendEvent(ctx, ev); err != nil {
		s.log().Warn("audit rebind code", "number", old.Number, "err", err)
	}
	return nil
}

// Rebind (换绑) releases p's earlier binding fromID and binds p's new number with its mobile,
// after the SMS code proves the mobile. Steps: code → intent (OpRebind) → user/delete of the old
// member → old binding rebound → user/create of the new member → new binding pending, linked from
// the old.
//
// Once the code was accepted the 换绑 is recorded as an open intent: if WeCom fails on the way,
// the error wraps ErrRebindPending and calling Rebind again (the code is not needed any more)
// continues where it stopped; RepairIntents finishes a 换绑 the member abandons after the old
// member was released.
//
// A completed 换绑 finishes fl; a step of a finished flow writes nothing (as in Bind).
func (s *Service) Rebind(ctx context.Context, fl Flow, p *Person, fromID int64, mobile, code string) (*BindResult, error) {
	if res, err := s.finishedBind(ctx, fl, p); res != nil || err != nil {
		return res, err
	}
	res, err := s.rebind(ctx, p, fromID, mobile, code)
	if (ErrorCode(err) == EUNAVAILABLE || errors.Is(err, errClaimLost)) && s.openRebind(ctx, p, fromID) != nil {
		// Recorded and not finished (WeCom failed, or another request is on it): a retry
		// continues it.
		return nil, &Error{Code: EUNAVAILABLE, Message: ErrorMessage(err), Err: withCause(err, ErrRebindPending)}
	}
	if err != nil {
		return nil, err
	}
	if res.Binding != nil {
		s.finishFlow(ctx, fl)
	}
	return s.withQRCode(ctx, res), nil
}

func (s *Service) rebind(ctx context.Context, p *Person, fromID int64, mobile, code string) (*BindResult, error) {
	old, err := s.checkRebind(ctx, p, fromID, mobile)
	if err != nil {
		return nil, err
	}
	if b, err := s.liveBindingOf(ctx, p.Number); err == nil {
		return s.alreadyBound(b), nil // e.g. a second click after success
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	if in := s.openRebind(ctx, p, old.ID); in != nil {
		if err := s.claimIntent(ctx, in); err != nil {
			return nil, err
		}
		return s.continueRebind(context.WithoutCancel(ctx), old, in)
	}
	if !old.Status.Live() {
		return nil, errOldReleased(old)
	}
	if err := s.CheckCode(ctx, mobile, PurposeRebind, code); err != nil {
		return nil, err
	}
	in, err := s.openIntent(ctx, &Intent{Op: OpRebind, Number: p.Number, UserID: p.UserID, Mobile: mobile,
		Name: p.Name, Type: p.Type, Department: p.Department, RebindFrom: old.ID, PersonKey: p.Key})
	if err != nil {
		return nil, err
	}
	s.log().Info("rebind started", "from", old.Number, "to", p.Number, "mobile", MaskMobile(mobile))
	return s.continueRebind(context.WithoutCancel(ctx), old, in)
}

// withCause returns err (an *Error) with cause added to its chain, keeping its code and message.
func withCause(err, cause error) error {
	var e *Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	if e.Err == nil {
		return &Error{Code: e.Code, Message: e.Message, Err: cause}
	}
	return &Error{Code: e.Code, Message: e.Message, Err: fmt.Errorf("%w: %w", cause, e.Err)}
}

// openRebind returns the open OpRebind intent of p's number from binding fromID, or nil.
func (s *Service) openRebind(ctx context.Context, p *Person, fromID int64) *Intent {
	in, err := s.Store.FindOpenIntent(ctx, p.Number)
	if err != nil || in.Op != OpRebind || in.RebindFrom != fromID {
		return nil
	}
	return in
}

// continueRebind performs the WeCom steps of an open OpRebind intent, claimed by this request,
// that are not done yet. Every failure leaves the intent open (its claim released), so a retry
// (or the repair) continues from here.
func (s *Service) continueRebind(ctx context.Context, old *Binding, in *Intent) (*BindResult, error) {
	if old.Status.Live() {
		if err := s.holdIntent(ctx, in); err != nil {
			return nil, s.keepOpen(ctx, in, err)
		}
		gone, err := s.releaseMember(ctx, old.UserID)
		if err != nil {
			return nil, s.keepOpen(ctx, in, Wrap(EUNAVAILABLE, err, msgOldNotReleased))
		}
		if !gone {
			return nil, s.keepOpen(ctx, in, Errorf(EUNAVAILABLE, msgOldNotReleased))
		}
		if err := s.markRebound(ctx, old, in, ActorMember); err != nil {
			return nil, s.keepOpen(ctx, in, err)
		}
	}
	return s.createMember(ctx, in)
}

// releaseMember deletes a member and reports whether it is gone. A delete whose outcome is
// unknown is resolved by reading.
func (s *Service) releaseMember(ctx context.Context, userID string) (bool, error) {
	err := s.WeCom.DeleteUser(ctx, userID)
	if err == nil || WeComCode(err) == WeComUserNotFound {
		return true, nil
	}
	if !isUnknown(err) {
		return false, err
	}
	return s.memberGone(ctx, userID)
}

// memberGone reads WeCom: true when userID does not exist.
func (s *Service) memberGone(ctx context.Context, userID string) (bool, error) {
	_, err := s.WeCom.GetUser(ctx, userID)
	switch {
	case err == nil:
		return false, nil
	case WeComCode(err) == WeComUserNotFound:
		return true, nil
	}
	return false, err
}

func reboundUpdate(newNumber string) BindingUpdate {
	return BindingUpdate{Status: Ptr(StatusRebound), Reason: Ptr("换绑至 " + newNumber), IfStatus: []Status{StatusPending, StatusActive}}
}

func reboundEvent(oldNumber, newNumber, mobile, actor string) Event {
	return Event{Kind: EventRebound, Actor: actorOf(actor),
		Detail: fmt.Sprintf("换绑 %s -> %s: old member released, mobile %s", oldNumber, newNumber, MaskMobile(mobile))}
}

// markRebound records that the old member of a 换绑 is released.
func (s *Service) markRebound(ctx context.Context, old *Binding, in *Intent, actor string) error {
	_, err := s.Store.UpdateBinding(ctx, old.ID, reboundUpdate(in.Number), reboundEvent(old.Number, in.Number, in.Mobile, actor))
	if err != nil && ErrorCode(err) != ECONFLICT { // ECONFLICT: already released by a concurrent retry
		return err
	}
	return nil
}

// resumeRebind is the repair of a claimed OpRebind intent whose new member does not exist: if the
// old member was never released the 换绑 is abandoned (nothing happened); otherwise the old
// binding is marked rebound and the new member created, as the member asked with a valid code
// (once a late create of an earlier try is ruled out).
func (s *Service) resumeRebind(ctx context.Context, in *Intent) error {
	old, err := s.Store.FindBindingByID(ctx, in.RebindFrom)
	if err != nil {
		return err
	}
	if old.Status.Live() {
		gone, err := s.memberGone(ctx, old.UserID)
		if err != nil {
			return err
		}
		if !gone {
			return s.Store.CloseIntent(ctx, in.ID, resultNotReleased, s.now())
		}
		if err := s.markRebound(ctx, old, in, ActorSystem); err != nil {
			return err
		}
	}
	_, err = s.createMember(ctx, in)
	return err
}
