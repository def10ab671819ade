package app

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Audit event kinds of offboarding (the others are in event.go).
const (
	EventOffboarding = "bind.offboarding" // about to delete the member in WeCom (offboard)
	EventOffboardRun = "offboard.run"     // one offboard run's summary, tied to no binding
)

// OffboardBatchSize is the most members one user/batchdelete call deletes (WECOM.md §2.4).
const OffboardBatchSize = 200

// DefaultOffboardReason is the reason kept when the admin gives none.
const DefaultOffboardReason = "离校/毕业"

// offboardReasonMax bounds the reason in characters: it is kept in the binding's reason column
// (255) and quoted in audit details.
const offboardReasonMax = 200

// Outcomes of one number in an OffboardReport.
const (
	OffboardUnbound = "unbound" // binding unbound, member gone from WeCom (in a dry run: would be)
	OffboardSkipped = "skipped" // the number has no live binding: nothing to do
	OffboardFailed  = "failed"  // not finished; the binding is still live, a rerun tries again
)

// OffboardOptions tunes Offboard.
type OffboardOptions struct {
	// Reason is kept in each binding and its audit events; DefaultOffboardReason when empty.
	Reason string
	// DryRun looks the numbers up and reports what would happen: nothing is written and no WeCom
	// API is called.
	DryRun bool
	// Progress, when set, is called as numbers are settled (after each batch and every
	// OffboardBatchSize lookups) with the count settled so far and the count of distinct numbers.
	Progress func(done, total int)
}

// OffboardResult is what happened to one number.
type OffboardResult struct {
	Number  string
	UserID  string // the live binding's WeCom userid; empty when skipped
	Outcome string // OffboardUnbound, OffboardSkipped or OffboardFailed
	Detail  string // the member deleted or already gone, or why it was skipped or failed
}

// OffboardReport is the outcome of Offboard: one result per distinct number, in input order.
type OffboardReport struct {
	Results                  []OffboardResult
	Unbound, Skipped, Failed int
	DryRun                   bool
}

// Summary is the one-line summary "offboard: N unbound, M skipped, K failed" (CONTRACT §10); a
// dry run says so at the end.
func (r *OffboardReport) Summary() string {
	s := fmt.Sprintf("offboard: %d unbound, %d skipped, %d failed", r.Unbound, r.Skipped, r.Failed)
	if r.DryRun {
		s += " (dry run: nothing changed)"
	}
	return s
}

// Offboard releases the live bindings of numbers (graduates, leavers): each member is deleted in
// WeCom through user/batchdelete, at most OffboardBatchSize per call, and its binding marked
// unbound with the reason and an audit event by the admin. A number without a live binding is
// skipped, so a rerun of the same list finishes what a failed or interrupted run left.
//
// Crash safety: before a batch is sent, each binding gets an EventOffboarding event in one
// transaction. A crash between the WeCom deletion and the binding update thus leaves a live
// binding whose trail says why its member is gone; the rerun finds it live, has its batch refused
// (60111), finds the member missing from WeCom and unbinds it (so do reconcile --fix and the
// delete_user callback). Members already gone from WeCom are unbound, not failures.
//
// Only an invalid reason is an error; everything else is reported per number.
func (s *Service) Offboard(ctx context.Context, numbers []string, opt OffboardOptions) (*OffboardReport, error) {
	reason, err := offboardReason(opt.Reason)
	if err != nil {
		return nil, err
	}
	numbers = distinctNumbers(numbers)
	run := &offboardRun{s: s, reason: reason, dryRun: opt.DryRun, results: make(map[string]OffboardResult, len(numbers))}
	reported := 0
	progress := func(done int) {
		if opt.Progress != nil && done > reported {
			reported = done
			opt.Progress(done, len(numbers))
		}
	}
	var batch []*Binding
	for i, n := range numbers {
		b, err := s.liveBindingOf(ctx, n)
		switch {
		case ErrorCode(err) == ENOTFOUND:
			run.record(n, "", OffboardSkipped, "no live binding")
		case err != nil:
			run.record(n, "", OffboardFailed, "look-up: "+err.Error())
		default:
			batch = append(batch, b)
		}
		flush := len(batch) == OffboardBatchSize || i == len(numbers)-1
		if flush {
			run.settle(ctx, batch)
			batch = nil
		}
		if flush || (i+1)%OffboardBatchSize == 0 {
			progress(i + 1 - len(batch))
		}
	}
	rep := run.report(numbers)
	if !opt.DryRun && len(numbers) > 0 {
		ev := Event{Kind: EventOffboardRun, Actor: ActorAdmin,
			Detail: fmt.Sprintf("%s (reason: %s; %d numbers)", rep.Summary(), reason, len(numbers))}
		if err := s.Store.AppendEvent(ctx, ev); err != nil {
			s.log().Warn("offboard: audit the run", "err", err)
		}
	}
	return rep, nil
}

