package app

import (
	"context"
	"errors"
	"time"
)

// Flow identifies one member flow: the steps one browser takes from a start (a CAS login, a WeCom
// verification link, an OAuth return) to an outcome. The HTTP layer keeps it in the sealed flow
// cookie and passes it to every step. Once the flow has finished (bound, migrated, verified,
// unbound) its ID is recorded until Expires, when the cookie would expire anyway, so that a copy
// of the cookie saved before the last step cannot make any step run again (CONTRACT §6).
type Flow struct {
	ID      string    // random and unguessable; never empty
	Expires time.Time // when the flow's cookie expires
}

// ErrFlowFinished is the cause of the error (ECONFLICT) a step of a finished flow gets: nothing
// was done. Check with errors.Is.
var ErrFlowFinished = errors.New("app: the flow has finished")

// msgFlowFinished answers a step of a finished flow.
const msgFlowFinished = "本次操作已经完成，不能重复提交。如需再次办理，请重新开始。"

// checkFlow refuses a step of a flow that has finished. A flow without an ID is a bug in the
// caller, not a member's mistake.
func (s *Service) checkFlow(ctx context.Context, fl Flow) error {
	if fl.ID == "" {
		return errors.New("app: a member flow step without a flow id")
	}
	done, err := s.Store.FlowFinished(ctx, fl.ID)
	if err != nil {
		return err
	}
	if done {
		return Wrap(ECONFLICT, ErrFlowFinished, msgFlowFinished)
	}
	return nil
}

// finishFlow records that fl has finished, after its effect happened. The effect stands whatever
// happens here, so a failure is logged, not returned: the member sees the outcome, and the
// effects themselves are guarded against repetition (single-use SMS codes, conditional updates).
func (s *Service) finishFlow(ctx context.Context, fl Flow) {
	err := s.Store.FinishFlow(context.WithoutCancel(ctx), fl.ID, fl.Expires)
	switch ErrorCode(err) {
	case "", ECONFLICT: // ECONFLICT: a concurrent step of the same flow finished it first
	default:
		s.log().Error("record finished flow", "err", err)
	}
}

// finishedBind answers a bind step (Bind, Rebind) of a finished flow: the finished state, i.e.
// the person's live binding as "already bound" with nothing done, or, when the number has no live
// binding any more (it was unbound since), ErrFlowFinished. It returns nil, nil for a flow that has
// not finished.
func (s *Service) finishedBind(ctx context.Context, fl Flow, p *Person) (*BindResult, error) {
	err := s.checkFlow(ctx, fl)
	if !errors.Is(err, ErrFlowFinished) {
		return nil, err
	}
	b, lerr := s.liveBindingOf(ctx, p.Number)
	switch ErrorCode(lerr) {
	case "":
		return s.withQRCode(ctx, s.alreadyBound(b)), nil
	case ENOTFOUND:
		return nil, err
	}
	return nil, lerr
}
