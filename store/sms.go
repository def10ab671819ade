package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/wecampus/wecampus/app"
)

const msgCodeNotFound = "验证码不存在,请重新获取"

// smsCodeRow is a sent verification code; only the keyed hash of the code is stored.
type smsCodeRow struct {
	ID        int64     `gorm:"primaryKey"`
	Mobile    string    `gorm:"size:32;not null;index:idx_sms_codes_mobile,priority:1"`
	Purpose   string    `gorm:"size:16;not null"`
	Hash      string    `gorm:"size:128;not null"`
	IP        string    `gorm:"column:ip;size:64;not null;index:idx_sms_codes_ip,priority:1"`
	Requester string    `gorm:"size:64;not null;default:'';index:idx_sms_codes_requester,priority:1"`
	Attempts  int       `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null"`
	UsedAt    *time.Time
	CreatedAt time.Time `gorm:"not null;index:idx_sms_codes_mobile,priority:2;index:idx_sms_codes_ip,priority:2;index:idx_sms_codes_requester,priority:2"`
}

func (smsCodeRow) TableName() string { return "sms_codes" }

func (r *smsCodeRow) fromApp(c *app.SMSCode) {
	*r = smsCodeRow{
		ID:        c.ID,
		Mobile:    c.Mobile,
		Purpose:   string(c.Purpose),
		Hash:      c.Hash,
		IP:        c.IP,
		Requester: c.Requester,
		Attempts:  c.Attempts,
		ExpiresAt: ts(c.ExpiresAt),
		UsedAt:    tsPtr(c.UsedAt),
		CreatedAt: ts(c.CreatedAt),
	}
}

func (r *smsCodeRow) toApp() *app.SMSCode {
	return &app.SMSCode{
		ID:        r.ID,
		Mobile:    r.Mobile,
		Purpose:   app.Purpose(r.Purpose),
		Hash:      r.Hash,
		IP:        r.IP,
		Requester: r.Requester,
		Attempts:  r.Attempts,
		ExpiresAt: r.ExpiresAt,
		UsedAt:    r.UsedAt,
		CreatedAt: r.CreatedAt,
	}
}

// CreateSMSCode stores a newly sent code, filling in ID and (when zero) CreatedAt.
func (db *DB) CreateSMSCode(ctx context.Context, c *app.SMSCode) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	var row smsCodeRow
	row.fromApp(c)
	row.ID = 0
	if c.CreatedAt.IsZero() {
		row.CreatedAt = db.timestamp()
	}
	if err := db.gdb.WithContext(ctx).Create(&row).Error; err != nil {
		return storeErr("create sms code", err, "", "")
	}
	c.ID, c.CreatedAt = row.ID, row.CreatedAt
	return nil
}

// LatestSMSCode returns the newest code for mobile and purpose, or ENOTFOUND.
func (db *DB) LatestSMSCode(ctx context.Context, mobile string, purpose app.Purpose) (*app.SMSCode, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	var row smsCodeRow
	q := db.gdb.WithContext(ctx).Where("mobile = ?", mobile)
	if purpose != "" {
		q = q.Where("purpose = ?", string(purpose))
	}
	err := q.Order("created_at DESC, id DESC").Limit(1).Take(&row).Error
	if err != nil {
		return nil, storeErr("latest sms code", err, msgCodeNotFound, "")
	}
	return row.toApp(), nil
}

// CountSMSCodes counts the codes sent to mobile for its holder's own use (any purpose; 换绑 codes
// requested by another number are not counted) at or after since.
func (db *DB) CountSMSCodes(ctx context.Context, mobile string, since time.Time) (int, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	return db.countSMSCodes(ctx, "count sms codes", "mobile = ? AND requester = ''", mobile, since)
}

// CountSMSCodesByIP counts codes requested from ip at or after since.
func (db *DB) CountSMSCodesByIP(ctx context.Context, ip string, since time.Time) (int, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	return db.countSMSCodes(ctx, "count sms codes by ip", "ip = ?", ip, since)
}

// CountSMSCodesByRequester counts the 换绑 codes requested by a number at or after since.
func (db *DB) CountSMSCodesByRequester(ctx context.Context, requester string, since time.Time) (int, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	return db.countSMSCodes(ctx, "count sms codes by requester", "requester = ?", requester, since)
}

func (db *DB) countSMSCodes(ctx context.Context, op, cond, value string, since time.Time) (int, error) {
	var n int64
	err := db.gdb.WithContext(ctx).Model(&smsCodeRow{}).
		Where(cond+" AND created_at >= ?", value, ts(since)).Count(&n).Error
	if err != nil {
		return 0, storeErr(op, err, "", "")
	}
	return int(n), nil
}

// ClaimSMSAttempt counts one guess at code id before the guess is compared, and reports its
// number (1 for the first guess). It is one conditional UPDATE: the guess is counted only while
// the code is unused, unexpired at now and has had fewer than max guesses, so concurrent guesses
// can never be evaluated more than max times in all. When the condition fails it returns
// ECONFLICT (used, expired or out of guesses) or ENOTFOUND.
func (db *DB) ClaimSMSAttempt(ctx context.Context, id int64, maxAttempts int, now time.Time) (int, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	var attempts int
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&smsCodeRow{}).
			Where("id = ? AND used_at IS NULL AND attempts < ? AND expires_at > ?", id, maxAttempts, ts(now)).
			Update("attempts", gorm.Expr("attempts + 1"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			var n int64
			if err := tx.Model(&smsCodeRow{}).Where("id = ?", id).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return gorm.ErrRecordNotFound
			}
			return app.Errorf(app.ECONFLICT, "验证码已失效,请重新获取。")
		}
		// The UPDATE holds the row lock until commit, so this reads our own increment.
		return tx.Model(&smsCodeRow{}).Select("attempts").Where("id = ?", id).Scan(&attempts).Error
	})
	if err != nil {
		return 0, storeErr("claim sms attempt", err, msgCodeNotFound, "")
	}
	return attempts, nil
}

// UseSMSCode marks a code used at at. It is a conditional UPDATE on used_at IS NULL, so of two
// concurrent uses exactly one succeeds; the other (and any later one) gets ECONFLICT. The guess
// that uses it must have been counted by ClaimSMSAttempt first.
func (db *DB) UseSMSCode(ctx context.Context, id int64, at time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		return updateOnce(tx, &smsCodeRow{}, id, "used_at IS NULL", nil, map[string]any{"used_at": ts(at)},
			"验证码已使用,请重新获取")
	})
	return storeErr("use sms code", err, msgCodeNotFound, "")
}
