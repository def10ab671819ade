package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// AdminRole says what a WeCom member may do in the helpdesk console (/admin, CONTRACT §9).
type AdminRole string

// Console roles.
const (
	RoleNone     AdminRole = ""
	RoleViewer   AdminRole = "viewer"   // admin.viewers: search and view
	RoleOperator AdminRole = "operator" // admin.operators: search, view and act
)

// AdminPolicy lists the WeCom userids who may use the console (admin.operators, admin.viewers).
// It is read on every request, so a userid taken off the lists loses access at once.
type AdminPolicy struct {
	Operators []string
	Viewers   []string
}

// Role returns the role of userID; WeCom userids are case-insensitive. A userid on both lists is
// an operator.
func (p AdminPolicy) Role(userID string) AdminRole {
	if userID == "" {
		return RoleNone
	}
	for _, u := range p.Operators {
		if strings.EqualFold(strings.TrimSpace(u), userID) {
			return RoleOperator
		}
	}
	for _, u := range p.Viewers {
		if strings.EqualFold(strings.TrimSpace(u), userID) {
			return RoleViewer
		}
	}
	return RoleNone
}

// Admin is a signed-in console user as of the current request.
type Admin struct {
	UserID  string
	Role    AdminRole
	Expires time.Time // end of the session
}

// CanAct reports whether a may change anything (operators only).
func (a *Admin) CanAct() bool { return a != nil && a.Role == RoleOperator }

