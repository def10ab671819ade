package store

import (
	"context"
	"errors"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/wecampus/wecampus/app"
)

const msgMessageNotFound = "未找到待发消息"

// outboxRow is an app message in the durable outbox. A message is due when it is unsent, its
// next_at has come and no lease is running; next_at NULL means given up. lease_until is set by a
// claim so that concurrent workers do not send the same message twice.
type outboxRow struct {
	ID         int64      `gorm:"primaryKey"`
	DedupKey   string     `gorm:"size:191;not null;uniqueIndex:uniq_outbox_dedup_key"`
	ToUser     string     `gorm:"size:1024;not null"`
	Content    string     `gorm:"type:text;not null"`
	Attempts   int        `gorm:"not null"`
	NextAt     *time.Time `gorm:"index:idx_outbox_next_at"`
	LeaseUntil *time.Time
	SentAt     *time.Time
	LastError  string    `gorm:"size:1024;not null"`
	CreatedAt  time.Time `gorm:"not null"`
}

func (outboxRow) TableName() string { return "outbox" }

func (r *outboxRow) fromApp(m *app.OutboxMessage) {
	*r = outboxRow{
		ID:        m.ID,
		DedupKey:  uniqueKey(m.DedupKey),
		ToUser:    m.ToUser,
		Content:   m.Content,
		Attempts:  m.Attempts,
		NextAt:    tsPtr(&m.NextAt),
		SentAt:    tsPtr(m.SentAt),
		LastError: truncate(m.LastError, maxErrorLen),
		CreatedAt: ts(m.CreatedAt),
	}
}

func (r *outboxRow) toApp() *app.OutboxMessage {
	m := &app.OutboxMessage{
		ID:        r.ID,
		DedupKey:  r.DedupKey,
		ToUser:    r.ToUser,
		Content:   r.Content,
		Attempts:  r.Attempts,
		SentAt:    r.SentAt,
		LastError: r.LastError,
		CreatedAt: r.CreatedAt,
	}
	if r.NextAt != nil {
		m.NextAt = *r.NextAt
	}
	return m
}

// maxErrorLen is the size of outbox.last_error in characters.
const maxErrorLen = 1024

// truncate cuts s to at most n characters without splitting one.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// EnqueueMessage adds m to the outbox, due at m.NextAt (now when zero). A message whose DedupKey
// is already queued is not added again, and that is not an error.
func (db *DB) EnqueueMessage(ctx context.Context, m app.OutboxMessage) error {
	if m.DedupKey == "" {
		return app.Errorf(app.EINVALID, "缺少消息去重键")
	}
	var row outboxRow
	row.fromApp(&m)
	now := db.timestamp()
	row.ID, row.CreatedAt = 0, now
	if row.NextAt == nil {
		row.NextAt = &now
	}
	err := db.gdb.WithContext(ctx).Create(&row).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return nil
	}
	return storeErr("enqueue message", err, "", "")
}

// dueMessage is the condition of a message that may be claimed at a time (bound twice).
const dueMessage = "sent_at IS NULL AND next_at <= ? AND (lease_until IS NULL OR lease_until <= ?)"

// ClaimMessages returns up to limit messages due at now, oldest due first, each leased until
// leaseUntil. Every message is taken by a conditional UPDATE that re-checks it is still due, so
// two concurrent claimers never get the same message.
func (db *DB) ClaimMessages(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*app.OutboxMessage, error) {
	if limit <= 0 {
		return nil, nil
	}
	now, leaseUntil = ts(now), ts(leaseUntil)
	var rows []outboxRow
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		var ids []int64
		if err := tx.Model(&outboxRow{}).Where(dueMessage, now, now).
			Order("next_at, id").Limit(limit).Pluck("id", &ids).Error; err != nil {
			return err
		}
		claimed := make([]int64, 0, len(ids))
		for _, id := range ids {
			res := tx.Model(&outboxRow{}).Where("id = ?", id).Where(dueMessage, now, now).
				Update("lease_until", leaseUntil)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 1 {
				claimed = append(claimed, id)
			}
		}
		if len(claimed) == 0 {
			return nil
		}
		return tx.Where("id IN ?", claimed).Order("next_at, id").Find(&rows).Error
	})
	if err != nil {
		return nil, storeErr("claim messages", err, "", "")
	}
	return toApps(rows, (*outboxRow).toApp), nil
}

// MarkMessageSent records a successful delivery and ends the lease.
func (db *DB) MarkMessageSent(ctx context.Context, id int64, at time.Time) error {
	return db.updateMessage(ctx, "mark message sent", id, map[string]any{
		"sent_at":     ts(at),
		"lease_until": nil,
	})
}

// MarkMessageFailed counts a failed attempt, keeps errText and ends the lease; the message is due
// again at next, or never when next is zero.
func (db *DB) MarkMessageFailed(ctx context.Context, id int64, errText string, next time.Time) error {
	return db.updateMessage(ctx, "mark message failed", id, map[string]any{
		"attempts":    gorm.Expr("attempts + 1"),
		"last_error":  truncate(errText, maxErrorLen),
		"next_at":     tsPtr(&next),
		"lease_until": nil,
	})
}

func (db *DB) updateMessage(ctx context.Context, op string, id int64, cols map[string]any) error {
	res := db.gdb.WithContext(ctx).Model(&outboxRow{}).Where("id = ?", id).Updates(cols)
	if res.Error != nil {
		return storeErr(op, res.Error, "", "")
	}
	if res.RowsAffected == 0 {
		return app.Errorf(app.ENOTFOUND, msgMessageNotFound)
	}
	return nil
}
