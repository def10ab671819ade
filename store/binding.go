package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/wecampus/wecampus/app"
)

const (
	msgBindingNotFound = "未找到绑定记录"
	msgLiveConflict    = "该学工号、企业微信账号或手机号已有有效绑定"
	msgStatusChanged   = "绑定状态已变化,请刷新后重试"
)

// liveStatuses are the statuses that hold the number, userid and mobile (app.Status.Live).
var liveStatuses = []string{string(app.StatusPending), string(app.StatusActive)}

// bindingRow is a row of bindings. Rows are never deleted.
//
// MySQL has no partial unique indexes, so "one live binding per number/userid/mobile" is kept by
// the live_* columns: they hold the value while the binding is pending or active and NULL
// otherwise, and carry UNIQUE indexes (NULLs never collide). setLiveKeys keeps them in sync and
// every write goes through it. WeCom userids are case-insensitive, so live_userid is lower-cased.
type bindingRow struct {
	ID         int64     `gorm:"primaryKey"`
	Number     string    `gorm:"size:64;not null;index:idx_bindings_number"`
	UserID     string    `gorm:"column:userid;size:64;not null;index:idx_bindings_userid"`
	Mobile     string    `gorm:"size:32;not null;index:idx_bindings_mobile"`
	Name       string    `gorm:"size:128;not null;index:idx_bindings_name"`
	Type       string    `gorm:"size:32;not null"`
	Department int64     `gorm:"not null"`
	Status     string    `gorm:"size:16;not null;index:idx_bindings_status"`
	Reason     string    `gorm:"size:255;not null"`
	ReboundTo  int64     `gorm:"column:migrated_to;not null"`
	PersonKey  string    `gorm:"size:64;not null;default:''"`
	CreatedAt  time.Time `gorm:"not null;index:idx_bindings_created_at"`
	UpdatedAt  time.Time `gorm:"not null;index:idx_bindings_updated_at"`
	LiveNumber *string   `gorm:"size:64;uniqueIndex:uniq_bindings_live_number"`
	LiveUserID *string   `gorm:"column:live_userid;size:64;uniqueIndex:uniq_bindings_live_userid"`
	LiveMobile *string   `gorm:"size:32;uniqueIndex:uniq_bindings_live_mobile"`
}

func (bindingRow) TableName() string { return "bindings" }

func (r *bindingRow) fromApp(b *app.Binding) {
	*r = bindingRow{
		ID:         b.ID,
		Number:     b.Number,
		UserID:     b.UserID,
		Mobile:     b.Mobile,
		Name:       b.Name,
		Type:       b.Type,
		Department: b.Department,
		Status:     string(b.Status),
		Reason:     b.Reason,
		ReboundTo:  b.ReboundTo,
		PersonKey:  b.PersonKey,
		CreatedAt:  ts(b.CreatedAt),
		UpdatedAt:  ts(b.UpdatedAt),
	}
	r.setLiveKeys()
}

func (r *bindingRow) toApp() *app.Binding {
	return &app.Binding{
		ID:         r.ID,
		Number:     r.Number,
		UserID:     r.UserID,
		Mobile:     r.Mobile,
		Name:       r.Name,
		Type:       r.Type,
		Department: r.Department,
		Status:     app.Status(r.Status),
		Reason:     r.Reason,
		ReboundTo:  r.ReboundTo,
		PersonKey:  r.PersonKey,
		CreatedAt:  r.CreatedAt,
		UpdatedAt:  r.UpdatedAt,
	}
}

// setLiveKeys derives the live_* columns from the status and the keys.
func (r *bindingRow) setLiveKeys() {
	live := app.Status(r.Status).Live()
	r.LiveNumber = liveKey(live, r.Number)
	r.LiveUserID = liveKey(live, strings.ToLower(r.UserID))
	r.LiveMobile = liveKey(live, r.Mobile)
}

// liveKey is the value of a live_* column: v while live, NULL otherwise or when v is empty.
func liveKey(live bool, v string) *string {
	if !live || v == "" {
		return nil
	}
	return &v
}

// CreateBinding inserts b, filling in ID, CreatedAt and UpdatedAt, and appends ev linked to it
// in the same transaction. A live binding of the same number, userid or mobile gives ECONFLICT.
func (db *DB) CreateBinding(ctx context.Context, b *app.Binding, ev app.Event) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	if !b.Status.Valid() {
		return app.Errorf(app.EINVALID, "无效的绑定状态")
	}
	if b.Number == "" {
		return app.Errorf(app.EINVALID, "缺少学工号")
	}
	var row bindingRow
	row.fromApp(b)
	now := db.timestamp()
	row.ID, row.CreatedAt, row.UpdatedAt = 0, now, now

	err := db.transaction(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		return appendEvent(tx, &row, ev, now)
	})
	if err != nil {
		return storeErr("create binding", err, "", msgLiveConflict)
	}
	b.ID, b.CreatedAt, b.UpdatedAt = row.ID, row.CreatedAt, row.UpdatedAt
	return nil
}