// AdminSession is a console session, kept server-side so that sign-out and the 8 h cap are real.
// ID is the SHA-256 of the random token the browser holds; the token itself is never stored.
type AdminSession struct {
	ID        string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// AdminSessionTTL bounds a console session (a working day). Use does not extend it.
const AdminSessionTTL = 8 * time.Hour

// AdminLoginTTL bounds a console sign-in: the OAuth state is refused after it.
const AdminLoginTTL = 10 * time.Minute

// maxReasonRunes caps the reason an operator gives for an action.
const maxReasonRunes = 200

// AdminStore is the part of Store the console needs.
type AdminStore interface {
	// CreateAdminSession stores a new console session.
	CreateAdminSession(ctx context.Context, s *AdminSession) error
	// FindAdminSession returns the session with id, or ENOTFOUND.
	FindAdminSession(ctx context.Context, id string) (*AdminSession, error)
	// RevokeAdminSession marks session id revoked at the given time; ENOTFOUND if there is none.
	RevokeAdminSession(ctx context.Context, id string, at time.Time) error
	// PurgeAdminSessions deletes sessions that expired before the given time; dryRun only
	// counts.
	PurgeAdminSessions(ctx context.Context, before time.Time, dryRun bool) (int, error)

	// CountBindingsByStatus counts bindings per status.
	CountBindingsByStatus(ctx context.Context) (map[Status]int, error)
	// CountBindingsCreated counts the bindings created in each [bounds[i], bounds[i+1]).
	CountBindingsCreated(ctx context.Context, bounds []time.Time) ([]int, error)
	// FindStalePending returns up to limit pending bindings created before the given time,
	// oldest first, and how many there are in all.
	FindStalePending(ctx context.Context, before time.Time, limit int) ([]*Binding, int, error)
	// CountOutbox counts the app messages not delivered yet: still retried, and given up.
	CountOutbox(ctx context.Context) (OutboxBacklog, error)
	// SearchBindings returns up to limit bindings whose number, userid, mobile or name equals
	// q or starts with it, by number.
	SearchBindings(ctx context.Context, q string, limit int) ([]*Binding, error)
	// FindBindingsByNumber returns every binding of number, newest first.
	FindBindingsByNumber(ctx context.Context, number string) ([]*Binding, error)
	// FindEventsByNumber returns the audit events of number, newest first; limit 0 means all.
	FindEventsByNumber(ctx context.Context, number string, limit int) ([]*Event, error)
	// FindSMSCodes returns the SMS codes sent to any of mobiles or requested by requester (when
	// not ""), newest first, up to limit.
	FindSMSCodes(ctx context.Context, mobiles []string, requester string, limit int) ([]*SMSCode, error)
}

// OutboxBacklog is the number of app messages not delivered yet.
type OutboxBacklog struct {
	Waiting int // due now or retried later
	GivenUp int // retries exhausted
}

// AdminSignIn completes a console sign-in: state is the OAuth state the browser came back with
// (already checked against its cookie), spent here once and for all; code is redeemed for the
// member's userid (OAuth inside WeCom or the web login QR on a PC: the same getuserinfo). A
// member on neither list gets EFORBIDDEN. It returns the session token for the cookie.
func (s *Service) AdminSignIn(ctx context.Context, code, state string) (string, *Admin, error) {
	if state == "" {
		return "", nil, Errorf(EFORBIDDEN, "登录链接无效，请重新登录。")
	}
	sum := sha256.Sum256([]byte(state))
	err := s.Store.FinishFlow(ctx, "admin-login:"+hex.EncodeToString(sum[:16]), s.now().Add(AdminLoginTTL))
	if ErrorCode(err) == ECONFLICT {
		return "", nil, Errorf(EFORBIDDEN, "该登录链接已使用，请重新登录。")
	} else if err != nil {
		return "", nil, err
	}
	userID, err := s.memberFromCode(ctx, code)
	if ErrorCode(err) == ENOTFOUND {
		return "", nil, Errorf(EFORBIDDEN, "你不是本单位企业微信成员，不能使用管理控制台。")
	} else if err != nil {
		return "", nil, err
	}
	role := s.Admins.Role(userID)
	if role == RoleNone {
		s.log().Warn("console sign-in refused: not listed", "userid", userID)
		return "", nil, Errorf(EFORBIDDEN, "你的企业微信账号 %s 不在管理控制台的名单中。如需使用，请联系系统管理员把你加入 admin.operators 或 admin.viewers。", userID)
	}
	token := randomToken()
	now := s.now()
	sess := &AdminSession{ID: adminSessionID(token), UserID: userID, CreatedAt: now, ExpiresAt: now.Add(AdminSessionTTL)}
	if err := s.Store.CreateAdminSession(ctx, sess); err != nil {
		return "", nil, err
	}
	a := &Admin{UserID: userID, Role: role, Expires: sess.ExpiresAt}
	if err := s.auditAdmin(ctx, a, EventAdminSignIn, "", 0, "console sign-in ("+string(role)+")"); err != nil {
		return "", nil, err
	}
	s.log().Info("console sign-in", "userid", userID, "role", role)
	return token, a, nil
}

// AdminFromSession returns the console user of a session token: EUNAUTHORIZED when there is no
// such session or it expired or was revoked; EFORBIDDEN when its userid is no longer listed.
func (s *Service) AdminFromSession(ctx context.Context, token string) (*Admin, error) {
	if token == "" {
		return nil, Errorf(EUNAUTHORIZED, "请先登录管理控制台。")
	}
	sess, err := s.Store.FindAdminSession(ctx, adminSessionID(token))
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(EUNAUTHORIZED, "请先登录管理控制台。")
	} else if err != nil {
		return nil, err
	}
	if sess.RevokedAt != nil || !s.now().Before(sess.ExpiresAt) {
		return nil, Errorf(EUNAUTHORIZED, "登录已过期，请重新登录。")
	}
	role := s.Admins.Role(sess.UserID)
	if role == RoleNone {
		return nil, Errorf(EFORBIDDEN, "你的企业微信账号 %s 已不在管理控制台的名单中。", sess.UserID)
	}
	return &Admin{UserID: sess.UserID, Role: role, Expires: sess.ExpiresAt}, nil
}

