package app

import (
	"context"
	"fmt"
)

// msgOldNotReleased answers a 换绑 whose old member WeCom has not deleted yet.
const msgOldNotReleased = "企业微信系统繁忙,原账号暂未解除,请稍后点击“重试”。"

// errOldReleased refuses a 换绑 from a binding that was released meanwhile: the number is free,
// so a plain bind does it.
func errOldReleased(old *Binding) error {
	return Errorf(ECONFLICT, "原绑定(学号/工号 %s)已解除,请直接重新提交手机号完成绑定。", maskNumber(old.Number))
}

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
		return errOldReleased(old)
	}
	return s.SendCode(ctx, mobile, PurposeMigrate, ip)
}

// Migrate (换绑) releases p's earlier binding fromID and binds p's new number with its mobile, after
// the SMS code proves the mobile. Steps: code → intent → user/delete of the old member → old
// binding migrated → user/create of the new member → new binding pending, linked from the old.
//
// Once the code was accepted the migration is recorded as an open intent: if WeCom fails on the
// way, calling Migrate again (the code is not needed any more) continues where it stopped, and
// RepairIntents finishes a migration the member abandons after the old member was released.
func (s *Service) Migrate(ctx context.Context, p *Person, fromID int64, mobile, code string) (*BindResult, error) {
	old, err := s.checkMigration(ctx, p, fromID, mobile)
	if err != nil {
		return nil, err
	}
	if b, err := s.LiveBindingOf(ctx, p.Number); err == nil {
		return &BindResult{AlreadyBound: b}, nil // e.g. a second click after success
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	if in := s.openMigration(ctx, p, old.ID); in != nil {
		return s.continueMigration(context.WithoutCancel(ctx), p, old, in)
	}
	if !old.Status.Live() {
		return nil, errOldReleased(old)
	}
	if err := s.CheckCode(ctx, mobile, PurposeMigrate, code); err != nil {
		return nil, err
	}
	in, err := s.openIntent(ctx, &Intent{Op: "migrate", Number: p.Number, UserID: p.UserID, Mobile: mobile,
		Name: p.Name, Type: p.Type, Department: p.Department, MigrateFrom: old.ID})
	if err != nil {
		return nil, err
	}
	s.log().Info("migration started", "from", old.Number, "to", p.Number, "mobile", MaskMobile(mobile))
	return s.continueMigration(context.WithoutCancel(ctx), p, old, in)
}

// MigrationPending reports whether p's 换绑 from binding fromID was confirmed with a code and is
// waiting to be continued: calling Migrate again (without a code) retries it.
func (s *Service) MigrationPending(ctx context.Context, p *Person, fromID int64) bool {
	return s.openMigration(ctx, p, fromID) != nil
}

// openMigration returns the open migrate intent of p's number from binding fromID, or nil.
func (s *Service) openMigration(ctx context.Context, p *Person, fromID int64) *Intent {
	in, err := s.Store.FindOpenIntent(ctx, p.Number)
	if err != nil || in.Op != "migrate" || in.MigrateFrom != fromID {
		return nil
	}
	return in
}

// continueMigration performs the WeCom steps of an open migrate intent that are not done yet.
// Every failure leaves the intent open, so a retry (or the repair) continues from here.
func (s *Service) continueMigration(ctx context.Context, p *Person, old *Binding, in *Intent) (*BindResult, error) {
	if old.Status.Live() {
		gone, err := s.releaseMember(ctx, old.UserID)
		if err != nil {
			return nil, Wrap(EUNAVAILABLE, err, msgOldNotReleased)
		}
		if !gone {
			return nil, Errorf(EUNAVAILABLE, msgOldNotReleased)
		}
		if err := s.markMigrated(ctx, old, in, ActorMember); err != nil {
			return nil, err
		}
	}
	return s.createMember(ctx, p, in)
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

func migratedUpdate(newNumber string) BindingUpdate {
	return BindingUpdate{Status: Ptr(StatusMigrated), Reason: Ptr("换绑至 " + newNumber), IfStatus: []Status{StatusPending, StatusActive}}
}

func migratedEvent(oldNumber, newNumber, mobile, actor string) Event {
	return Event{Kind: EventMigrated, Actor: actorOf(actor),
		Detail: fmt.Sprintf("换绑 %s -> %s: old member released, mobile %s", oldNumber, newNumber, MaskMobile(mobile))}
}

// markMigrated records that the old member of a migration is released.
func (s *Service) markMigrated(ctx context.Context, old *Binding, in *Intent, actor string) error {
	_, err := s.Store.UpdateBinding(ctx, old.ID, migratedUpdate(in.Number), migratedEvent(old.Number, in.Number, in.Mobile, actor))
	if err != nil && ErrorCode(err) != ECONFLICT { // ECONFLICT: already released by a concurrent retry
		return err
	}
	return nil
}

// resumeMigrationIntent is the repair of a migrate intent whose new member does not exist: if the
// old member was never released the migration is abandoned (nothing happened); otherwise the old
// binding is marked released and the new member created, as the member asked with a valid code.
func (s *Service) resumeMigrationIntent(ctx context.Context, in *Intent) error {
	old, err := s.Store.FindBindingByID(ctx, in.MigrateFrom)
	if err != nil {
		return err
	}
	if old.Status.Live() {
		gone, err := s.memberGone(ctx, old.UserID)
		if err != nil {
			return err
		}
		if !gone {
			return s.Store.CloseIntent(ctx, in.ID, "not_released", s.now())
		}
		if err := s.markMigrated(ctx, old, in, ActorSystem); err != nil {
			return err
		}
	}
	_, err = s.createMember(ctx, nil, in)
	return err
}
