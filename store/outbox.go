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
// next_at has come and no lease is running; next_at NULL means given up. lease_until and
// lease_owner are set by a claim, and renewed by the worker while it sends, so that concurrent
// workers do not send the same message twice. unsure_at is the first attempt whose outcome was
// unknown (the message may have been delivered then).
type outboxRow struct {
	ID         int64      `gorm:"primaryKey"`
	DedupKey   string     `gorm:"size:191;not null;uniqueIndex:uniq_outbox_dedup_key"`
	ToUser     string     `gorm:"size:1024;not null"`
	Content    string     `gorm:"type:text;not null"`
	Attempts   int        `gorm:"not null"`
	NextAt     *time.Time `gorm:"index:idx_outbox_next_at"`
	LeaseUntil *time.Time
	LeaseOwner string `gorm:"size:32;not null;default:''"`
	UnsureAt   *time.Time
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
		UnsureAt:  tsPtr(m.UnsureAt),
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
		UnsureAt:  r.UnsureAt,
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
	ctx, cancel := db.deadline(ctx)
	defer cancel()
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

// ClaimMessages returns up to limit messages due at now, oldest due first, each leased to owner
// until leaseUntil. Every message is taken by a conditional UPDATE that re-checks it is still
// due, so two concurrent claimers never get the same message.
func (db *DB) ClaimMessages(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]*app.OutboxMessage, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
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
				Updates(map[string]any{"lease_until": leaseUntil, "lease_owner": owner})
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

// RenewMessageLease extends owner's lease on unsent message id until the given time; ECONFLICT
// when owner no longer holds it (another worker claimed it after the lease ran out, or it was
// sent), ENOTFOUND when there is no such message.
func (db *DB) RenewMessageLease(ctx context.Context, id int64, owner string, until time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		return updateOnce(tx, &outboxRow{}, id, "sent_at IS NULL AND lease_owner = ?", []any{owner},
			map[string]any{"lease_until": ts(until)}, "消息已由其他实例处理")
	})
	return storeErr("renew message lease", err, msgMessageNotFound, "")
}

// MarkMessageSent records a delivery and ends the lease, whoever holds it; a message already
// marked keeps its first time. ENOTFOUND when there is no such message.
func (db *DB) MarkMessageSent(ctx context.Context, id int64, at time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	return db.updateMessage(ctx, "mark message sent", id, map[string]any{
		"sent_at":     gorm.Expr("COALESCE(sent_at, ?)", ts(at)),
		"lease_until": nil,
		"lease_owner": "",
	})
}

// MarkMessageFailed counts a failed attempt by owner, keeps errText and ends the lease; the
// message is due again at next, or never when next is zero. A non-zero unsureAt records an attempt
// whose outcome is unknown (the first one is kept). ECONFLICT when owner no longer holds the lease
// or the message was sent meanwhile: the other worker's outcome stands.
func (db *DB) MarkMessageFailed(ctx context.Context, id int64, owner, errText string, next, unsureAt time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	cols := map[string]any{
		"attempts":    gorm.Expr("attempts + 1"),
		"last_error":  truncate(errText, maxErrorLen),
		"next_at":     tsPtr(&next),
		"lease_until": nil,
		"lease_owner": "",
	}
	if !unsureAt.IsZero() {
		cols["unsure_at"] = gorm.Expr("COALESCE(unsure_at, ?)", ts(unsureAt))
	}
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		return updateOnce(tx, &outboxRow{}, id, "sent_at IS NULL AND lease_owner = ?", []any{owner}, cols,
			"消息已由其他实例处理")
	})
	return storeErr("mark message failed", err, msgMessageNotFound, "")
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
