package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/wecampus/wecampus/app"
)

// Conditions of the unfinished rows Backlog counts. A pending message is unsent and not given up
// (a given-up message has next_at NULL); an open intent has open_number set, which the unique
// index uniq_intents_open_number serves.
const (
	pendingMessage = "sent_at IS NULL AND next_at IS NOT NULL"
	openIntent     = "open_number IS NOT NULL"
)

// Backlog counts the pending outbox messages and the open intents, each with the creation time of
// its oldest. It runs four small queries outside a transaction: the numbers feed gauges, not
// decisions.
func (db *DB) Backlog(ctx context.Context) (app.Backlog, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	var b app.Backlog
	var err error
	if b.OutboxPending, b.OutboxOldest, err = countOldest(db.gdb.WithContext(ctx), &outboxRow{}, pendingMessage); err != nil {
		return app.Backlog{}, storeErr("backlog: outbox", err, "", "")
	}
	if b.IntentsOpen, b.IntentOldest, err = countOldest(db.gdb.WithContext(ctx), &intentRow{}, openIntent); err != nil {
		return app.Backlog{}, storeErr("backlog: intents", err, "", "")
	}
	return b, nil
}

// countOldest counts the rows of model matching cond and returns the smallest created_at among
// them (zero when none). The oldest is read as a column, not as MIN(): SQLite reports an
// aggregate of a datetime column as text.
func countOldest(tx *gorm.DB, model any, cond string) (int, time.Time, error) {
	var n int64
	if err := tx.Model(model).Where(cond).Count(&n).Error; err != nil {
		return 0, time.Time{}, err
	}
	if n == 0 {
		return 0, time.Time{}, nil
	}
	var oldest []time.Time
	if err := tx.Model(model).Where(cond).Order("created_at").Limit(1).Pluck("created_at", &oldest).Error; err != nil {
		return 0, time.Time{}, err
	}
	if len(oldest) == 0 { // finished between the two queries
		return int(n), time.Time{}, nil
	}
	return int(n), oldest[0], nil
}
