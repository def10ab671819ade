package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"github.com/wecampus/wecampus/app"
)

// eventRow is a row of the append-only audit trail binding_events. binding_id is NULL for events
// not tied to a binding; otherwise a foreign key guarantees the binding exists.
type eventRow struct {
	ID        int64       `gorm:"primaryKey"`
	BindingID *int64      `gorm:"index:idx_binding_events_binding_id"`
	Binding   *bindingRow `gorm:"foreignKey:BindingID;constraint:OnUpdate:RESTRICT,OnDelete:RESTRICT"`
	Kind      string      `gorm:"size:64;not null"`
	Actor     string      `gorm:"size:16;not null"`
	Number    string      `gorm:"size:64;not null;index:idx_binding_events_number"`
	UserID    string      `gorm:"column:userid;size:64;not null"`
	Detail    string      `gorm:"type:text;not null"`
	CreatedAt time.Time   `gorm:"not null"`
}

func (eventRow) TableName() string { return "binding_events" }

func (r *eventRow) fromApp(ev *app.Event) {
	*r = eventRow{
		ID:        ev.ID,
		Kind:      ev.Kind,
		Actor:     ev.Actor,
		Number:    ev.Number,
		UserID:    ev.UserID,
		Detail:    ev.Detail,
		CreatedAt: ts(ev.CreatedAt),
	}
	if ev.BindingID != 0 {
		id := ev.BindingID
		r.BindingID = &id
	}
}

func (r *eventRow) toApp() *app.Event {
	ev := &app.Event{
		ID:        r.ID,
		Kind:      r.Kind,
		Actor:     r.Actor,
		Number:    r.Number,
		UserID:    r.UserID,
		Detail:    r.Detail,
		CreatedAt: r.CreatedAt,
	}
	if r.BindingID != nil {
		ev.BindingID = *r.BindingID
	}
	return ev
}

// appendEvent inserts ev for binding b, filling BindingID, Number and UserID from b when empty
// and CreatedAt with now when zero.
func appendEvent(tx *gorm.DB, b *bindingRow, ev app.Event, now time.Time) error {
	if ev.BindingID == 0 {
		ev.BindingID = b.ID
	}
	if ev.Number == "" {
		ev.Number = b.Number
	}
	if ev.UserID == "" {
		ev.UserID = b.UserID
	}
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = now
	}
	var row eventRow
	row.fromApp(&ev)
	row.ID = 0
	return tx.Create(&row).Error
}

// AppendEvent adds an audit event not tied to a binding change; a BindingID that names no
// binding gives ENOTFOUND.
func (db *DB) AppendEvent(ctx context.Context, ev app.Event) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = db.now()
	}
	var row eventRow
	row.fromApp(&ev)
	row.ID = 0
	err := db.gdb.WithContext(ctx).Create(&row).Error
	if errors.Is(err, gorm.ErrForeignKeyViolated) {
		return app.Errorf(app.ENOTFOUND, msgBindingNotFound)
	}
	return storeErr("append event", err, "", "")
}

// FindEvents returns the audit trail of a binding, oldest first.
func (db *DB) FindEvents(ctx context.Context, bindingID int64) ([]*app.Event, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	var rows []eventRow
	if err := db.gdb.WithContext(ctx).Where("binding_id = ?", bindingID).Order("id").Find(&rows).Error; err != nil {
		return nil, storeErr("find events", err, "", "")
	}
	return toApps(rows, (*eventRow).toApp), nil
}