// AdminSignOut revokes the session of token; an unknown or ended session is not an error.
func (s *Service) AdminSignOut(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	id := adminSessionID(token)
	sess, err := s.Store.FindAdminSession(ctx, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	if err := s.Store.RevokeAdminSession(ctx, id, s.now()); err != nil && ErrorCode(err) != ENOTFOUND {
		return err
	}
	return s.auditAdmin(ctx, &Admin{UserID: sess.UserID}, EventAdminSignOut, "", 0, "console sign-out")
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

func adminSessionID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// checkAdminAction checks that a may act and returns the trimmed reason it gave.
func checkAdminAction(a *Admin, reason string) (string, error) {
	if !a.CanAct() {
		return "", Errorf(EFORBIDDEN, "只读账号不能执行操作。")
	}
	reason = strings.Join(strings.Fields(reason), " ")
	if reason == "" {
		return "", Errorf(EINVALID, "请填写操作原因（会记入审计记录）。")
	}
	if utf8.RuneCountInString(reason) > maxReasonRunes {
		return "", Errorf(EINVALID, "操作原因不能超过 %d 个字。", maxReasonRunes)
	}
	return reason, nil
}

// auditAdmin appends an event by a console user about number (bindingID 0: not tied to a
// binding); the detail names the admin's userid.
func (s *Service) auditAdmin(ctx context.Context, a *Admin, kind, number string, bindingID int64, detail string) error {
	userID := ""
	if bindingID != 0 {
		if b, err := s.Store.FindBindingByID(ctx, bindingID); err == nil {
			userID = b.UserID
		}
	}
	return s.Store.AppendEvent(ctx, Event{BindingID: bindingID, Kind: kind, Actor: ActorAdmin, Number: number,
		UserID: userID, Detail: detail + " [admin " + a.UserID + "]"})
}

// auditFailure records an action that failed; the failure to record it is only logged, the
// action's own error being the one to report.
func (s *Service) auditFailure(ctx context.Context, a *Admin, number string, bindingID int64, what string, err error) {
	detail := fmt.Sprintf("%s failed: %s", what, ErrorMessage(err))
	if aerr := s.auditAdmin(context.WithoutCancel(ctx), a, EventAdminFailed, number, bindingID, detail); aerr != nil {
		s.log().Error("audit failed console action", "number", number, "err", aerr)
	}
}

// UnbindAsAdmin releases the live binding of number from the console, like `binding unbind`:
// the member is deleted in WeCom and the binding marked unbound with reason; the audit event names
// the admin.
func (s *Service) UnbindAsAdmin(ctx context.Context, a *Admin, number, reason string) (*Binding, error) {
	reason, err := checkAdminAction(a, reason)
	if err != nil {
		return nil, err
	}
	b, err := s.liveBindingOf(ctx, number)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ECONFLICT, "学号/工号 %s 没有生效中的绑定，无需解除。", number)
	} else if err != nil {
		return nil, err
	}
	out, err := s.release(ctx, b, ActorAdmin, reason, a.UserID)
	if err != nil {
		s.auditFailure(ctx, a, number, b.ID, "unbind ("+reason+")", err)
		return nil, err
	}
	return out, nil
}

// InviteAsAdmin re-sends the WeCom invitation of number's pending member (batch/invite). A number
// without a pending binding gets ECONFLICT.
func (s *Service) InviteAsAdmin(ctx context.Context, a *Admin, number, reason string) (*Binding, error) {
	reason, err := checkAdminAction(a, reason)
	if err != nil {
		return nil, err
	}
	b, err := s.liveBindingOf(ctx, number)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ECONFLICT, "学号/工号 %s 没有生效中的绑定，无法发送邀请。", number)
	} else if err != nil {
		return nil, err
	}
	if b.Status != StatusPending {
		return nil, Errorf(ECONFLICT, "学号/工号 %s 已加入企业微信，无需再次邀请。", number)
	}
	if err := s.WeCom.Invite(ctx, b.UserID); err != nil {
		switch {
		case WeComCode(err) == WeComUserNotFound:
			err = Wrap(ECONFLICT, err, "企业微信中没有该成员（可能已被删除），邀请未发送。请查看下方的企业微信成员状态。")
		case WeComTemporary(err):
			err = Wrap(EUNAVAILABLE, err, "企业微信系统繁忙，邀请未发送，请稍后再试。")
		default:
			err = Wrap(EUNAVAILABLE, err, "企业微信未能发送邀请，请稍后再试。")
		}
		s.auditFailure(ctx, a, number, b.ID, "invite ("+reason+")", err)
		return nil, err
	}
	if err := s.auditAdmin(ctx, a, EventAdminInvite, number, b.ID, "WeCom invitation re-sent to "+b.UserID+": "+reason); err != nil {
		return nil, err
	}
	s.log().Info("console invite", "number", number, "userid", b.UserID, "admin", a.UserID)
	return b, nil
}

