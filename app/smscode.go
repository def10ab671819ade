package app

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"math/big"
	"strings"
	"sync"
	"time"
)

// Purpose is what an SMS code is for. Its values are part of CONTRACT §4 (the school's SMS
// gateway receives them) and are stored with each code.
type Purpose string

// SMS code purposes.
const (
	PurposeVerify Purpose = "verify"  // join verification (ConfirmVerify)
	PurposeUnbind Purpose = "unbind"  // Unbind
	PurposeRebind Purpose = "migrate" // 换绑 (Rebind); the wire value predates the name
)

// Valid reports whether p is one of the three purposes.
func (p Purpose) Valid() bool {
	return p == PurposeVerify || p == PurposeUnbind || p == PurposeRebind
}

// SMSPolicy holds the limits of CONTRACT §4; zero fields get the contract's defaults.
type SMSPolicy struct {
	TTL         time.Duration // code validity (5m)
	Cooldown    time.Duration // one send per mobile per Cooldown (60s)
	DailyLimit  int           // sends per mobile per 24 h (10)
	MaxAttempts int           // wrong attempts per code (5)
	IPLimit     int           // sends per requesting IP per IPWindow (200: a campus NAT hides many members)
	IPWindow    time.Duration // (1h)
	// RebindDailyLimit caps the 换绑 codes one requesting number may have sent per 24 h
	// (sms.migrate_daily_limit, 3); they do not count against the holder's DailyLimit.
	RebindDailyLimit int
	// Secret keys the code hash so a database dump does not reveal codes (derive it from
	// server.session_secret).
	Secret []byte
}

