package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/wecampus/wecampus/app"
)

const msgIntentNotFound = "未找到办理记录"

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
	}
}

// CreateIntent records an open intent, filling in ID and (when zero) CreatedAt. A second open
// intent for the same number gives ECONFLICT.
func (db *DB) CreateIntent(ctx context.Context, in *app.Intent) error {
	if in.Number == "" {
		return app.Errorf(app.EINVALID, "缺少学工号")
	}
	var row intentRow
	row.fromApp(in)
	row.ID = 0
	if in.CreatedAt.IsZero() {
		row.CreatedAt = db.timestamp()
	}
	if err := db.gdb.WithContext(ctx).Create(&row).Error; err != nil {
		return storeErr("create intent", err, "", "该学工号正在办理中,请稍后再试")
	}
	in.ID, in.CreatedAt = row.ID, row.CreatedAt
	return nil
}

// CloseIntent marks an open intent done with result. ENOTFOUND if there is no such intent;
// ECONFLICT if it was already closed (by a concurrent repair, say), which leaves it unchanged.
func (db *DB) CloseIntent(ctx context.Context, id int64, result string, at time.Time) error {
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		return updateOnce(tx, &intentRow{}, id, "done_at IS NULL", map[string]any{
			"result":      result,
			"done_at":     ts(at),
			"open_number": nil,
		}, "办理记录已结束")
	})
	return storeErr("close intent", err, msgIntentNotFound, "")
}

// FindOpenIntents lists open intents created before the given time, oldest first.
func (db *DB) FindOpenIntents(ctx context.Context, before time.Time) ([]*app.Intent, error) {
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
	if number == "" {
		return nil, app.Errorf(app.ENOTFOUND, msgIntentNotFound)
	}
	var row intentRow
	if err := db.gdb.WithContext(ctx).Where("open_number = ?", number).Take(&row).Error; err != nil {
		return nil, storeErr("find open intent", err, msgIntentNotFound, "")
	}
	return row.toApp(), nil
}
