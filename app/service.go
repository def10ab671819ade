package app

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Service holds the use cases of wecampus. Set every dependency field in main.go; zero-value
// optional fields get sensible defaults through the accessors below.
type Service struct {
	Store Store
	WeCom WeCom
	SMS   SMS
	CAS   CAS

	// Identity decides who may bind and as which WeCom userid (identity.*).
	Identity *IdentityPolicy
	// SMSPolicy holds the SMS code limits (sms.*).
	SMSPolicy SMSPolicy
	// PersonIDKey keys the hash of CAS person ids (identity.person_attribute). When set, 换绑 is
	// offered only between bindings of the same person id; nil falls back to equal names.
	PersonIDKey []byte
	// Retention says how long personal data is kept (retention.*).
	Retention RetentionPolicy
	// Admins lists who may use the helpdesk console (admin.operators, admin.viewers).
	Admins AdminPolicy
	// VerifyMode is wecom.verify_mode: VerifyTfa (default, also for "") or VerifyAuthSucc.
	VerifyMode VerifyMode
	// JoinQRCodeURL, when set, is shown on the follow page instead of asking WeCom for the
	// corp's join QR code (wecom.join_qrcode_url).
	JoinQRCodeURL string
	// OutboxLease is how long a claimed outbox message is held without renewal; 0 means a minute.
	OutboxLease time.Duration

	// BaseURL is the public origin (server.base_url) every link in replies derives from.
	BaseURL string
	// HelpKey is the menu click key answered with the help text (default "HELP").
	HelpKey string
	// HelpContact is server.help_contact: the help desk the help text names ("" names none).
	HelpContact string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives operational logs; nil means slog.Default().
	Log *slog.Logger
	// Limits holds the SMS limits for the whole fleet (redis.*); nil: the database's checks
	// alone, which are exact within one replica and always the floor.
	Limits Limiter

	smsLocks stripedLock // per-mobile: the SMS limit checks and the insert happen as one step

	textOnce sync.Once
	texts    replyTexts

	qrMu  sync.Mutex
	qrURL string
	qrAt  time.Time

	wakeOnce sync.Once
	wake     chan struct{} // nudges RunBackground after a callback queued a message

	marks pendingMarks // outbox messages sent but not yet recorded as sent
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Service) helpKey() string {
	if s.HelpKey != "" {
		return s.HelpKey
	}
	return "HELP"
}

// FindBinding looks a binding up by number, userid or mobile: the live one first, else the most
// recent historical one. ENOTFOUND if there is none.
func (s *Service) FindBinding(ctx context.Context, key string) (*Binding, error) {
	if key == "" {
		return nil, Errorf(EINVALID, "请提供学号/工号、userid 或手机号")
	}
	return s.Store.FindLatestBinding(ctx, key)
}

// ListBindings lists bindings, optionally filtered by status.
func (s *Service) ListBindings(ctx context.Context, f BindingFilter) ([]*Binding, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, Errorf(EINVALID, "未知状态 %q（可选 pending、active、unbound、migrated）", f.Status)
	}
	return s.Store.FindBindings(ctx, f)
}

// Events returns the audit trail of a binding, oldest first.
func (s *Service) Events(ctx context.Context, bindingID int64) ([]*Event, error) {
	return s.Store.FindEvents(ctx, bindingID)
}

// Ping checks that the database answers (the readiness probe).
func (s *Service) Ping(ctx context.Context) error { return s.Store.Ping(ctx) }

// LoginURL is the school's CAS login URL (renew=true) that returns to service.
func (s *Service) LoginURL(service string) string { return s.CAS.LoginURL(service) }

// LogoutURL is the school's CAS logout URL that returns to service.
func (s *Service) LogoutURL(service string) string { return s.CAS.LogoutURL(service) }
