package app_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/store/storetest"
)

// smsRecorder is an app.SMS that records what it was asked to send, or fails when told to.
type smsRecorder struct {
	mu   sync.Mutex
	sent []sentSMS
	fail error
}

type sentSMS struct {
	mobile, code string
	purpose      app.Purpose
	message      string
}

func (r *smsRecorder) Send(_ context.Context, mobile, code string, purpose app.Purpose, message string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.sent = append(r.sent, sentSMS{mobile, code, purpose, message})
	return nil
}

func (r *smsRecorder) last(t *testing.T) sentSMS {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sent) == 0 {
		t.Fatal("no SMS sent")
	}
	return r.sent[len(r.sent)-1]
}

func (r *smsRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newSMSService is an app.Service over a real SQLite store with a recording SMS provider and a
// controllable clock.
func newSMSService(t *testing.T, policy app.SMSPolicy) (*app.Service, *smsRecorder, *fakeClock, *store.DB) {
	t.Helper()
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)}
	db, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "sms.db")}, clock.now, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if policy.Secret == nil {
		policy.Secret = []byte("sms-test-secret")
	}
	rec := &smsRecorder{}
	return &app.Service{Store: db, SMS: rec, SMSPolicy: policy, Now: clock.now}, rec, clock, db
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if app.ErrorCode(err) != code {
		t.Fatalf("err = %v, want code %q", err, code)
	}
}

func TestSMSCodeIsHashedAndSingleUse(t *testing.T) {
	ctx := context.Background()
	svc, rec, _, db := newSMSService(t, app.SMSPolicy{})
	if err := svc.SendCode(ctx, "13800001234", app.PurposeRebind, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	sent := rec.last(t)
	if !regexp.MustCompile(`^[0-9]{6}$`).MatchString(sent.code) || sent.mobile != "13800001234" || sent.purpose != app.PurposeRebind {
		t.Fatalf("sent %+v", sent)
	}
	if !strings.Contains(sent.message, sent.code) || !strings.Contains(sent.message, "5 分钟") {
		t.Fatalf("message %q", sent.message)
	}
	stored, err := db.LatestSMSCode(ctx, "13800001234", app.PurposeRebind)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored.Hash, sent.code) || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(stored.Hash) {
		t.Fatalf("stored hash %q for code %s", stored.Hash, sent.code)
	}
	// The hash is keyed: another secret gives another hash for the same code.
	other, _, _, odb := newSMSService(t, app.SMSPolicy{Secret: []byte("another secret")})
	if err := other.SendCode(ctx, "13800001234", app.PurposeRebind, ""); err != nil {
		t.Fatal(err)
	}
	if s2, _ := odb.LatestSMSCode(ctx, "13800001234", app.PurposeRebind); s2.Hash == stored.Hash {
		t.Fatal("two secrets, same hash (codes are random, so this would also be a 1e-6 fluke)")
	}
	if stored.IP != "10.0.0.1" || !stored.ExpiresAt.Equal(stored.CreatedAt.Add(5*time.Minute)) {
		t.Fatalf("stored %+v", stored)
	}

	wantCode(t, svc.CheckCode(ctx, "13800001234", app.PurposeVerify, sent.code), app.EINVALID) // other purpose
	wantCode(t, svc.CheckCode(ctx, "13900001234", app.PurposeRebind, sent.code), app.EINVALID) // other mobile
	if err := svc.CheckCode(ctx, "13800001234", app.PurposeRebind, " "+sent.code+" "); err != nil {
		t.Fatalf("right code: %v", err)
	}
	wantCode(t, svc.CheckCode(ctx, "13800001234", app.PurposeRebind, sent.code), app.EINVALID) // used
}

func TestSMSCodeCooldownAndDailyCap(t *testing.T) {
	ctx := context.Background()
	svc, rec, clock, _ := newSMSService(t, app.SMSPolicy{DailyLimit: 3})
	send := func(purpose app.Purpose) error { return svc.SendCode(ctx, "13800001234", purpose, "") }

	if err := send(app.PurposeVerify); err != nil {
		t.Fatal(err)
	}
	// One send per mobile per minute, whatever the purpose.
	wantCode(t, send(app.PurposeVerify), app.ETOOMANY)
	wantCode(t, send(app.PurposeRebind), app.ETOOMANY)
	clock.advance(59 * time.Second)
	err := send(app.PurposeVerify)
	wantCode(t, err, app.ETOOMANY)
	if !strings.Contains(app.ErrorMessage(err), "秒后再试") {
		t.Fatalf("cooldown message %q", app.ErrorMessage(err))
	}
	// Another mobile is not held back.
	if err := svc.SendCode(ctx, "13900001234", app.PurposeVerify, ""); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Second)
	if err := send(app.PurposeRebind); err != nil {
		t.Fatalf("after the cooldown: %v", err)
	}
	clock.advance(time.Minute)
	if err := send(app.PurposeUnbind); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute)
	err = send(app.PurposeVerify)
	wantCode(t, err, app.ETOOMANY) // the 4th in a day
	if !strings.Contains(app.ErrorMessage(err), "今日") {
		t.Fatalf("daily cap message %q", app.ErrorMessage(err))
	}
	if n := rec.count(); n != 4 { // 3 to the first mobile, 1 to the other
		t.Fatalf("%d SMS sent", n)
	}
	clock.advance(24 * time.Hour)
	if err := send(app.PurposeVerify); err != nil {
		t.Fatalf("a day later: %v", err)
	}
}