// RepairAsAdmin settles the open intent of number now by reading WeCom, as the background repair
// would (intent.go): the binding is stored if the member exists, the intent closed if not. An
// intent a request still works on (its claim runs) is left alone (ECONFLICT). It returns what
// happened, for the page.
func (s *Service) RepairAsAdmin(ctx context.Context, a *Admin, number, reason string) (string, error) {
	reason, err := checkAdminAction(a, reason)
	if err != nil {
		return "", err
	}
	in, err := s.Store.FindOpenIntent(ctx, number)
	if ErrorCode(err) == ENOTFOUND {
		return "", Errorf(ECONFLICT, "学号/工号 %s 没有未完成的办理记录，无需修复。", number)
	} else if err != nil {
		return "", err
	}
	if now := s.now(); !in.idle(now) {
		return "", Errorf(ECONFLICT, "该办理记录正由一个请求处理中；请约 %d 秒后再修复。", waitSeconds(in.busyFor(now)))
	}
	var bindingID int64
	if bs, err := s.Store.FindBindingsByNumber(ctx, number); err == nil && len(bs) > 0 {
		bindingID = bs[0].ID
	}
	if err := s.resolveIntent(ctx, in); err != nil {
		if !errors.Is(err, errClaimLost) && !errors.Is(err, errNotSettled) { // those say how long to wait
			err = Wrap(EUNAVAILABLE, err, "暂时无法读取企业微信，修复未完成，请稍后再试。")
		}
		s.auditFailure(ctx, a, number, bindingID, "repair ("+reason+")", err)
		return "", err
	}
	outcome := "企业微信中没有该成员，办理记录已关闭；本人可重新注册绑定。"
	result := "closed: no member in WeCom"
	if b, err := s.liveBindingOf(ctx, number); err == nil {
		outcome = fmt.Sprintf("已按企业微信中的成员补全绑定（%s）。", b.Status)
		result = "binding stored (" + string(b.Status) + ")"
		bindingID = b.ID
	} else if in.Op == OpRebind {
		outcome, result = "换绑已继续办理。", "rebind resumed"
	}
	detail := fmt.Sprintf("open intent %d (%s) repaired: %s; %s", in.ID, in.Op, result, reason)
	if err := s.auditAdmin(ctx, a, EventAdminRepair, number, bindingID, detail); err != nil {
		return "", err
	}
	s.log().Info("console repair", "number", number, "result", result, "admin", a.UserID)
	return outcome, nil
}

// ExportBindings lists the bindings (of one status, or all) for a console CSV export; operators
// only. The export is audited.
func (s *Service) ExportBindings(ctx context.Context, a *Admin, status Status) ([]*Binding, error) {
	if !a.CanAct() {
		return nil, Errorf(EFORBIDDEN, "只读账号不能导出数据。")
	}
	list, err := s.ListBindings(ctx, BindingFilter{Status: status})
	if err != nil {
		return nil, err
	}
	what := "all statuses"
	if status != "" {
		what = "status " + string(status)
	}
	if err := s.auditAdmin(ctx, a, EventAdminExport, "", 0, fmt.Sprintf("CSV export of %s: %d rows", what, len(list))); err != nil {
		return nil, err
	}
	return list, nil
}
