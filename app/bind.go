package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Person is someone the school's CAS authenticated and the identity policy admitted: what the
// flow cookie carries between the bind steps.
type Person struct {
	Number     string `json:"n"`
	Name       string `json:"m"`
	Type       string `json:"t"`
	UserID     string `json:"u"`
	Department int64  `json:"d"`
	Label      string `json:"l"`
}

// Member-facing messages used by more than one step.
const (
	msgMobileInvalid  = "手机号格式不正确:请填写 11 位中国大陆手机号。"
	msgBindInProgress = "正在为你办理绑定,请稍等几秒后再次提交查看结果。"
)

// intentStale is how long an open intent may stay open before another request may resolve it by
// reading WeCom (a crashed process, a request that timed out mid-way).
const intentStale = 2 * time.Minute

// Authenticate validates a CAS ticket and applies the identity rules. A refused identity type is
// EFORBIDDEN; a bad ticket EUNAUTHORIZED; CAS down EUNAVAILABLE.
func (s *Service) Authenticate(ctx context.Context, ticket, service string) (*Person, error) {
	if ticket == "" {
		return nil, Errorf(EUNAUTHORIZED, "登录凭据缺失,请重新登录统一身份认证。")
	}
	id, err := s.CAS.Validate(ctx, ticket, service)
	if err != nil {
		return nil, err
	}
	if id.Name == "" {
		id.Name = id.Number
	}
	rule, userID, err := s.Identity.Match(*id)
	if err != nil {
		return nil, err
	}
	return &Person{Number: id.Number, Name: id.Name, Type: id.Type, UserID: userID, Department: rule.Department, Label: rule.Label}, nil
}

// LiveBindingOf returns the live binding of a number, or ENOTFOUND.
func (s *Service) LiveBindingOf(ctx context.Context, number string) (*Binding, error) {
	return s.Store.FindLiveBinding(ctx, "number", number)
}

// BindResult is the outcome of Bind: exactly one of Binding (bound now), AlreadyBound or
// Conflict is set.
type BindResult struct {
	Binding      *Binding  // created or updated now; the member was invited
	AlreadyBound *Binding  // the number already had a live binding; nothing was written
	Conflict     *Conflict // refused: the mobile or the userid is held elsewhere
}

// Conflict explains a refused bind (409) with masked evidence.
type Conflict struct {
	Message string
	// MigrateFrom is the id of this person's earlier live binding that holds the mobile: the page
	// offers 换绑 (an SMS code to that mobile).
	MigrateFrom int64
	// HolderNumber is the (masked) number holding the mobile, when it is one of ours.
	HolderNumber string
}