func TestSMSCodeWrongAttempts(t *testing.T) {
	ctx := context.Background()
	svc, rec, _, db := newSMSService(t, app.SMSPolicy{})
	if err := svc.SendCode(ctx, "13800001234", app.PurposeUnbind, ""); err != nil {
		t.Fatal(err)
	}
	code := rec.last(t).code
	wrong := "000000"
	if code == wrong {
		wrong = "000001"
	}
	// Malformed input is refused without costing an attempt.
	for _, bad := range []string{"", "12345", "1234567"} {
		wantCode(t, svc.CheckCode(ctx, "13800001234", app.PurposeUnbind, bad), app.EINVALID)
	}
	for i := 1; i <= 5; i++ {
		err := svc.CheckCode(ctx, "13800001234", app.PurposeUnbind, wrong)
		wantCode(t, err, app.EINVALID)
		if left := 5 - i; left > 0 && !strings.Contains(app.ErrorMessage(err), fmt.Sprintf("还可尝试 %d 次", left)) {
			t.Fatalf("attempt %d: %q", i, app.ErrorMessage(err))
		}
	}
	stored, _ := db.LatestSMSCode(ctx, "13800001234", app.PurposeUnbind)
	if stored.Attempts != 5 {
		t.Fatalf("attempts = %d", stored.Attempts)
	}
	err := svc.CheckCode(ctx, "13800001234", app.PurposeUnbind, code)
	wantCode(t, err, app.EINVALID)
	if !strings.Contains(app.ErrorMessage(err), "错误次数过多") {
		t.Fatalf("exhausted: %q", app.ErrorMessage(err))
	}
}

// claimCounter is the real store, counting the guesses it let through to be compared.
type claimCounter struct {
	*store.DB
	mu      sync.Mutex
	claimed int
}

func (c *claimCounter) ClaimSMSAttempt(ctx context.Context, id int64, maxAttempts int, now time.Time) (int, error) {
	n, err := c.DB.ClaimSMSAttempt(ctx, id, maxAttempts, now)
	if err == nil {
		c.mu.Lock()
		c.claimed++
		c.mu.Unlock()
	}
	return n, err
}

// TestSMSCodeConcurrentGuesses: 50 wrong guesses at the same instant, then the right code, on
// SQLite and MariaDB: exactly MaxAttempts guesses are compared and the right code is refused.
func TestSMSCodeConcurrentGuesses(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			clock := &fakeClock{t: time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)}
			db := &claimCounter{DB: storetest.Open(t, kind, clock.now)}
			rec := &smsRecorder{}
			svc := &app.Service{Store: db, SMS: rec, Now: clock.now,
				SMSPolicy: app.SMSPolicy{MaxAttempts: 5, Secret: []byte("sms-test-secret")}}
			if err := svc.SendCode(ctx, "13800001234", app.PurposeVerify, ""); err != nil {
				t.Fatal(err)
			}
			code := rec.last(t).code
			start := make(chan struct{})
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				messages []string
			)
			for i := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					guess := fmt.Sprintf("%06d", 999999-i)
					if guess == code {
						guess = "999900"
					}
					<-start
					err := svc.CheckCode(ctx, "13800001234", app.PurposeVerify, guess)
					mu.Lock()
					messages = append(messages, app.ErrorMessage(err))
					mu.Unlock()
				}()
			}
			close(start)
			wg.Wait()
			withLeft := 0
			for _, m := range messages {
				if strings.Contains(m, "还可尝试") {
					withLeft++
				}
			}
			if db.claimed != 5 || withLeft != 4 {
				t.Fatalf("guesses compared = %d (%d told how many are left), want 5 (4)", db.claimed, withLeft)
			}
			stored, err := db.LatestSMSCode(ctx, "13800001234", app.PurposeVerify)
			if err != nil || stored.Attempts != 5 {
				t.Fatalf("stored attempts = %+v, %v; want 5", stored, err)
			}
			err = svc.CheckCode(ctx, "13800001234", app.PurposeVerify, code)
			wantCode(t, err, app.EINVALID)
			if db.claimed != 5 || !strings.Contains(app.ErrorMessage(err), "错误次数过多") {
				t.Fatalf("right code after 50 wrong ones: %q (compared %d)", app.ErrorMessage(err), db.claimed)
			}
		})
	}
}