// offboardReason returns the reason to keep, or EINVALID when it is too long.
func offboardReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return DefaultOffboardReason, nil
	}
	if n := utf8.RuneCountInString(reason); n > offboardReasonMax || !utf8.ValidString(reason) {
		return "", Errorf(EINVALID, "离校原因过长或含无效字符（最多 %d 个字符）", offboardReasonMax)
	}
	return reason, nil
}

// distinctNumbers trims the numbers and drops empty ones and repeats, keeping the first order.
func distinctNumbers(numbers []string) []string {
	seen := make(map[string]bool, len(numbers))
	out := make([]string, 0, len(numbers))
	for _, n := range numbers {
		n = strings.TrimSpace(n)
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// offboardRun is the state of one Offboard call.
type offboardRun struct {
	s       *Service
	reason  string
	dryRun  bool
	results map[string]OffboardResult

	listed  bool            // memberList was called
	inWeCom map[string]bool // WeCom's members (lower-cased userids), when they could be listed
}

func (r *offboardRun) record(number, userID, outcome, detail string) {
	r.results[number] = OffboardResult{Number: number, UserID: userID, Outcome: outcome, Detail: detail}
}

func (r *offboardRun) fail(b *Binding, detail string) {
	r.record(b.Number, b.UserID, OffboardFailed, detail)
}

// report lists the results in the order of numbers and counts them.
func (r *offboardRun) report(numbers []string) *OffboardReport {
	rep := &OffboardReport{Results: make([]OffboardResult, 0, len(numbers)), DryRun: r.dryRun}
	for _, n := range numbers {
		res := r.results[n]
		switch res.Outcome {
		case OffboardUnbound:
			rep.Unbound++
		case OffboardSkipped:
			rep.Skipped++
		default:
			rep.Failed++
		}
		rep.Results = append(rep.Results, res)
	}
	return rep
}

// settle offboards one batch of live bindings: mark them, delete their members in WeCom, and
// unbind those whose member is gone now.
func (r *offboardRun) settle(ctx context.Context, bs []*Binding) {
	if len(bs) == 0 {
		return
	}
	if r.dryRun {
		for _, b := range bs {
			r.record(b.Number, b.UserID, OffboardUnbound,
				fmt.Sprintf("would delete WeCom member %s and unbind the %s binding", b.UserID, b.Status))
		}
		return
	}
	if err := r.s.markOffboarding(ctx, bs, r.reason); err != nil {
		for _, b := range bs {
			r.fail(b, "not attempted: audit trail: "+err.Error())
		}
		return
	}
	out := make(map[int64]error, len(bs))
	r.deleteBatch(ctx, bs, out)
	var gone []*Binding
	deleted, already := 0, 0
	for _, b := range bs {
		switch err := out[b.ID]; {
		case err == nil:
			deleted++
			gone = append(gone, b)
		case WeComCode(err) == WeComUserNotFound:
			already++
			gone = append(gone, b)
		default:
			r.fail(b, "WeCom member not deleted: "+err.Error())
		}
	}
	r.s.log().Debug("offboard batch", "size", len(bs), "deleted", deleted, "already_gone", already,
		"failed", len(bs)-len(gone))
	r.unbind(ctx, gone, out)
}

// markOffboarding appends an EventOffboarding event to each binding, in one transaction, before
// their members are deleted.
func (s *Service) markOffboarding(ctx context.Context, bs []*Binding, reason string) error {
	return s.Store.Tx(ctx, func(tx Store) error {
		for _, b := range bs {
			err := tx.AppendEvent(ctx, Event{BindingID: b.ID, Kind: EventOffboarding, Actor: ActorAdmin,
				Number: b.Number, UserID: b.UserID, Detail: "offboard: " + reason + "; deleting WeCom member " + b.UserID})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// memberFault reports whether a failed user/batchdelete may be due to some of its userids
// rather than to the call: WeCom then refuses the whole batch without naming them.
func memberFault(err error) bool {
	switch WeComCode(err) {
	case WeComUserNotFound, // no such member (60111)
		40003,  // invalid userid
		60011,  // no privilege on that member
		301005: // the corp's creator cannot be deleted
		return true
	}
	return false
}

// deleteBatch deletes the members of bs in WeCom and records, per binding id, nil (deleted), a
// 60111 error (already gone) or the error that kept the member.
//
// user/batchdelete applies all or nothing and does not name the userid that spoiled it. When a
// batch is refused for its members, WeCom's member list (user/list_id, read once per run) tells
// the members already gone from the others, which are sent again; if that is refused too
// (someone deleted a member since the list was read, or a member may not be deleted), the rest
// is cut in halves until each culprit stands alone.
func (r *offboardRun) deleteBatch(ctx context.Context, bs []*Binding, out map[int64]error) {
	err := r.s.WeCom.DeleteUsers(ctx, userIDsOf(bs)...)
	switch {
	case err == nil:
		setAll(out, bs, nil)
		return
	case !memberFault(err):
		setAll(out, bs, err)
		return
	}
	inWeCom := r.memberList(ctx)
	if inWeCom == nil {
		r.s.bisectDelete(ctx, bs, err, out)
		return
	}
	var present []*Binding
	for _, b := range bs {
		if inWeCom[strings.ToLower(b.UserID)] {
			present = append(present, b)
		} else {
			out[b.ID] = &WeComError{Op: "user/list_id", Code: WeComUserNotFound, Msg: "not a member"}
		}
	}
	switch len(present) {
	case 0:
	case len(bs):
		r.s.bisectDelete(ctx, bs, err, out) // every member is there: some may not be deleted
	default:
		r.s.bisectDelete(ctx, present, nil, out)
	}
}

// memberList returns the lower-cased userids of WeCom's members, read on first use; nil if they
// could not be read (the caller then bisects).
func (r *offboardRun) memberList(ctx context.Context) map[string]bool {
	if r.listed {
		return r.inWeCom
	}
	r.listed = true
	ids, err := r.s.WeCom.ListUserIDs(ctx)
	if err != nil {
		r.s.log().Warn("offboard: cannot list WeCom's members; finding culprits by bisection", "err", err)
		return nil
	}
	r.inWeCom = make(map[string]bool, len(ids))
	for _, id := range ids {
		r.inWeCom[strings.ToLower(id)] = true
	}
	return r.inWeCom
}

// bisectDelete deletes the members of bs and records their outcomes as deleteBatch does.
// failed, when not nil, is the answer a call with exactly bs already got. A batch refused for
// its members is cut in halves; when the left half succeeds the right one must hold the culprits
// and is cut without another call. k culprits cost about 2k·log2(n/k) calls.
func (s *Service) bisectDelete(ctx context.Context, bs []*Binding, failed error, out map[int64]error) {
	if failed == nil {
		failed = s.WeCom.DeleteUsers(ctx, userIDsOf(bs)...)
		if failed == nil {
			setAll(out, bs, nil)
			return
		}
	}
	if len(bs) == 1 || !memberFault(failed) {
		setAll(out, bs, failed)
		return
	}
	left, right := bs[:len(bs)/2], bs[len(bs)/2:]
	if err := s.WeCom.DeleteUsers(ctx, userIDsOf(left)...); err != nil {
		s.bisectDelete(ctx, left, err, out)
		s.bisectDelete(ctx, right, nil, out)
		return
	}
	setAll(out, left, nil)
	s.bisectDelete(ctx, right, failed, out)
}

func userIDsOf(bs []*Binding) []string {
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.UserID
	}
	return ids
}

func setAll(out map[int64]error, bs []*Binding, err error) {
	for _, b := range bs {
		out[b.ID] = err
	}
}

// unbind marks the bindings whose member is gone unbound, in one transaction. A binding released
// meanwhile by someone else (the delete_user callback of this very deletion) is settled after.
func (r *offboardRun) unbind(ctx context.Context, bs []*Binding, out map[int64]error) {
	if len(bs) == 0 {
		return
	}
	var raced []*Binding
	err := r.s.Store.Tx(ctx, func(tx Store) error {
		raced = raced[:0]
		for _, b := range bs {
			_, err := tx.UpdateBinding(ctx, b.ID, BindingUpdate{
				Status:   Ptr(StatusUnbound),
				Reason:   Ptr(r.reason),
				IfStatus: []Status{StatusPending, StatusActive},
			}, Event{Kind: EventUnbound, Actor: ActorAdmin, Detail: r.unboundDetail(b, out[b.ID])})
			if ErrorCode(err) == ECONFLICT {
				raced = append(raced, b)
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, b := range bs {
			r.fail(b, "WeCom member gone but binding not updated (rerun to finish): "+err.Error())
		}
		return
	}
	for _, b := range bs {
		r.record(b.Number, b.UserID, OffboardUnbound, memberFate(out[b.ID]))
	}
	for _, b := range raced {
		r.settleRaced(ctx, b, out[b.ID])
	}
}

// settleRaced finishes a binding that left the live state between the look-up and the update. If
// it is unbound now, it keeps the offboard reason; any other state is reported.
func (r *offboardRun) settleRaced(ctx context.Context, b *Binding, werr error) {
	cur, err := r.s.Store.FindBindingByID(ctx, b.ID)
	if err != nil {
		r.fail(b, "WeCom member gone; re-reading the binding: "+err.Error())
		return
	}
	if cur.Status != StatusUnbound {
		r.fail(b, fmt.Sprintf("WeCom member gone, but the binding became %s meanwhile: check it", cur.Status))
		return
	}
	if cur.Reason != r.reason {
		_, err = r.s.Store.UpdateBinding(ctx, b.ID, BindingUpdate{Reason: Ptr(r.reason), IfStatus: []Status{StatusUnbound}},
			Event{Kind: EventUnbound, Actor: ActorAdmin,
				Detail: r.unboundDetail(b, werr) + " (released meanwhile: " + cur.Reason + ")"})
		if err != nil {
			r.fail(b, "WeCom member gone and binding unbound, reason not kept: "+err.Error())
			return
		}
	}
	r.record(b.Number, b.UserID, OffboardUnbound, memberFate(werr)+"; released meanwhile")
}

func (r *offboardRun) unboundDetail(b *Binding, werr error) string {
	return "offboard: " + r.reason + "; WeCom member " + b.UserID + " " + memberFate(werr)
}

// memberFate says what deleteBatch found: nil deleted, 60111 already gone.
func memberFate(werr error) string {
	if werr != nil {
		return "already gone"
	}
	return "deleted"
}
