package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/wecampus/wecampus/app"
)

const (
	msgIntentNotFound = "未找到办理记录"
	msgIntentBusy     = "该学工号正在办理中,请稍后再试"
)

// intentRow is a bind intent, written before a WeCom member write. open_number holds the number
// while the intent is open and NULL once it is done; its UNIQUE index lets the database allow at
// most one open intent per number (the same trick as bindings.live_*).
type intentRow struct {
	ID         int64     `gorm:"primaryKey"`
	Op         string    `gorm:"size:16;not null"`
	Number     string    `gorm:"size:64;not null;index:idx_intents_number"`
	UserID     string    `gorm:"column:userid;size:64;not null"`
	Mobile     string    `gorm:"size:32;not null"`
	Name       string    `gorm:"size:128;not null"`
	Type       string    `gorm:"size:32;not null"`
	Department int64     `gorm:"not null"`
	RebindFrom int64     `gorm:"column:migrate_from;not null"`
	PersonKey  string    `gorm:"size:64;not null;default:''"`
	Result     string    `gorm:"size:64;not null"`
	CreatedAt  time.Time `gorm:"not null;index:idx_intents_created_at"`
	DoneAt     *time.Time
	OpenNumber *string `gorm:"size:64;uniqueIndex:uniq_intents_open_number"`
	// The claim: who works on the intent and until when, and how many claims it has had.
	ClaimOwner string `gorm:"size:32;not null;default:''"`
	ClaimUntil *time.Time
	Tries      int `gorm:"not null;default:0"`
	SettleAt   *time.Time
}

func (intentRow) TableName() string { return "intents" }

func (r *intentRow) fromApp(in *app.Intent) {
	*r = intentRow{
		ID:         in.ID,
		Op:         string(in.Op),
		Number:     in.Number,
		UserID:     in.UserID,
		Mobile:     in.Mobile,
		Name:       in.Name,
		Type:       in.Type,
		Department: in.Department,
		RebindFrom: in.RebindFrom,
		PersonKey:  in.PersonKey,
		Result:     in.Result,
		CreatedAt:  ts(in.CreatedAt),
		DoneAt:     tsPtr(in.DoneAt),
		ClaimOwner: in.ClaimOwner,
		ClaimUntil: tsPtr(in.ClaimUntil),
		Tries:      in.Tries,
		SettleAt:   tsPtr(in.SettleAt),
	}
	r.OpenNumber = liveKey(r.DoneAt == nil, r.Number)
}

func (r *intentRow) toApp() *app.Intent {
	return &app.Intent{
		ID:         r.ID,
		Op:         app.IntentOp(r.Op),
		Number:     r.Number,
		UserID:     r.UserID,
		Mobile:     r.Mobile,
		Name:       r.Name,
		Type:       r.Type,
		Department: r.Department,
		RebindFrom: r.RebindFrom,
		PersonKey:  r.PersonKey,
		Result:     r.Result,
		CreatedAt:  r.CreatedAt,
		DoneAt:     r.DoneAt,
		ClaimOwner: r.ClaimOwner,
		ClaimUntil: r.ClaimUntil,
		Tries:      r.Tries,
		SettleAt:   r.SettleAt,
	}
}

// CreateIntent records an open intent, filling in ID and (when zero) CreatedAt. A second open
// intent for the same number gives ECONFLICT.
func (db *DB) CreateIntent(ctx context.Context, in *app.Intent) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	if in.Number == "" {
		return app.Errorf(app.EINVALID, "缺少学工号")
	}
	var row intentRow
	row.fromApp(in)
	row.ID = 0
	if in.CreatedAt.IsZero() {
		row.CreatedAt = db.timestamp()
	}
	err := db.transaction(ctx, func(tx *gorm.DB) error { return tx.Create(&row).Error })
	if err != nil {
		return storeErr("create intent", err, "", "该学工号正在办理中,请稍后再试")
	}
	in.ID, in.CreatedAt = row.ID, row.CreatedAt
	return nil
}

// CloseIntent marks an open intent done with result. ENOTFOUND if there is no such intent;
// ECONFLICT if it was already closed (by a concurrent repair, say), which leaves it unchanged.
func (db *DB) CloseIntent(ctx context.Context, id int64, result string, at time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		return updateOnce(tx, &intentRow{}, id, "done_at IS NULL", nil, map[string]any{
			"result":      result,
			"done_at":     ts(at),
			"open_number": nil,
		}, "办理记录已结束")
	})
	return storeErr("close intent", err, msgIntentNotFound, "")
}

// FindOpenIntents lists open intents created before the given time, oldest first.
func (db *DB) FindOpenIntents(ctx context.Context, before time.Time) ([]*app.Intent, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	var rows []intentRow
	err := db.gdb.WithContext(ctx).Where("done_at IS NULL AND created_at < ?", ts(before)).
		Order("created_at, id").Find(&rows).Error
	if err != nil {
		return nil, storeErr("find open intents", err, "", "")
	}
	return toApps(rows, (*intentRow).toApp), nil
}

// FindOpenIntent returns the open intent for number, or ENOTFOUND.
func (db *DB) FindOpenIntent(ctx context.Context, number string) (*app.Intent, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	if number == "" {
		return nil, app.Errorf(app.ENOTFOUND, msgIntentNotFound)
	}
	var row intentRow
	if err := db.gdb.WithContext(ctx).Where("open_number = ?", number).Take(&row).Error; err != nil {
		return nil, storeErr("find open intent", err, msgIntentNotFound, "")
	}
	return row.toApp(), nil
}

// ClaimIntent takes open intent id for owner until the given time and counts a try, in one
// conditional UPDATE: only while tries is unchanged since the caller read the intent and no claim
// runs at now (none, released, or expired). Of concurrent claimers exactly one succeeds; the
// others get ECONFLICT. ENOTFOUND if there is no such intent.
func (db *DB) ClaimIntent(ctx context.Context, id int64, tries int, owner string, now, until time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		return updateOnce(tx, &intentRow{}, id,
			"done_at IS NULL AND tries = ? AND (claim_until IS NULL OR claim_until <= ?)", []any{tries, ts(now)},
			map[string]any{"claim_owner": owner, "claim_until": ts(until), "tries": gorm.Expr("tries + 1")},
			msgIntentBusy)
	})
	return storeErr("claim intent", err, msgIntentNotFound, "")
}

// RenewIntentClaim extends owner's claim on open intent id until the given time; ECONFLICT when
// owner no longer holds it.
func (db *DB) RenewIntentClaim(ctx context.Context, id int64, owner string, until time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		return updateOnce(tx, &intentRow{}, id, "done_at IS NULL AND claim_owner = ?", []any{owner},
			map[string]any{"claim_until": ts(until)}, msgIntentBusy)
	})
	return storeErr("renew intent claim", err, msgIntentNotFound, "")
}

// ReleaseIntent ends owner's claim on open intent id at the given time (claim_owner cleared,
// claim_until set to at) and records settleAt (NULL when zero); ECONFLICT when owner no longer
// holds it.
func (db *DB) ReleaseIntent(ctx context.Context, id int64, owner string, at, settleAt time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		return updateOnce(tx, &intentRow{}, id, "done_at IS NULL AND claim_owner = ?", []any{owner},
			map[string]any{"claim_owner": "", "claim_until": ts(at), "settle_at": tsPtr(&settleAt)}, msgIntentBusy)
	})
	return storeErr("release intent", err, msgIntentNotFound, "")
}