func TestSMSCodeExpiry(t *testing.T) {
	ctx := context.Background()
	svc, rec, clock, _ := newSMSService(t, app.SMSPolicy{})
	if err := svc.SendCode(ctx, "13800001234", app.PurposeRebind, ""); err != nil {
		t.Fatal(err)
	}
	code := rec.last(t).code
	clock.advance(5*time.Minute - time.Second)
	if err := svc.CheckCode(ctx, "13800001234", app.PurposeRebind, code); err != nil {
		t.Fatalf("just in time: %v", err)
	}
	clock.advance(time.Minute)
	if err := svc.SendCode(ctx, "13800001234", app.PurposeRebind, ""); err != nil {
		t.Fatal(err)
	}
	code = rec.last(t).code
	clock.advance(5 * time.Minute)
	err := svc.CheckCode(ctx, "13800001234", app.PurposeRebind, code)
	wantCode(t, err, app.EEXPIRED)
	if !strings.Contains(app.ErrorMessage(err), "过期") {
		t.Fatalf("expired: %q", app.ErrorMessage(err))
	}
}

func TestSMSCodeNewerSupersedesOlder(t *testing.T) {
	ctx := context.Background()
	svc, rec, clock, _ := newSMSService(t, app.SMSPolicy{})
	if err := svc.SendCode(ctx, "13800001234", app.PurposeVerify, ""); err != nil {
		t.Fatal(err)
	}
	first := rec.last(t).code
	clock.advance(time.Minute)
	if err := svc.SendCode(ctx, "13800001234", app.PurposeVerify, ""); err != nil {
		t.Fatal(err)
	}
	second := rec.last(t).code
	if first != second {
		wantCode(t, svc.CheckCode(ctx, "13800001234", app.PurposeVerify, first), app.EINVALID)
	}
	if err := svc.CheckCode(ctx, "13800001234", app.PurposeVerify, second); err != nil {
		t.Fatalf("newest code: %v", err)
	}
}

func TestSMSCodePerIPLimit(t *testing.T) {
	ctx := context.Background()
	svc, _, clock, _ := newSMSService(t, app.SMSPolicy{IPLimit: 3, IPWindow: time.Hour})
	for i := 0; i < 3; i++ {
		if err := svc.SendCode(ctx, fmt.Sprintf("1380000000%d", i), app.PurposeVerify, "10.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	err := svc.SendCode(ctx, "13800000009", app.PurposeVerify, "10.0.0.1")
	wantCode(t, err, app.ETOOMANY)
	if !strings.Contains(app.ErrorMessage(err), "网络") {
		t.Fatalf("IP limit message %q", app.ErrorMessage(err))
	}
	if err := svc.SendCode(ctx, "13800000009", app.PurposeVerify, "10.0.0.2"); err != nil {
		t.Fatalf("another IP: %v", err)
	}
	clock.advance(time.Hour + time.Second)
	if err := svc.SendCode(ctx, "13800000008", app.PurposeVerify, "10.0.0.1"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestSMSCodeSendFailure(t *testing.T) {
	ctx := context.Background()
	svc, rec, _, db := newSMSService(t, app.SMSPolicy{})
	rec.fail = errors.New("gateway down")
	err := svc.SendCode(ctx, "13800001234", app.PurposeVerify, "")
	wantCode(t, err, app.EUNAVAILABLE)
	// The code that never reached the member cannot be used.
	stored, err := db.LatestSMSCode(ctx, "13800001234", app.PurposeVerify)
	if err != nil || stored.UsedAt == nil {
		t.Fatalf("undelivered code: %+v %v", stored, err)
	}
	// Nor does it hold the member back: once the gateway works, a code is sent at once.
	rec.fail = nil
	if err := svc.SendCode(ctx, "13800001234", app.PurposeVerify, ""); err != nil {
		t.Fatalf("resend after a failed send: %v", err)
	}
	if err := svc.CheckCode(ctx, "13800001234", app.PurposeVerify, rec.last(t).code); err != nil {
		t.Fatal(err)
	}
}

// TestSMSCodeConcurrentSends: a double tap (or a script) sending at once gets one SMS; the rest
// hit the cooldown.
func TestSMSCodeConcurrentSends(t *testing.T) {
	svc, rec, _, _ := newSMSService(t, app.SMSPolicy{})
	svc.Store = slowLatest{svc.Store} // widen the window between the cooldown check and the insert
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = svc.SendCode(context.Background(), "13800000077", app.PurposeUnbind, "10.0.0.7")
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch app.ErrorCode(err) {
		case "":
			ok++
		case app.ETOOMANY:
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != 1 || rec.count() != 1 {
		t.Fatalf("%d sends succeeded, %d SMS sent; want 1 and 1", ok, rec.count())
	}
}

// slowLatest delays LatestSMSCode so that concurrent senders all read before any of them writes.
type slowLatest struct{ app.Store }

func (s slowLatest) LatestSMSCode(ctx context.Context, mobile string, purpose app.Purpose) (*app.SMSCode, error) {
	c, err := s.Store.LatestSMSCode(ctx, mobile, purpose)
	time.Sleep(20 * time.Millisecond)
	return c, err
}