func (p SMSPolicy) withDefaults() SMSPolicy {
	if p.TTL <= 0 {
		p.TTL = 5 * time.Minute
	}
	if p.Cooldown <= 0 {
		p.Cooldown = time.Minute
	}
	if p.DailyLimit <= 0 {
		p.DailyLimit = 10
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.IPLimit <= 0 {
		p.IPLimit = 200
	}
	if p.IPWindow <= 0 {
		p.IPWindow = time.Hour
	}
	if p.RebindDailyLimit <= 0 {
		p.RebindDailyLimit = 3
	}
	return p
}

// CodeTTL is how long an SMS code stays valid (sms.code_ttl, default 5 minutes).
func (s *Service) CodeTTL() time.Duration { return s.SMSPolicy.withDefaults().TTL }

// SendCode sends a fresh 6-digit code for purpose to mobile, enforcing the cooldown, the daily cap
// and the per-IP limit. Only the code's hash is stored.
func (s *Service) SendCode(ctx context.Context, mobile string, purpose Purpose, ip string) error {
	return s.sendCode(ctx, codeRequest{mobile: mobile, purpose: purpose, ip: ip})
}

// codeRequest is one request for an SMS code.
type codeRequest struct {
	mobile  string
	purpose Purpose
	ip      string
	// rebind is set when the code goes to the holder of an earlier binding on behalf of the
	// person who asks to take it over (换绑): such codes are capped per requesting number and do
	// not use up the holder's own daily cap.
	rebind *rebindRequest
}

// rebindRequest names who asks for a 换绑 code and what it will do.
type rebindRequest struct {
	requester string // the new number asking
	from      string // the number of the binding the code releases
}

func (s *Service) sendCode(ctx context.Context, req codeRequest) error {
	p := s.SMSPolicy.withDefaults()
	c, code, fleetID, err := s.reserveCode(ctx, p, req)
	if err != nil {
		return err
	}
	if err := s.SMS.Send(ctx, req.mobile, code, req.purpose, p.message(req, code)); err != nil {
		// A code that was never delivered must not verify. If marking it fails, it still expires
		// unseen; the send error is the one to report.
		if uerr := s.Store.UseSMSCode(ctx, c.ID, c.CreatedAt); uerr != nil {
			s.log().Warn("void undelivered sms code", "mobile", MaskMobile(req.mobile), "err", uerr)
		}
		s.undoFleet(ctx, fleetID, p.fleetLimits(req)[:1]) // the cooldown, as in the database
		if ErrorCode(err) == EINTERNAL {
			return Wrap(EUNAVAILABLE, err, "短信发送失败，请稍后再试。")
		}
		return err
	}
	s.log().Info("sms code sent", "mobile", MaskMobile(req.mobile), "purpose", string(req.purpose))
	return nil
}

// message is the SMS text for a code. A 换绑 code says what it will do, for which numbers, and to
// ignore it when the holder did not ask: it may have been requested by someone else.
func (p SMSPolicy) message(req codeRequest, code string) string {
	minutes := int(p.TTL.Minutes())
	if r := req.rebind; r != nil {
		from, to := MaskPair(r.from, r.requester)
		return fmt.Sprintf("【微校园助手】验证码 %s，用于把本手机号绑定的学号/工号 %s 换绑到 %s："+
			"验证后原企业微信账号将被解除。%d 分钟内有效。如非本人申请，请忽略本短信，切勿把验证码告诉他人。",
			code, from, to, minutes)
	}
	return fmt.Sprintf("【微校园助手】你的验证码是 %s，%d 分钟内有效。如非本人操作，请忽略本短信。", code, minutes)
}

// reserveCode checks the limits and stores a new code. The check and the insert run under a
// per-mobile lock, so two simultaneous requests cannot both pass the cooldown within one
// replica; across replicas the fleet limits (Service.Limits) make the same checks atomically.
// It returns the fleet's id of the send ("" without fleet limits).
func (s *Service) reserveCode(ctx context.Context, p SMSPolicy, req codeRequest) (*SMSCode, string, string, error) {
	mu := s.smsLocks.of(req.mobile)
	mu.Lock()
	defer mu.Unlock()
	now := s.now()
	if err := s.checkCodeLimits(ctx, p, req, now); err != nil {
		return nil, "", "", err
	}
	fleetID, err := s.allowFleet(ctx, p, req)
	if err != nil {
		return nil, "", "", err
	}
	code, err := randomCode()
	if err != nil {
		s.undoFleet(ctx, fleetID, p.fleetLimits(req))
		return nil, "", "", fmt.Errorf("app: sms code: %w", err)
	}
	c := &SMSCode{Mobile: req.mobile, Purpose: req.purpose, Hash: p.hash(req.mobile, req.purpose, code), IP: req.ip,
		ExpiresAt: now.Add(p.TTL), CreatedAt: now}
	if req.rebind != nil {
		c.Requester = req.rebind.requester
	}
	if err := s.Store.CreateSMSCode(ctx, c); err != nil {
		s.undoFleet(ctx, fleetID, p.fleetLimits(req))
		return nil, "", "", err
	}
	return c, code, fleetID, nil
}

// checkCodeLimits applies the cooldown per mobile, then the daily cap (per requesting number for
// 换绑 codes, per mobile for the holder's own), then the per-IP limit.
func (s *Service) checkCodeLimits(ctx context.Context, p SMSPolicy, req codeRequest, now time.Time) error {
	if last, err := s.Store.LatestSMSCode(ctx, req.mobile, ""); err == nil {
		// A code the provider failed to send was marked used at once: it holds nobody back.
		undelivered := last.UsedAt != nil && !last.UsedAt.After(last.CreatedAt)
		if wait := last.CreatedAt.Add(p.Cooldown).Sub(now); wait > 0 && !undelivered {
			return errCooldown(wait)
		}
	} else if ErrorCode(err) != ENOTFOUND {
		return err
	}
	day := now.Add(-24 * time.Hour)
	if r := req.rebind; r != nil {
		n, err := s.Store.CountSMSCodesByRequester(ctx, r.requester, day)
		if err != nil {
			return err
		}
		if n >= p.RebindDailyLimit {
			return p.errDailyCap(req)
		}
	} else {
		n, err := s.Store.CountSMSCodes(ctx, req.mobile, day)
		if err != nil {
			return err
		}
		if n >= p.DailyLimit {
			return p.errDailyCap(req)
		}
	}
	if req.ip == "" {
		return nil
	}
	n, err := s.Store.CountSMSCodesByIP(ctx, req.ip, now.Add(-p.IPWindow))
	if err != nil {
		return err
	}
	if n >= p.IPLimit {
		return errIPCap()
	}
	return nil
}

func errCooldown(wait time.Duration) error {
	return Errorf(ETOOMANY, "验证码发送过于频繁，请 %d 秒后再试。", int(wait.Seconds())+1)
}

// errDailyCap is the refusal of the daily cap that applies to req.
func (p SMSPolicy) errDailyCap(req codeRequest) error {
	if req.rebind != nil {
		return Errorf(ETOOMANY, "今日换绑验证码的发送次数已达上限（%d 次），请明天再试。", p.RebindDailyLimit)
	}
	return Errorf(ETOOMANY, "该手机号今日获取验证码次数已达上限（%d 次），请明天再试。", p.DailyLimit)
}

func errIPCap() error {
	return Errorf(ETOOMANY, "当前网络获取验证码过于频繁，请稍后再试。")
}

// stripedLock serialises work per key with a fixed number of mutexes (no growth, no cleanup).
type stripedLock [64]sync.Mutex

func (l *stripedLock) of(key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &l[h.Sum32()%uint32(len(l))]
}

// CheckCode verifies code for mobile and purpose and consumes it. Every guess is counted before
// it is compared (Store.ClaimSMSAttempt), so at most MaxAttempts guesses are evaluated per code,
// even when they arrive together; after that even the right code is refused. Wrong, used or
// exhausted codes are EINVALID; an expired one is EEXPIRED.
func (s *Service) CheckCode(ctx context.Context, mobile string, purpose Purpose, code string) error {
	p := s.SMSPolicy.withDefaults()
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return Errorf(EINVALID, "请输入短信中的 6 位数字验证码。")
	}
	c, err := s.Store.LatestSMSCode(ctx, mobile, purpose)
	if ErrorCode(err) == ENOTFOUND {
		return Errorf(EINVALID, "请先获取短信验证码。")
	} else if err != nil {
		return err
	}
	now := s.now()
	if err := p.usable(c, now); err != nil {
		return err
	}
	n, err := s.Store.ClaimSMSAttempt(ctx, c.ID, p.MaxAttempts, now)
	if ErrorCode(err) == ECONFLICT {
		// Used, expired or out of guesses since we read it: say which, from a fresh read.
		if fresh, ferr := s.Store.LatestSMSCode(ctx, mobile, purpose); ferr == nil && fresh.ID == c.ID {
			if uerr := p.usable(fresh, now); uerr != nil {
				return uerr
			}
		}
		return Errorf(EINVALID, "验证码错误次数过多，请重新获取。")
	} else if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(c.Hash), []byte(p.hash(mobile, purpose, code))) != 1 {
		if left := p.MaxAttempts - n; left > 0 {
			return Errorf(EINVALID, "验证码错误，还可尝试 %d 次。", left)
		}
		return Errorf(EINVALID, "验证码错误次数过多，请重新获取。")
	}
	if err := s.Store.UseSMSCode(ctx, c.ID, now); err != nil {
		if ErrorCode(err) == ECONFLICT {
			return Errorf(EINVALID, "该验证码已失效，请重新获取。")
		}
		return err
	}
	return nil
}

// usable reports why code c can take no more guesses at now, or nil.
func (p SMSPolicy) usable(c *SMSCode, now time.Time) error {
	switch {
	case c.UsedAt != nil:
		return Errorf(EINVALID, "该验证码已失效，请重新获取。")
	case !now.Before(c.ExpiresAt):
		return Errorf(EEXPIRED, "验证码已过期（有效期 %d 分钟），请重新获取。", int(p.TTL.Minutes()))
	case c.Attempts >= p.MaxAttempts:
		return Errorf(EINVALID, "验证码错误次数过多，请重新获取。")
	}
	return nil
}

func (p SMSPolicy) hash(mobile string, purpose Purpose, code string) string {
	m := hmac.New(sha256.New, p.Secret)
	m.Write([]byte(mobile + "\x00" + string(purpose) + "\x00" + code))
	return hex.EncodeToString(m.Sum(nil))
}

func randomCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}
