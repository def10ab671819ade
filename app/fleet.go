package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Limit is one rate limit: at most Max events for Key in any Window (a sliding window).
type Limit struct {
	Key    string // e.g. "sms:mobile:13800000000"; the implementation adds its own prefix
	Max    int
	Window time.Duration
}

// Decision is the answer of Limiter.Allow.
type Decision struct {
	OK bool
	// Refused is the index, in the limits given to Allow, of the first full limit (when !OK).
	Refused int
	// RetryAfter is how long until the refused limit has room again (when !OK).
	RetryAfter time.Duration
	// ID names the event counted (when OK), for Limiter.Undo.
	ID string
}

// Limiter holds rate limits for the whole fleet of replicas (package redis). It is optional: the
// database-enforced limits are the floor, and the Limiter makes them exact across replicas that
// race. Any error means the fleet limits are unavailable right now (Redis unreachable); callers
// then rely on the database's checks alone and go on.
type Limiter interface {
	// Allow counts one event against every limit at once, or against none: if one of them is
	// full, nothing is counted and the Decision names it.
	Allow(ctx context.Context, limits ...Limit) (Decision, error)
	// Undo removes the event id (Decision.ID) from limits, e.g. the cooldown of an SMS the
	// provider did not send.
	Undo(ctx context.Context, id string, limits ...Limit) error
}

// fleetLimits are the SMS limits of p for req held fleet-wide, in this order: the cooldown per
// mobile (SendCode undoes it alone when the provider fails, as the database does), the daily cap
// (per requesting number for a 换绑 code, else per mobile), and the per-IP cap when the IP is
// known. The keys hold a keyed hash of the mobile, number or IP, not the value.
func (p SMSPolicy) fleetLimits(req codeRequest) []Limit {
	m := p.keyHash("mobile", req.mobile)
	ls := []Limit{{Key: "sms:cooldown:" + m, Max: 1, Window: p.Cooldown}}
	if r := req.rebind; r != nil {
		ls = append(ls, Limit{Key: "sms:rebind:" + p.keyHash("number", r.requester), Max: p.RebindDailyLimit, Window: 24 * time.Hour})
	} else {
		ls = append(ls, Limit{Key: "sms:daily:" + m, Max: p.DailyLimit, Window: 24 * time.Hour})
	}
	if req.ip != "" {
		ls = append(ls, Limit{Key: "sms:ip:" + p.keyHash("ip", req.ip), Max: p.IPLimit, Window: p.IPWindow})
	}
	return ls
}

func (p SMSPolicy) keyHash(kind, value string) string {
	m := hmac.New(sha256.New, p.Secret)
	m.Write([]byte(kind + "\x00" + value))
	return hex.EncodeToString(m.Sum(nil)[:12])
}

// allowFleet counts the send req against the fleet limits and returns its id. It returns "" and
// no error when there are no fleet limits or they are unavailable: the database's checks, made
// just before, hold alone then.
func (s *Service) allowFleet(ctx context.Context, p SMSPolicy, req codeRequest) (string, error) {
	if s.Limits == nil {
		return "", nil
	}
	d, err := s.Limits.Allow(ctx, p.fleetLimits(req)...)
	switch {
	case err != nil:
		s.log().Debug("fleet sms limits unavailable; database limits only", "err", err)
		return "", nil
	case d.OK:
		return d.ID, nil
	case d.Refused == 0:
		return "", errCooldown(d.RetryAfter)
	case d.Refused == 1:
		return "", p.errDailyCap(req)
	}
	return "", errIPCap()
}

// undoFleet takes the send id back from limits (a send that did not happen, or did not reach
// the member). It runs even when ctx was cancelled.
func (s *Service) undoFleet(ctx context.Context, id string, limits []Limit) {
	if s.Limits == nil || id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.Limits.Undo(ctx, id, limits...); err != nil {
		s.log().Warn("undo fleet sms limits", "err", err)
	}
}
