package app

import (
	"context"
	"fmt"
	"strings"
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
	// Key is the keyed hash of the person id (identity.person_attribute), "" without one.
	Key string `json:"pk,omitempty"`
	// NameCut is set when the CAS name was longer than WeCom allows and was cut.
	NameCut bool `json:"nc,omitempty"`
}

// msgMobileInvalid refuses a mobile that is not one.
const msgMobileInvalid = "手机号格式不正确：请填写 11 位中国大陆手机号。"

// Login is the outcome of a CAS login on the bind pages.
type Login struct {
	Person *Person
	// Bound is set when Person's number already has a live binding: the result Bind would give
	// (AlreadyBound, with the join QR code while it is pending). Nil: ask for a mobile.
	Bound *BindResult
}

// Authenticate validates a CAS ticket, applies the identity rules and looks up the number's live
// binding. A refused identity type is EFORBIDDEN; a bad ticket EUNAUTHORIZED; CAS down
// EUNAVAILABLE.
func (s *Service) Authenticate(ctx context.Context, ticket, service string) (*Login, error) {
	if ticket == "" {
		return nil, Errorf(EUNAUTHORIZED, "登录凭据缺失，请重新登录统一身份认证。")
	}
	id, err := s.CAS.Validate(ctx, ticket, service)
	if err != nil {
		return nil, err
	}
	clean, cut, err := personFrom(*id)
	if err != nil {
		return nil, err
	}
	if clean.Name == "" {
		clean.Name = clean.Number
	}
	rule, userID, err := s.Admit(clean)
	if err != nil {
		return nil, err
	}
	p := &Person{Number: clean.Number, Name: clean.Name, Type: clean.Type, UserID: userID,
		Department: rule.Department, Label: rule.Label, Key: s.personKey(clean.PersonID), NameCut: cut}
	b, err := s.liveBindingOf(ctx, p.Number)
	switch ErrorCode(err) {
	case "":
		return &Login{Person: p, Bound: s.withQRCode(ctx, s.alreadyBound(b))}, nil
	case ENOTFOUND:
		return &Login{Person: p}, nil
	}
	return nil, err
}

// Admit applies the identity rules (identity.*) to a CAS identity: the first rule that admits it
// and the WeCom userid to use, or EFORBIDDEN naming the identity type.
func (s *Service) Admit(id CASIdentity) (*IdentityRule, string, error) {
	if s.Identity == nil {
		return nil, "", Errorf(EINTERNAL, "identity rules are not configured")
	}
	return s.Identity.Match(id)
}

// liveBindingOf returns the live binding of a number, or ENOTFOUND.
func (s *Service) liveBindingOf(ctx context.Context, number string) (*Binding, error) {
	return s.Store.FindLiveBinding(ctx, "number", number)
}

// BindResult is the outcome of Bind or Rebind: exactly one of Binding (bound now), AlreadyBound
// or Conflict is set, with what the page shows next to it.
type BindResult struct {
	Binding      *MemberBinding // created or updated now; the member was invited
	AlreadyBound *MemberBinding // the number already had a live binding; nothing was written
	Conflict     *Conflict      // refused: the mobile or the userid is held elsewhere
	// QRCodeURL is the join QR code for the follow page, set when the binding is pending (the
	// member still has to join); "" when WeCom cannot give one.
	QRCodeURL string
}

// Conflict explains a refused bind (409) with masked evidence.
type Conflict struct {
	Message string
	// Mobile is the mobile the member asked for, normalised.
	Mobile string
	// RebindFrom is the id of this person's earlier live binding that holds the mobile: the page
	// offers 换绑 (an SMS code to that mobile, then Rebind).
	RebindFrom int64
	// HolderNumber is the (masked) number holding the mobile, when it is one of ours.
	HolderNumber string
}

func (s *Service) boundNow(b *Binding) *BindResult { return &BindResult{Binding: s.memberBinding(b)} }

func (s *Service) alreadyBound(b *Binding) *BindResult {
	return &BindResult{AlreadyBound: s.memberBinding(b)}
}

// withQRCode adds the join QR code to a result whose binding is pending.
func (s *Service) withQRCode(ctx context.Context, res *BindResult) *BindResult {
	b := res.Binding
	if b == nil {
		b = res.AlreadyBound
	}
	if b != nil && b.Status == StatusPending {
		res.QRCodeURL = s.joinQRCode(ctx)
	}
	return res
}

