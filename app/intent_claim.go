package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
)

// Claims on intents. One request or repair at a time works on an intent, whichever replica it
// runs on: it holds a claim (intents.claim_owner, claim_until) taken by a conditional write, so
// that two replicas never read and write WeCom for one intent at once (one user/create, one
// invitation). A claim runs out by itself when its holder dies; it is renewed before each further
// WeCom write, and released when the request ends with the intent still open.
const (
	// intentLease is how long a claim holds without renewal. A request killed mid-bind blocks its
	// number this long at most; a WeCom call (wecom.timeout, default 5 s) fits well within it.
	intentLease = 30 * time.Second
	// intentSettle is how long after a WeCom write whose outcome is unknown a read that finds no
	// member is believed: WeCom may land a create some time after the call timed out.
	intentSettle = time.Minute
	// intentStale is how long an intent without a claim (written by a release before claims
	// existed) is left alone by the repair: its request may still be running.
	intentStale = 2 * time.Minute
)

// claimState is what this process knows of its claim on an intent.
type claimState struct {
	held   bool      // this process holds the claim named by Intent.ClaimOwner
	at     time.Time // taken or last renewed
	settle time.Time // a read finding no member is believed from then on
	absent bool      // a read under this claim found no member
}

var (
	// errClaimLost: another request or replica took the intent over; leave it to them.
	errClaimLost = errors.New("app: intent claim lost")
	// errNotSettled: WeCom reads no member, but a write of the intent may still land.
	errNotSettled = errors.New("app: intent not settled yet")
)

// errInProgress answers a request for a number another request or replica works on: wait is how
// long that may still take.
func errInProgress(wait time.Duration) error {
	return &Error{Code: ECONFLICT, Err: errClaimLost,
		Message: fmt.Sprintf("正在为你办理绑定，请约 %d 秒后再次提交查看结果。", waitSeconds(wait))}
}

// notSettled answers a request whose member WeCom may still create: wait is how long until a read
// can tell.
func notSettled(wait time.Duration) error {
	return &Error{Code: EUNAVAILABLE, Err: errNotSettled,
		Message: fmt.Sprintf("企业微信尚未确认你的账号是否已创建，请约 %d 秒后再次提交查看结果。", waitSeconds(wait))}
}

// waitSeconds rounds a wait up to whole 5-second steps, at least 5.
func waitSeconds(d time.Duration) int {
	return max(5, 5*int(math.Ceil(d.Seconds()/5)))
}

// newOwner names a claim.
func newOwner() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// newClaim prepares a new intent, claimed by this request, for CreateIntent.
func (s *Service) newClaim(in *Intent) {
	now := s.now()
	until := now.Add(intentLease)
	in.CreatedAt, in.ClaimOwner, in.ClaimUntil, in.Tries, in.SettleAt = now, newOwner(), &until, 1, nil
	in.claim = claimState{held: true, at: now}
}

// claimIntent takes the open intent in, as read from the store, for this request; ECONFLICT
// (errInProgress, with the wait) when another request or replica holds it or took it meanwhile.
func (s *Service) claimIntent(ctx context.Context, in *Intent) error {
	now := s.now()
	owner, until := newOwner(), now.Add(intentLease)
	if err := s.Store.ClaimIntent(ctx, in.ID, in.Tries, owner, now, until); err != nil {
		if ErrorCode(err) != ECONFLICT {
			return err
		}
		wait := in.busyFor(now)
		if wait == 0 {
			wait = intentLease // taken just now by another
		}
		return errInProgress(wait)
	}
	in.claim = claimState{held: true, at: now, settle: in.settleBound()}
	in.ClaimOwner, in.ClaimUntil, in.Tries = owner, &until, in.Tries+1
	return nil
}

// settleBound is when a read that finds no member of in, as read from the store, may be
// believed: its SettleAt, and intentSettle after its last claim ran out if that one was not
// released (its holder died, possibly during a write; an intent without a claim counts from its
// creation).
func (in *Intent) settleBound() time.Time {
	var t time.Time
	if in.SettleAt != nil {
		t = *in.SettleAt
	}
	if in.ClaimOwner != "" || in.ClaimUntil == nil {
		end := in.CreatedAt
		if in.ClaimUntil != nil {
			end = *in.ClaimUntil
		}
		if e := end.Add(intentSettle); e.After(t) {
			t = e
		}
	}
	return t
}

// idle reports whether no request works on in at now: its claim ran out or was released, or it
// has none and is older than intentStale.
func (in *Intent) idle(now time.Time) bool {
	if in.ClaimUntil == nil {
		return now.Sub(in.CreatedAt) >= intentStale
	}
	return !in.ClaimUntil.After(now)
}

// busyFor is how long from now the request working on in may still hold it.
func (in *Intent) busyFor(now time.Time) time.Duration {
	if in.ClaimUntil == nil {
		return max(0, in.CreatedAt.Add(intentStale).Sub(now))
	}
	return max(0, in.ClaimUntil.Sub(now))
}

// settleWait is how long until a read that finds no member of claimed intent in may be believed;
// 0 when it may be now.
func (s *Service) settleWait(in *Intent) time.Duration {
	return max(0, in.claim.settle.Sub(s.now()))
}

// unsure records that a WeCom write of claimed intent in had an unknown outcome: WeCom may land
// it late, so a read finding no member is believed only intentSettle from now.
func (s *Service) unsure(in *Intent) {
	if t := s.now().Add(intentSettle); t.After(in.claim.settle) {
		in.claim.settle = t
	}
}

// holdIntent is called before each WeCom write of claimed intent in: it renews the claim once
// half of it has passed, so that no other replica takes the intent over while the write runs;
// errInProgress when the claim was lost.
func (s *Service) holdIntent(ctx context.Context, in *Intent) error {
	if !in.claim.held {
		return errInProgress(intentLease)
	}
	now := s.now()
	if now.Sub(in.claim.at) < intentLease/2 {
		return nil
	}
	until := now.Add(intentLease)
	if err := s.Store.RenewIntentClaim(ctx, in.ID, in.ClaimOwner, until); err != nil {
		if ErrorCode(err) == ECONFLICT {
			in.claim.held = false
			return errInProgress(intentLease)
		}
		return err
	}
	in.ClaimUntil, in.claim.at = &until, now
	return nil
}

// releaseIntent ends this request's claim on in, which stays open for a later request or the
// repair, and records when a read finding no member may be believed. A failure is only logged:
// the claim then runs out by itself, which is as safe.
func (s *Service) releaseIntent(ctx context.Context, in *Intent) {
	if !in.claim.held {
		return
	}
	now := s.now()
	err := s.Store.ReleaseIntent(ctx, in.ID, in.ClaimOwner, now, in.claim.settle)
	if err != nil && ErrorCode(err) != ECONFLICT {
		s.log().Warn("release intent", "number", in.Number, "err", err)
	}
	in.ClaimOwner, in.ClaimUntil, in.claim.held = "", &now, false
	if !in.claim.settle.IsZero() {
		in.SettleAt = &in.claim.settle
	}
}

// keepOpen releases the claim on in, which stays open, and returns err.
func (s *Service) keepOpen(ctx context.Context, in *Intent, err error) error {
	s.releaseIntent(ctx, in)
	return err
}
