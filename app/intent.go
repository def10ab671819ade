package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// IntentOp is the WeCom write an intent announces. Its value is what the store keeps in
// intents.op, so the values never change.
type IntentOp string

// Intent operations.
const (
	// OpBind creates (or adopts) the member of a number that has no binding (Bind).
	OpBind IntentOp = "create"
	// OpRebind releases the member of the person's earlier binding, then creates the member of
	// the new number (Rebind, 换绑). The stored value predates the name.
	OpRebind IntentOp = "migrate"
)

// Intent is written before a WeCom member write so that a crash between the WeCom call and the
// binding insert can be repaired: an open intent no request works on is resolved by reading
// WeCom, never by blindly writing again.
//
// Life cycle: openIntent (claimed by the request) → (WeCom write) → completeIntent (binding
// stored, intent closed in one transaction) or failIntent/abandonIntent (nothing written, intent
// closed); an intent left open by a crash or an unknown outcome is settled by resolveIntent
// (RepairIntents or a later request), under a claim of its own (intent_claim.go).
type Intent struct {
	ID         int64
	Op         IntentOp
	Number     string
	UserID     string
	Mobile     string
	Name       string
	Type       string
	Department int64
	RebindFrom int64  // OpRebind: the id of the earlier binding it releases
	PersonKey  string // Person.Key, stored with the binding
	Result     string
	CreatedAt  time.Time
	DoneAt     *time.Time

	// ClaimOwner names the request or repair working on the intent ("" when none) and ClaimUntil
	// when its claim runs out: another replica may take the intent over after that (its worker
	// died). Tries counts the claims, 1 for the request that opened it.
	ClaimOwner string
	ClaimUntil *time.Time
	Tries      int
	// SettleAt, when set, is when a read that finds no member may be believed: a WeCom write of
	// this intent had an unknown outcome, and WeCom may land it late.
	SettleAt *time.Time

	claim claimState // this process's claim, when it holds one
}

// outlivesFailure reports whether the intent stays open when an attempt ends without a new
// member: a 换绑's old member may already be released, so only its completion (the member's
// retry or the repair) may close it.
func (in *Intent) outlivesFailure() bool { return in.Op == OpRebind }

// Results an intent is closed with (intents.result).
const (
	resultBound        = "bound"         // the binding was stored
	resultAlreadyBound = "already_bound" // the number had a live binding meanwhile
	resultFailed       = "failed"        // WeCom refused; nothing was written
	resultMobileTaken  = "mobile_taken"  // another WeCom member holds the mobile
	resultNotCreated   = "not_created"   // the repair found no member: the write never happened
	resultNotReleased  = "not_released"  // the repair found a 换绑's old member still there
)