// UpdateBinding applies upd to binding id and appends ev in the same transaction. With IfStatus
// the write is a conditional UPDATE on the status, so of two concurrent transitions from the
// same status exactly one succeeds; the other gets ECONFLICT.
func (db *DB) UpdateBinding(ctx context.Context, id int64, upd app.BindingUpdate, ev app.Event) (*app.Binding, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	if upd.Status != nil && !upd.Status.Valid() {
		return nil, app.Errorf(app.EINVALID, "无效的绑定状态")
	}
	var row bindingRow
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		// The row lock (a no-op on SQLite, whose single connection serialises anyway) keeps the
		// live keys computed below in step with the row they are written to.
		if err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
			Where("id = ?", id).Take(&row).Error; err != nil {
			return err
		}
		if len(upd.IfStatus) > 0 && !slices.Contains(upd.IfStatus, app.Status(row.Status)) {
			return app.Errorf(app.ECONFLICT, msgStatusChanged)
		}

		cols := applyBindingUpdate(&row, upd)
		row.UpdatedAt = db.timestamp()
		cols["updated_at"] = row.UpdatedAt
		q := tx.Model(&bindingRow{}).Where("id = ?", id)
		if len(upd.IfStatus) > 0 {
			q = q.Where("status IN ?", upd.IfStatus)
		}
		res := q.Updates(cols)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return app.Errorf(app.ECONFLICT, msgStatusChanged)
		}
		return appendEvent(tx, &row, ev, row.UpdatedAt)
	})
	if err != nil {
		return nil, storeErr("update binding", err, msgBindingNotFound, msgLiveConflict)
	}
	return row.toApp(), nil
}

// applyBindingUpdate copies the set fields of upd into r, re-derives its live keys, and returns
// the columns to write: a map, because gorm skips zero values in a struct update.
func applyBindingUpdate(r *bindingRow, upd app.BindingUpdate) map[string]any {
	cols := make(map[string]any, 11)
	if upd.Status != nil {
		r.Status = string(*upd.Status)
		cols["status"] = r.Status
	}
	setColumn(cols, "userid", &r.UserID, upd.UserID)
	setColumn(cols, "mobile", &r.Mobile, upd.Mobile)
	setColumn(cols, "name", &r.Name, upd.Name)
	setColumn(cols, "department", &r.Department, upd.Department)
	setColumn(cols, "reason", &r.Reason, upd.Reason)
	setColumn(cols, "migrated_to", &r.ReboundTo, upd.ReboundTo)
	r.setLiveKeys()
	cols["live_number"], cols["live_userid"], cols["live_mobile"] = r.LiveNumber, r.LiveUserID, r.LiveMobile
	return cols
}

// setColumn sets *field and cols[col] to *v when v is not nil.
func setColumn[T any](cols map[string]any, col string, field *T, v *T) {
	if v != nil {
		*field = *v
		cols[col] = *v
	}
}

// FindBindingByID returns one binding or ENOTFOUND.
func (db *DB) FindBindingByID(ctx context.Context, id int64) (*app.Binding, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	var row bindingRow
	if err := db.gdb.WithContext(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, storeErr("find binding", err, msgBindingNotFound, "")
	}
	return row.toApp(), nil
}

// liveColumns maps FindLiveBinding's field names to the live-key columns.
var liveColumns = map[string]string{
	"number": "live_number",
	"userid": "live_userid",
	"mobile": "live_mobile",
}

// FindLiveBinding returns the pending or active binding whose field ("number", "userid" or
// "mobile") equals value, or ENOTFOUND. Userids match case-insensitively.
func (db *DB) FindLiveBinding(ctx context.Context, field, value string) (*app.Binding, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	col, ok := liveColumns[field]
	if !ok {
		return nil, fmt.Errorf("store: find live binding: unknown field %q", field)
	}
	if field == "userid" {
		value = strings.ToLower(value)
	}
	if value == "" {
		return nil, app.Errorf(app.ENOTFOUND, msgBindingNotFound)
	}
	var row bindingRow
	if err := db.gdb.WithContext(ctx).Where(col+" = ?", value).Take(&row).Error; err != nil {
		return nil, storeErr("find live binding", err, msgBindingNotFound, "")
	}
	return row.toApp(), nil
}

// FindLatestBinding returns the live binding whose number, userid or mobile is key (tried in
// that order), or else the most recently updated binding matching any of them; ENOTFOUND if none.
func (db *DB) FindLatestBinding(ctx context.Context, key string) (*app.Binding, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	if key == "" {
		return nil, app.Errorf(app.ENOTFOUND, msgBindingNotFound)
	}
	var row bindingRow
	err := db.gdb.WithContext(ctx).
		Where("live_number = ? OR live_userid = ? OR live_mobile = ?", key, strings.ToLower(key), key).
		Order(clause.OrderBy{Expression: clause.Expr{
			SQL:  "CASE WHEN live_number = ? THEN 0 WHEN live_userid = ? THEN 1 ELSE 2 END",
			Vars: []any{key, strings.ToLower(key)},
		}}).
		Limit(1).Take(&row).Error
	if err == nil {
		return row.toApp(), nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, storeErr("find latest binding", err, "", "")
	}
	err = db.gdb.WithContext(ctx).
		Where("number = ? OR LOWER(userid) = ? OR mobile = ?", key, strings.ToLower(key), key).
		Order("updated_at DESC, id DESC").Limit(1).Take(&row).Error
	if err != nil {
		return nil, storeErr("find latest binding", err, msgBindingNotFound, "")
	}
	return row.toApp(), nil
}

// FindBindings lists bindings in creation order.
func (db *DB) FindBindings(ctx context.Context, f app.BindingFilter) ([]*app.Binding, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	q := db.gdb.WithContext(ctx).Model(&bindingRow{})
	if f.Status != "" {
		if !f.Status.Valid() {
			return nil, app.Errorf(app.EINVALID, "无效的绑定状态:%s", f.Status)
		}
		q = q.Where("status = ?", f.Status)
	}
	if f.Limit > 0 {
		q = q.Limit(f.Limit)
	}
	if f.Offset > 0 {
		if f.Limit <= 0 {
			q = q.Limit(math.MaxInt64) // MySQL has no OFFSET without LIMIT
		}
		q = q.Offset(f.Offset)
	}
	var rows []bindingRow
	if err := q.Order("id").Find(&rows).Error; err != nil {
		return nil, storeErr("find bindings", err, "", "")
	}
	return toApps(rows, (*bindingRow).toApp), nil
}