// Bind creates (or adopts) the WeCom member of p with mobile and stores the binding as pending.
//
// Crash safety: an intent is written before any WeCom write and closed in the same transaction
// that inserts the binding (intent.go), so a member can never exist in WeCom without a trace
// here. Common path: one WeCom call (user/create with to_invite).
//
// fl is the member's flow: binding finishes it, and a step of a finished flow writes nothing (the
// live binding comes back as AlreadyBound, or ErrFlowFinished when there is none).
func (s *Service) Bind(ctx context.Context, fl Flow, p *Person, rawMobile string) (*BindResult, error) {
	if res, err := s.finishedBind(ctx, fl, p); res != nil || err != nil {
		return res, err
	}
	mobile, ok := NormalizeMobile(rawMobile)
	if !ok {
		return nil, Errorf(EINVALID, msgMobileInvalid)
	}
	res, err := s.bind(ctx, p, mobile)
	if err != nil {
		return nil, err
	}
	if res.Binding != nil {
		s.finishFlow(ctx, fl)
	}
	return s.withQRCode(ctx, res), nil
}

func (s *Service) bind(ctx context.Context, p *Person, mobile string) (*BindResult, error) {
	if b, err := s.liveBindingOf(ctx, p.Number); err == nil {
		return s.alreadyBound(b), nil
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	if holder, err := s.Store.FindLiveBinding(ctx, "mobile", mobile); err == nil {
		if holder.Number == p.Number {
			return s.alreadyBound(holder), nil // bound by a concurrent request a moment ago
		}
		return &BindResult{Conflict: s.mobileConflict(p.Name, p.Key, p.Number, mobile, holder)}, nil
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	intent, err := s.openIntent(ctx, &Intent{Op: OpBind, Number: p.Number, UserID: p.UserID, Mobile: mobile,
		Name: p.Name, Type: p.Type, Department: p.Department, PersonKey: p.Key})
	if err != nil {
		if ErrorCode(err) == ECONFLICT {
			// A concurrent request for the same number may have finished meanwhile.
			if b, berr := s.liveBindingOf(ctx, p.Number); berr == nil {
				return s.alreadyBound(b), nil
			}
		}
		return nil, err
	}
	// A concurrent request may have bound the number between the check above and our intent (it
	// closes its intent in the transaction that inserts the binding, so one of the two is seen).
	if b, err := s.liveBindingOf(ctx, p.Number); err == nil {
		s.abandonIntent(ctx, intent, resultAlreadyBound)
		return s.alreadyBound(b), nil
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, s.keepOpen(ctx, intent, err)
	}
	// From here on WeCom is written: finish even if the member closes the page (each WeCom call
	// has its own deadline).
	return s.createMember(context.WithoutCancel(ctx), intent)
}

// mobileConflict explains that holder's live binding holds mobile; when holder is the person's
// own earlier number (samePerson), it offers 换绑.
func (s *Service) mobileConflict(name, key, number, mobile string, holder *Binding) *Conflict {
	c := &Conflict{Mobile: mobile, HolderNumber: MaskNumber(holder.Number)}
	if s.samePerson(name, key, number, holder) {
		// Both numbers are the person's own: the old one is masked apart from the new one (the
		// member's own login, shown in full), so that the two can be told apart.
		c.HolderNumber, _ = MaskPair(holder.Number, number)
		c.RebindFrom = holder.ID
		c.Message = fmt.Sprintf("手机号 %s 已绑定你原来的学号/工号 %s。如果你的学号/工号已更换为 %s（如预科转本科、本科读研），"+
			"可以直接换绑：向该手机号发送验证码，验证后原学号/工号的企业微信账号将被删除，新学号/工号用同一个手机号注册，再用同一个微信加入即可。",
			MaskMobile(mobile), c.HolderNumber, number)
		return c
	}
	c.Message = fmt.Sprintf("手机号 %s 已被学号/工号 %s 绑定。一个手机号只能绑定一个身份，请更换手机号；如该号码确为你本人所有，请联系学校信息化管理部门。", MaskMobile(mobile), c.HolderNumber)
	return c
}

// createMember performs the WeCom write of intent (claimed by this request) and stores the
// binding. An intent tried before is read first: an earlier try may have created the member,
// which is then adopted as it is (no second user/create, no second invitation).
func (s *Service) createMember(ctx context.Context, in *Intent) (*BindResult, error) {
	if in.Tries > 1 {
		if res, done, err := s.readBeforeCreate(ctx, in); done {
			return res, err
		}
	}
	if err := s.holdIntent(ctx, in); err != nil {
		return s.failIntent(ctx, in, err)
	}
	member := Member{UserID: in.UserID, Name: in.Name, Mobile: in.Mobile, Department: []int64{in.Department}}
	err := s.WeCom.CreateUser(ctx, member)
	switch code := WeComCode(err); {
	case err == nil:
	case code == WeComUserIDExists:
		return s.adoptAndComplete(ctx, in, nil)
	case code == WeComMobileExists:
		return s.mobileHeldInWeCom(ctx, in)
	case code == WeComMobileInvalid:
		s.abandonIntent(ctx, in, resultFailed) // nothing was written in WeCom
		return nil, Errorf(EINVALID, "企业微信不接受该手机号，请检查后重新填写。")
	case isUnknown(err):
		return s.createUnknown(ctx, in, err)
	default:
		return s.failIntent(ctx, in, err)
	}
	b, err := s.completeIntent(ctx, in, StatusPending, "bind")
	if err != nil {
		return nil, err
	}
	return s.boundNow(b), nil
}

// readBeforeCreate reads the member of an intent tried before. done is false when the member
// does not exist and no earlier write can land any more: create it then.
func (s *Service) readBeforeCreate(ctx context.Context, in *Intent) (_ *BindResult, done bool, _ error) {
	if !in.claim.absent {
		m, err := s.WeCom.GetUser(ctx, in.UserID)
		switch {
		case err == nil:
			res, err := s.adoptAndComplete(ctx, in, m)
			return res, true, err
		case WeComCode(err) != WeComUserNotFound:
			res, err := s.failIntent(ctx, in, err)
			return res, true, err
		}
		in.claim.absent = true
	}
	if wait := s.settleWait(in); wait > 0 {
		res, err := s.failIntent(ctx, in, notSettled(wait))
		return res, true, err
	}
	return nil, false, nil
}

// createUnknown settles a user/create whose outcome is unknown by reading, never by creating
// again: a member with the intent's mobile is the one created. None yet keeps the intent open,
// since WeCom may still land the create: a later read (the member's retry, the repair) settles it
// once intentSettle has passed.
func (s *Service) createUnknown(ctx context.Context, in *Intent, cerr error) (*BindResult, error) {
	s.unsure(in)
	m, err := s.WeCom.GetUser(ctx, in.UserID)
	switch {
	case err == nil && (m.Mobile == "" || m.Mobile == in.Mobile):
		b, err := s.completeIntent(ctx, in, StatusPending, "bind")
		if err != nil {
			return nil, err
		}
		return s.boundNow(b), nil
	case WeComCode(err) == WeComUserNotFound:
		return s.failIntent(ctx, in, notSettled(intentSettle))
	}
	return s.failIntent(ctx, in, cerr)
}

// adoptAndComplete adopts the existing member of in's userid (m, or read now when nil) and stores
// the binding.
func (s *Service) adoptAndComplete(ctx context.Context, in *Intent, m *Member) (*BindResult, error) {
	if m == nil {
		var err error
		if m, err = s.WeCom.GetUser(ctx, in.UserID); err != nil {
			return s.failIntent(ctx, in, err)
		}
	}
	st, err := s.adoptMember(ctx, in, m)
	if err != nil {
		return s.failIntent(ctx, in, err)
	}
	b, err := s.completeIntent(ctx, in, st, "bind")
	if err != nil {
		return nil, err
	}
	return s.boundNow(b), nil
}

// adoptMember handles a member m that exists under in's userid: after 60102 (e.g. imported by an
// admin), or found by reading an intent tried before. One that an earlier try of this intent
// created (its mobile and name are the intent's) was invited by that user/create and is taken as
// it is. Otherwise a member that has not joined, or joined with the same (or no) mobile, is
// updated and invited; one that joined with another mobile is refused. It returns the binding
// status to store, or "" with an error.
func (s *Service) adoptMember(ctx context.Context, in *Intent, m *Member) (Status, error) {
	if m.Status == 2 {
		// user/update without enable would leave it disabled: the member could never join.
		return "", Errorf(ECONFLICT, "你的企业微信账号（%s）已被停用，无法自助绑定。请联系学校信息化管理部门启用后再试。", MaskNumber(m.UserID))
	}
	joined := m.Status == 1
	if joined && m.Mobile != "" && m.Mobile != in.Mobile {
		return "", Errorf(ECONFLICT, "你的账号已在企业微信中以手机号 %s 加入，与填写的 %s 不一致。请填写 %s，或在企业微信中修改手机号后再试。", MaskMobile(m.Mobile), MaskMobile(in.Mobile), MaskMobile(m.Mobile))
	}
	if in.Tries > 1 && m.Mobile == in.Mobile && m.Name == in.Name {
		return memberStatus(m), nil
	}
	upd := MemberUpdate{UserID: m.UserID, Name: in.Name, Department: []int64{in.Department}}
	if m.Mobile != in.Mobile {
		upd.Mobile = in.Mobile
	}
	if err := s.holdIntent(ctx, in); err != nil {
		return "", err
	}
	if err := s.WeCom.UpdateUser(ctx, upd); err != nil {
		if WeComCode(err) == WeComMobileExists {
			return "", Errorf(ECONFLICT, "手机号 %s 已被企业微信中的其他成员使用，请更换手机号。", MaskMobile(in.Mobile))
		}
		return "", err
	}
	if joined {
		return StatusActive, nil
	}
	if err := s.holdIntent(ctx, in); err != nil {
		return "", err
	}
	if err := s.WeCom.Invite(ctx, m.UserID); err != nil {
		s.log().Warn("invite after adopting member failed; WeCom re-invites daily", "userid", m.UserID, "err", err)
	}
	return StatusPending, nil
}

// mobileHeldInWeCom handles 60104: WeCom knows the mobile but our bindings do not hold it. Only
// now is user/getuserid asked (a hit, not a speculative miss).
func (s *Service) mobileHeldInWeCom(ctx context.Context, in *Intent) (*BindResult, error) {
	if in.Op == OpRebind {
		// The released member still holds the mobile in WeCom: keep the intent for the retry.
		return nil, s.keepOpen(ctx, in, Errorf(EUNAVAILABLE, "旧账号正在释放中，请稍后点击“重试”完成换绑。"))
	}
	c := &Conflict{Mobile: in.Mobile, Message: fmt.Sprintf("手机号 %s 已被企业微信中的其他成员使用。一个手机号只能对应一个成员，请更换手机号；如有疑问，请联系学校信息化管理部门。", MaskMobile(in.Mobile))}
	holderID, err := s.WeCom.UserIDByMobile(ctx, in.Mobile)
	if err == nil && strings.EqualFold(holderID, in.UserID) {
		// Our own userid holds the mobile (WeCom checked the mobile first): adopt it as on 60102.
		return s.adoptAndComplete(ctx, in, nil)
	}
	s.closeIntent(ctx, in, resultMobileTaken) // nothing was written in WeCom
	if err != nil {
		s.log().Warn("getuserid after 60104", "mobile", MaskMobile(in.Mobile), "err", err)
		return &BindResult{Conflict: c}, nil
	}
	if holder, err := s.Store.FindLiveBinding(ctx, "userid", holderID); err == nil {
		return &BindResult{Conflict: s.mobileConflict(in.Name, in.PersonKey, in.Number, in.Mobile, holder)}, nil
	}
	c.HolderNumber = MaskNumber(holderID)
	c.Message = fmt.Sprintf("手机号 %s 已被企业微信成员（账号 %s）使用，该成员不是通过本系统绑定的。请更换手机号，或联系学校信息化管理部门处理。", MaskMobile(in.Mobile), c.HolderNumber)
	return &BindResult{Conflict: c}, nil
}

// actorOf maps the actor of a step to the audit actor: system and admin stay, anything else is
// the member.
func actorOf(a string) string {
	if a == ActorSystem || a == ActorAdmin {
		return a
	}
	return ActorMember
}