// openIntent records the intent of a WeCom write for a number, claimed by this request. If
// another one is open, a request working on it means a concurrent request (409 with the wait);
// one nobody works on is resolved first, by reading WeCom; a 换绑 waiting for its new member is
// resumed with the new request's data.
func (s *Service) openIntent(ctx context.Context, in *Intent) (*Intent, error) {
	s.newClaim(in)
	err := s.Store.CreateIntent(ctx, in)
	if ErrorCode(err) != ECONFLICT {
		if err != nil {
			return nil, err
		}
		return in, nil
	}
	open, err := s.Store.FindOpenIntent(ctx, in.Number)
	if ErrorCode(err) == ENOTFOUND {
		return nil, errInProgress(0) // closed meanwhile: the caller reads the outcome
	} else if err != nil {
		return nil, err
	}
	if open.Op == OpRebind && open.Mobile == in.Mobile {
		// Retry of a 换绑 whose old member may already be released: continue it.
		if err := s.claimIntent(ctx, open); err != nil {
			return nil, err
		}
		return open, nil
	}
	if err := s.resolveIntent(ctx, open); err != nil {
		return nil, err
	}
	if b, err := s.liveBindingOf(ctx, in.Number); err == nil {
		return nil, &Error{Code: ECONFLICT, Message: "该学号/工号已绑定（手机号 " + MaskMobile(b.Mobile) + "）。"}
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	s.newClaim(in)
	if err := s.Store.CreateIntent(ctx, in); err != nil {
		if ErrorCode(err) == ECONFLICT {
			return nil, errInProgress(intentLease)
		}
		return nil, err
	}
	return in, nil
}

// closeIntent closes an intent whose outcome is settled; a failure is only logged (the intent is
// then resolved by RepairIntents).
func (s *Service) closeIntent(ctx context.Context, in *Intent, result string) {
	if err := s.Store.CloseIntent(ctx, in.ID, result, s.now()); err != nil && ErrorCode(err) != ECONFLICT {
		s.log().Error("close intent", "number", in.Number, "result", result, "err", err)
	}
}

// abandonIntent closes in after an attempt that wrote nothing in WeCom, unless it outlives
// failures (a 换绑, whose claim is then released).
func (s *Service) abandonIntent(ctx context.Context, in *Intent, result string) {
	if in.outlivesFailure() {
		s.releaseIntent(ctx, in)
		return
	}
	s.closeIntent(ctx, in, result)
}

// completeIntent stores the binding of a successful WeCom write and closes the intent in one
// transaction; a 换绑 also links the released binding to the new one.
func (s *Service) completeIntent(ctx context.Context, in *Intent, status Status, actor string) (*Binding, error) {
	b := &Binding{Number: in.Number, UserID: in.UserID, Mobile: in.Mobile, Name: in.Name, Type: in.Type,
		Department: in.Department, Status: status, PersonKey: in.PersonKey}
	err := s.Store.Tx(ctx, func(tx Store) error {
		detail := "member created and invited"
		if status == StatusActive {
			detail = "member adopted (already joined)"
		}
		old, err := s.releasedByIntent(ctx, tx, in, actor)
		if err != nil {
			return err
		}
		if old != nil {
			detail = fmt.Sprintf("换绑 %s -> %s: %s", old.Number, in.Number, detail)
		}
		if err := tx.CreateBinding(ctx, b, Event{Kind: EventBound, Actor: actorOf(actor), Detail: detail + ", mobile " + MaskMobile(in.Mobile)}); err != nil {
			return err
		}
		if old != nil {
			if _, err := tx.UpdateBinding(ctx, old.ID, BindingUpdate{ReboundTo: Ptr(b.ID)},
				Event{Kind: EventRebound, Actor: actorOf(actor), Detail: fmt.Sprintf("换绑 %s -> %s completed: new binding %d", old.Number, in.Number, b.ID)}); err != nil {
				return err
			}
		}
		return tx.CloseIntent(ctx, in.ID, resultBound, s.now())
	})
	if ErrorCode(err) == ECONFLICT {
		// A concurrent request (or the repair) stored this very binding first.
		if live, lerr := s.liveBindingOf(ctx, in.Number); lerr == nil && strings.EqualFold(live.UserID, in.UserID) {
			s.closeIntent(ctx, in, resultAlreadyBound)
			return live, nil
		}
	}
	if err != nil {
		// The member exists in WeCom; the intent stays open and is repaired later.
		s.releaseIntent(ctx, in)
		return nil, fmt.Errorf("app: store binding of %s: %w", in.Number, err)
	}
	s.log().Info("bound", "number", in.Number, "userid", in.UserID, "mobile", MaskMobile(in.Mobile), "status", status)
	return b, nil
}

// releasedByIntent returns the earlier binding a 换绑 intent releases (nil for a plain bind),
// marking it rebound inside tx if that has not happened yet: its member is gone (the new one could
// not be created otherwise), so the mobile is released here too for the new binding to hold it.
func (s *Service) releasedByIntent(ctx context.Context, tx Store, in *Intent, actor string) (*Binding, error) {
	if in.RebindFrom == 0 {
		return nil, nil
	}
	old, err := tx.FindBindingByID(ctx, in.RebindFrom)
	if err != nil {
		return nil, err
	}
	if old.Status.Live() {
		if _, err := tx.UpdateBinding(ctx, old.ID, reboundUpdate(in.Number), reboundEvent(old.Number, in.Number, in.Mobile, actor)); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// failIntent closes an intent whose WeCom write certainly did not happen and maps err for the
// member: temporary WeCom trouble is 503 系统繁忙; an *Error passes through. An unknown outcome,
// or a 换绑 whose old member may be released, keeps the intent open (its claim released) for a
// later read; a lost claim leaves it to the request that took it over.
func (s *Service) failIntent(ctx context.Context, in *Intent, err error) (*BindResult, error) {
	code := ErrorCode(err)
	if errors.Is(err, errClaimLost) || errors.Is(err, errNotSettled) {
		return nil, s.keepOpen(ctx, in, err)
	}
	if isUnknown(err) || (in.outlivesFailure() && (code == EINTERNAL || code == EUNAVAILABLE)) {
		// Still unknown even after reading, or a 换绑 whose old member is already released and
		// WeCom failed: leave the intent open for the repair or the member's retry.
		return nil, s.keepOpen(ctx, in, Wrap(EUNAVAILABLE, err, "企业微信系统繁忙，请稍后重试。"))
	}
	// A refusal (an *Error such as a member who joined with another mobile) ends the attempt; a
	// 换绑 then ends with the old member released, and the member binds anew.
	s.closeIntent(ctx, in, resultFailed)
	if code != EINTERNAL {
		return nil, err
	}
	return nil, Wrap(EUNAVAILABLE, err, "创建企业微信账号失败，请稍后再试；如多次失败，请联系学校信息化管理部门。")
}

// RepairIntents resolves the open intents no request works on (a crash, a lost answer, an
// unknown outcome between the WeCom write and the binding insert) by reading WeCom, each under a
// claim so that of several replicas repairing at once one takes each intent: a member that exists
// gets its binding; one that does not closes the intent once WeCom can no longer land a late
// write, except a 换绑 whose old member is already released, which is finished by creating the
// new member. It never creates a member blindly and never touches a number that already has a
// live binding. It returns how many it resolved; running it again resolves nothing more.
func (s *Service) RepairIntents(ctx context.Context) (int, error) {
	now := s.now()
	open, err := s.Store.FindOpenIntents(ctx, now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range open {
		if !in.idle(now) {
			continue
		}
		if err := s.resolveIntent(ctx, in); err != nil {
			if ErrorCode(err) == ECONFLICT || errors.Is(err, errNotSettled) {
				s.log().Debug("repair intent: not yet", "number", in.Number, "err", err)
			} else {
				s.log().Warn("repair intent", "number", in.Number, "err", err)
			}
			continue
		}
		n++
	}
	return n, nil
}

// resolveIntent settles an open intent that no request works on by reading WeCom, under a claim
// of its own: ECONFLICT (with the wait) when another request or replica holds the intent,
// errNotSettled when WeCom cannot tell yet. On any failure the intent stays open.
func (s *Service) resolveIntent(ctx context.Context, in *Intent) error {
	if err := s.claimIntent(ctx, in); err != nil {
		return err
	}
	if err := s.settleIntent(ctx, in); err != nil {
		s.releaseIntent(ctx, in)
		return err
	}
	return nil
}

// settleIntent reads WeCom for a claimed intent: the binding is stored if the member exists; if
// it does not, the intent is closed (a 换绑 resumed instead) once a late write can be ruled out.
func (s *Service) settleIntent(ctx context.Context, in *Intent) error {
	if _, err := s.liveBindingOf(ctx, in.Number); err == nil {
		return s.Store.CloseIntent(ctx, in.ID, resultAlreadyBound, s.now())
	} else if ErrorCode(err) != ENOTFOUND {
		return err
	}
	m, err := s.WeCom.GetUser(ctx, in.UserID)
	switch {
	case WeComCode(err) == WeComUserNotFound:
		in.claim.absent = true
		if in.Op == OpRebind {
			return s.resumeRebind(ctx, in)
		}
		if wait := s.settleWait(in); wait > 0 {
			return notSettled(wait)
		}
		return s.Store.CloseIntent(ctx, in.ID, resultNotCreated, s.now())
	case err != nil:
		return err
	}
	if m.Mobile != "" && m.Mobile != in.Mobile {
		in.Mobile = m.Mobile
	}
	_, err = s.completeIntent(ctx, in, memberStatus(m), ActorSystem)
	return err
}

// memberStatus is the binding status of a member as WeCom reports it: active once joined.
func memberStatus(m *Member) Status {
	if m.Status == 1 {
		return StatusActive
	}
	return StatusPending
}

// isUnknown reports whether err is a WeCom call whose outcome is unknown (timeout, transport).
func isUnknown(err error) bool {
	var we *WeComError
	return errors.As(err, &we) && we.Unknown
}
