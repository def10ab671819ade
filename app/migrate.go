package app

import (
	"context"
	"fmt"
)

// checkMigration loads the binding p wants to take over and checks that it is p's own earlier
// binding holding mobile (same name, another number, live).
func (s *Service) checkMigration(ctx context.Context, p *Person, fromID int64, mobile string) (*Binding, error) {
	old, err := s.Store.FindBindingByID(ctx, fromID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ECONFLICT, "未找到要换绑的原绑定记录,请重新开始注册绑定。")
	} else if err != nil {
		return nil, err
	}
	if old.Mobile != mobile || old.Name != p.Name || old.Number == p.Number {
		return nil, Errorf(EFORBIDDEN, "该手机号绑定的不是你本人的其他学号/工号,不能换绑。")
	}
	return old, nil
}

// SendMigrateCode sends the 换绑 SMS code to the mobile of p's earlier binding fromID.
func (s *Service) SendMigrateCode(ctx context.Context, p *Person, fromID int64, mobile, ip string) error {
	old, err := s.checkMigration(ctx, p, fromID, mobile)
	if err != nil {
		return err
	}
	if !old.Status.Live() {
		return Errorf(ECONFLICT, "原绑定(学号/工号 %s)已解除,请直接重新提交手机号完成绑定。", maskNumber(old.Number))
	}
	return s.SendCode(ctx, mobile, PurposeMigrate, ip)
}

// Migrate (换绑) releases p's earlier binding fromID and binds p's new number with its mobile, after
// the SMS code proves the mobile. Steps: code → intent → user/delete of the old member → old
// binding migrated → user/create of the new member → new binding pending, linked from the old.
// If WeCom fails after the delete, the intent stays open and calling Migrate again (code not
// needed any more) completes it.
func (s *Service) Migrate(ctx context.Context, p *Person, fromID int64, mobile, code string) (*BindResult, error) {
	old, err := s.checkMigration(ctx, p, fromID, mobile)
	if err != nil {
		return nil, err
	}
	if !old.Status.Live() {
		return s.resumeMigration(ctx, p, old)
	}
	if err := s.CheckCode(ctx, mobile, PurposeMigrate, code); err != nil {
		return nil, err
	}
	in, err := s.openIntent(ctx, &Intent{Op: "migrate", Number: p.Number, UserID: p.UserID, Mobile: mobile,
		Name: p.Name, Type: p.Type, Department: p.Department, MigrateFrom: old.ID})
	if err != nil {
		return nil, err
	}
	if err := s.WeCom.DeleteUser(ctx, old.UserID); err != nil && WeComCode(err) != WeComUserNotFound {
		if cerr := s.Store.CloseIntent(ctx, in.ID, "failed", s.now()); cerr != nil {
			s.log().Error("close intent", "number", in.Number, "err", cerr)
		}
		return nil, Wrap(EUNAVAILABLE, err, "企业微信系统繁忙,原账号未能解除,请稍后再试。")
	}
	_, err = s.Store.UpdateBinding(ctx, old.ID, BindingUpdate{
		Status:   Ptr(StatusMigrated),
		Reason:   Ptr("换绑至 " + p.Number),
		IfStatus: []Status{StatusPending, StatusActive},
	}, Event{Kind: EventMigrated, Actor: ActorMember, Detail: fmt.Sprintf("换绑 %s -> %s, mobile %s", old.Number, p.Number, MaskMobile(mobile))})
	if err != nil && ErrorCode(err) != ECONFLICT {
		return nil, err
	}
	return s.createMember(ctx, p, in)
}

// resumeMigration finishes a migration whose old member is already released.
func (s *Service) resumeMigration(ctx context.Context, p *Person, old *Binding) (*BindResult, error) {
	if b, err := s.LiveBindingOf(ctx, p.Number); err == nil {
		return &BindResult{AlreadyBound: b}, nil
	}
	in, err := s.Store.FindOpenIntent(ctx, p.Number)
	if err != nil || in.Op != "migrate" || in.MigrateFrom != old.ID {
		return nil, Errorf(ECONFLICT, "原绑定(学号/工号 %s)已解除,请直接重新提交手机号完成绑定。", maskNumber(old.Number))
	}
	return s.createMember(ctx, p, in)
}