// Bind creates (or adopts) the WeCom member of p with mobile and stores the binding as pending.
//
// Crash safety: an intent row is written before any WeCom write and closed in the same
// transaction that inserts the binding, so a member can never exist in WeCom without a trace
// here; RepairIntents (on start-up and every minute) and later requests resolve an open intent
// by reading WeCom.
// Common path: one WeCom call (user/create with to_invite).
func (s *Service) Bind(ctx context.Context, p *Person, rawMobile string) (*BindResult, error) {
	mobile, ok := NormalizeMobile(rawMobile)
	if !ok {
		return nil, Errorf(EINVALID, msgMobileInvalid)
	}
	if b, err := s.LiveBindingOf(ctx, p.Number); err == nil {
		return &BindResult{AlreadyBound: b}, nil
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	if holder, err := s.Store.FindLiveBinding(ctx, "mobile", mobile); err == nil {
		return &BindResult{Conflict: s.mobileConflict(p, mobile, holder)}, nil
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	intent, err := s.openIntent(ctx, &Intent{Op: "create", Number: p.Number, UserID: p.UserID, Mobile: mobile,
		Name: p.Name, Type: p.Type, Department: p.Department})
	if err != nil {
		if ErrorCode(err) == ECONFLICT {
			// A concurrent request for the same number may have finished meanwhile.
			if b, berr := s.LiveBindingOf(ctx, p.Number); berr == nil {
				return &BindResult{AlreadyBound: b}, nil
			}
		}
		return nil, err
	}
	// A concurrent request may have bound the number between the check above and our intent (it
	// closes its intent in the transaction that inserts the binding, so one of the two is seen).
	if b, err := s.LiveBindingOf(ctx, p.Number); err == nil {
		if intent.Op != "migrate" {
			s.closeIntent(ctx, intent, "already_bound")
		}
		return &BindResult{AlreadyBound: b}, nil
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	// From here on WeCom is written: finish even if the member closes the page (each WeCom call
	// has its own deadline).
	return s.createMember(context.WithoutCancel(ctx), p, intent)
}

// closeIntent closes an intent whose outcome is settled; a failure is only logged (the intent is
// then resolved by RepairIntents).
func (s *Service) closeIntent(ctx context.Context, in *Intent, result string) {
	if err := s.Store.CloseIntent(ctx, in.ID, result, s.now()); err != nil && ErrorCode(err) != ECONFLICT {
		s.log().Error("close intent", "number", in.Number, "result", result, "err", err)
	}
}

// openIntent records the intent of a WeCom write for a number. If another one is open, a fresh
// one means a concurrent request (409); a stale one is resolved first; a migration waiting for
// its new member is resumed with the new request's data.
func (s *Service) openIntent(ctx context.Context, in *Intent) (*Intent, error) {
	in.CreatedAt = s.now()
	err := s.Store.CreateIntent(ctx, in)
	if err == nil {
		return in, nil
	}
	if ErrorCode(err) != ECONFLICT {
		return nil, err
	}
	open, ferr := s.Store.FindOpenIntent(ctx, in.Number)
	if ferr != nil {
		return nil, Errorf(ECONFLICT, msgBindInProgress)
	}
	if open.Op == "migrate" && open.Mobile == in.Mobile {
		return open, nil // retry of a migration whose old member is already released
	}
	if s.now().Sub(open.CreatedAt) < intentStale {
		return nil, Errorf(ECONFLICT, msgBindInProgress)
	}
	if err := s.resolveIntent(ctx, open); err != nil {
		return nil, err
	}
	if b, err := s.LiveBindingOf(ctx, in.Number); err == nil {
		return nil, &Error{Code: ECONFLICT, Message: "该学号/工号已绑定(手机号 " + MaskMobile(b.Mobile) + ")。"}
	}
	if err := s.Store.CreateIntent(ctx, in); err != nil {
		if ErrorCode(err) == ECONFLICT {
			return nil, Errorf(ECONFLICT, msgBindInProgress)
		}
		return nil, err
	}
	return in, nil
}

// mobileConflict explains that holder's live binding holds mobile; when holder is p's own earlier
// number (same name), it offers 换绑.
func (s *Service) mobileConflict(p *Person, mobile string, holder *Binding) *Conflict {
	c := &Conflict{HolderNumber: maskNumber(holder.Number)}
	if holder.Name == p.Name && holder.Number != p.Number {
		c.MigrateFrom = holder.ID
		c.Message = fmt.Sprintf("手机号 %s 已绑定你的另一个学号/工号 %s。如果你已更换学号/工号(如预科转本科、本科转研究生),可以直接换绑:向该手机号发送验证码,验证后旧账号将被解除并绑定新学号/工号。", MaskMobile(mobile), c.HolderNumber)
		return c
	}
	c.Message = fmt.Sprintf("手机号 %s 已被学号/工号 %s 绑定。一个手机号只能绑定一个身份,请更换手机号;如该号码确为你本人所有,请联系学校信息化管理部门。", MaskMobile(mobile), c.HolderNumber)
	return c
}

// createMember performs the WeCom write of intent and stores the binding.
func (s *Service) createMember(ctx context.Context, p *Person, in *Intent) (*BindResult, error) {
	member := Member{UserID: in.UserID, Name: in.Name, Mobile: in.Mobile, Department: []int64{in.Department}}
	err := s.WeCom.CreateUser(ctx, member)
	status := StatusPending
	switch code := WeComCode(err); {
	case err == nil:
	case code == WeComUserIDExists:
		return s.adoptAndComplete(ctx, in, member)
	case code == WeComMobileExists:
		return s.mobileHeldInWeCom(ctx, p, in)
	case code == WeComMobileInvalid:
		if in.Op != "migrate" {
			s.closeIntent(ctx, in, "failed") // nothing was written in WeCom
		}
		return nil, Errorf(EINVALID, "企业微信不接受该手机号,请检查后重新填写。")
	case isUnknown(err):
		// The create may have happened: read, never create blindly again.
		m, gerr := s.WeCom.GetUser(ctx, in.UserID)
		switch {
		case gerr == nil && (m.Mobile == "" || m.Mobile == in.Mobile):
			// created by our call
		case WeComCode(gerr) == WeComUserNotFound:
			return s.failIntent(ctx, in, &WeComError{Op: "user/create", Code: WeComBusy, Msg: "not created after timeout"})
		default:
			return s.failIntent(ctx, in, err)
		}
	default:
		return s.failIntent(ctx, in, err)
	}
	b, err := s.completeIntent(ctx, in, status, "bind")
	if err != nil {
		return nil, err
	}
	return &BindResult{Binding: b}, nil
}

// adoptAndComplete adopts the existing member of in's userid and stores the binding.
func (s *Service) adoptAndComplete(ctx context.Context, in *Intent, want Member) (*BindResult, error) {
	st, err := s.adoptMember(ctx, in, want)
	if err != nil {
		return s.failIntent(ctx, in, err)
	}
	b, err := s.completeIntent(ctx, in, st, "bind")
	if err != nil {
		return nil, err
	}
	return &BindResult{Binding: b}, nil
}

// adoptMember handles 60102: the userid exists in WeCom, e.g. imported by an admin. A member that
// has not joined, or joined with the same (or no) mobile, is updated and invited; one that joined
// with another mobile is refused. It returns the binding status to store, or "" with an error.
func (s *Service) adoptMember(ctx context.Context, in *Intent, want Member) (Status, error) {
	m, err := s.WeCom.GetUser(ctx, in.UserID)
	if err != nil {
		return "", err
	}
	if m.Status == 2 {
		// user/update without enable would leave it disabled: the member could never join.
		return "", Errorf(ECONFLICT, "你的企业微信账号(%s)已被停用,无法自助绑定。请联系学校信息化管理部门启用后再试。", maskNumber(m.UserID))
	}
	joined := m.Status == 1
	if joined && m.Mobile != "" && m.Mobile != in.Mobile {
		return "", Errorf(ECONFLICT, "你的账号已在企业微信中以手机号 %s 加入,与填写的 %s 不一致。请填写 %s,或在企业微信中修改手机号后再试。", MaskMobile(m.Mobile), MaskMobile(in.Mobile), MaskMobile(m.Mobile))
	}
	upd := MemberUpdate{UserID: m.UserID, Name: want.Name, Department: want.Department}
	if m.Mobile != in.Mobile {
		upd.Mobile = in.Mobile
	}
	if err := s.WeCom.UpdateUser(ctx, upd); err != nil {
		if WeComCode(err) == WeComMobileExists {
			return "", Errorf(ECONFLICT, "手机号 %s 已被企业微信中的其他成员使用,请更换手机号。", MaskMobile(in.Mobile))
		}
		return "", err
	}
	if joined {
		return StatusActive, nil
	}
	if err := s.WeCom.Invite(ctx, m.UserID); err != nil {
		s.log().Warn("invite after adopting member failed; WeCom re-invites daily", "userid", m.UserID, "err", err)
	}
	return StatusPending, nil
}

// mobileHeldInWeCom handles 60104: WeCom knows the mobile but our bindings do not hold it. Only
// now is user/getuserid asked (a hit, not a speculative miss).
func (s *Service) mobileHeldInWeCom(ctx context.Context, p *Person, in *Intent) (*BindResult, error) {
	if in.Op == "migrate" {
		// The released member still holds the mobile in WeCom: keep the intent for the retry.
		return nil, Errorf(EUNAVAILABLE, "旧账号正在释放中,请稍后点击“重试”完成换绑。")
	}
	c := &Conflict{Message: fmt.Sprintf("手机号 %s 已被企业微信中的其他成员使用。一个手机号只能对应一个成员,请更换手机号;如有疑问,请联系学校信息化管理部门。", MaskMobile(in.Mobile))}
	holderID, err := s.WeCom.UserIDByMobile(ctx, in.Mobile)
	if err == nil && strings.EqualFold(holderID, in.UserID) {
		// Our own userid holds the mobile (WeCom checked the mobile first): adopt it as on 60102.
		return s.adoptAndComplete(ctx, in, Member{UserID: in.UserID, Name: in.Name, Mobile: in.Mobile, Department: []int64{in.Department}})
	}
	s.closeIntent(ctx, in, "mobile_taken") // nothing was written in WeCom
	if err != nil {
		s.log().Warn("getuserid after 60104", "mobile", MaskMobile(in.Mobile), "err", err)
		return &BindResult{Conflict: c}, nil
	}
	if holder, err := s.Store.FindLiveBinding(ctx, "userid", holderID); err == nil {
		return &BindResult{Conflict: s.mobileConflict(p, in.Mobile, holder)}, nil
	}
	c.HolderNumber = maskNumber(holderID)
	c.Message = fmt.Sprintf("手机号 %s 已被企业微信成员(账号 %s)使用,该成员不是通过本系统绑定的。请更换手机号,或联系学校信息化管理部门处理。", MaskMobile(in.Mobile), c.HolderNumber)
	return &BindResult{Conflict: c}, nil
}

// completeIntent stores the binding of a successful WeCom write and closes the intent in one
// transaction; a migration also links the released binding to the new one.
func (s *Service) completeIntent(ctx context.Context, in *Intent, status Status, actor string) (*Binding, error) {
	b := &Binding{Number: in.Number, UserID: in.UserID, Mobile: in.Mobile, Name: in.Name, Type: in.Type,
		Department: in.Department, Status: status}
	err := s.Store.Tx(ctx, func(tx Store) error {
		detail := "member created and invited"
		if status == StatusActive {
			detail = "member adopted (already joined)"
		}
		var old *Binding
		if in.MigrateFrom != 0 {
			var err error
			if old, err = tx.FindBindingByID(ctx, in.MigrateFrom); err != nil {
				return err
			}
			if old.Status.Live() {
				// Its member is gone (the new one could not be created otherwise): release the
				// mobile here too, so that the new binding can hold it.
				if _, err := tx.UpdateBinding(ctx, old.ID, migratedUpdate(in.Number), migratedEvent(old.Number, in.Number, in.Mobile, actor)); err != nil {
					return err
				}
			}
			detail = fmt.Sprintf("换绑 %s -> %s: %s", old.Number, in.Number, detail)
		}
		if err := tx.CreateBinding(ctx, b, Event{Kind: EventBound, Actor: actorOf(actor), Detail: detail + ", mobile " + MaskMobile(in.Mobile)}); err != nil {
			return err
		}
		if old != nil {
			if _, err := tx.UpdateBinding(ctx, old.ID, BindingUpdate{MigratedTo: Ptr(b.ID)},
				Event{Kind: EventMigrated, Actor: actorOf(actor), Detail: fmt.Sprintf("换绑 %s -> %s completed: new binding %d", old.Number, in.Number, b.ID)}); err != nil {
				return err
			}
		}
		return tx.CloseIntent(ctx, in.ID, "bound", s.now())
	})
	if ErrorCode(err) == ECONFLICT {
		// A concurrent request (or the repair) stored this very binding first.
		if live, lerr := s.LiveBindingOf(ctx, in.Number); lerr == nil && strings.EqualFold(live.UserID, in.UserID) {
			s.closeIntent(ctx, in, "already_bound")
			return live, nil
		}
	}
	if err != nil {
		// The member exists in WeCom; the intent stays open and is repaired later.
		return nil, fmt.Errorf("app: store binding of %s: %w", in.Number, err)
	}
	s.log().Info("bound", "number", in.Number, "userid", in.UserID, "mobile", MaskMobile(in.Mobile), "status", status)
	return b, nil
}

// failIntent closes an intent whose WeCom write certainly did not happen and maps err for the
// member: temporary WeCom trouble is 503 系统繁忙; an *Error passes through.
func (s *Service) failIntent(ctx context.Context, in *Intent, err error) (*BindResult, error) {
	code := ErrorCode(err)
	if isUnknown(err) || (in.Op == "migrate" && (code == EINTERNAL || code == EUNAVAILABLE)) {
		// Still unknown even after reading, or a migration whose old member is already released
		// and WeCom failed: leave the intent open for the repair or the member's retry.
		return nil, Wrap(EUNAVAILABLE, err, "企业微信系统繁忙,请稍后重试。")
	}
	// A refusal (an *Error such as a member who joined with another mobile) ends the attempt; a
	// migration then ends with the old member released, and the member binds anew.
	s.closeIntent(ctx, in, "failed")
	if code != EINTERNAL {
		return nil, err
	}
	if WeComTemporary(err) {
		return nil, Wrap(EUNAVAILABLE, err, "企业微信系统繁忙,请稍后再试。")
	}
	return nil, Wrap(EUNAVAILABLE, err, "创建企业微信账号失败,请稍后再试;如多次失败,请联系学校信息化管理部门。")
}

// RepairIntents resolves intents left open longer than intentStale (a crash or a lost answer
// between the WeCom write and the binding insert) by reading WeCom: a member that exists gets its
// binding; one that does not closes the intent, except a 换绑 whose old member is already
// released, which is finished by creating the new member. It never creates a member blindly and
// never touches a number that already has a live binding. It returns how many it resolved.
func (s *Service) RepairIntents(ctx context.Context) (int, error) {
	open, err := s.Store.FindOpenIntents(ctx, s.now().Add(-intentStale))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range open {
		if err := s.resolveIntent(ctx, in); err != nil {
			s.log().Warn("repair intent", "number", in.Number, "err", err)
			continue
		}
		n++
	}
	return n, nil
}

// resolveIntent settles a stale open intent by reading WeCom: the binding is stored if the member
// exists, the intent closed if it does not (a 换绑 is resumed instead).
func (s *Service) resolveIntent(ctx context.Context, in *Intent) error {
	if _, err := s.LiveBindingOf(ctx, in.Number); err == nil {
		return s.Store.CloseIntent(ctx, in.ID, "already_bound", s.now())
	} else if ErrorCode(err) != ENOTFOUND {
		return err
	}
	m, err := s.WeCom.GetUser(ctx, in.UserID)
	switch {
	case WeComCode(err) == WeComUserNotFound:
		if in.Op == "migrate" {
			return s.resumeMigrationIntent(ctx, in)
		}
		return s.Store.CloseIntent(ctx, in.ID, "not_created", s.now())
	case err != nil:
		return err
	}
	status := StatusPending
	if m.Status == 1 {
		status = StatusActive
	}
	if m.Mobile != "" && m.Mobile != in.Mobile {
		in.Mobile = m.Mobile
	}
	_, err = s.completeIntent(ctx, in, status, ActorSystem)
	return err
}

// isUnknown reports whether err is a WeCom call whose outcome is unknown (timeout, transport).
func isUnknown(err error) bool {
	var we *WeComError
	return errors.As(err, &we) && we.Unknown
}

// actorOf maps the actor of a step to the audit actor: system and admin stay, anything else is
// the member.
func actorOf(a string) string {
	if a == ActorSystem || a == ActorAdmin {
		return a
	}
	return ActorMember
}

// maskNumber hides the middle of a school number: 2021123456 -> 20******56.
func maskNumber(n string) string {
	if len(n) <= 4 {
		return strings.Repeat("*", len(n))
	}
	return n[:2] + strings.Repeat("*", len(n)-4) + n[len(n)-2:]
}
