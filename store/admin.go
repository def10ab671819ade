package store

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wecampus/wecampus/app"
)

const msgSessionNotFound = "未找到登录会话"

// adminSessionRow is a session of the helpdesk console. id is the SHA-256 of the token the
// browser holds, so a copy of this table does not let anyone in.
type adminSessionRow struct {
	ID        string    `gorm:"primaryKey;size:64;not null"`
	UserID    string    `gorm:"column:userid;size:64;not null"`
	CreatedAt time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null;index:idx_admin_sessions_expires_at"`
	RevokedAt *time.Time
}

func (adminSessionRow) TableName() string { return "admin_sessions" }

func (r *adminSessionRow) toApp() *app.AdminSession {
	return &app.AdminSession{ID: r.ID, UserID: r.UserID, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt}
}

// CreateAdminSession stores a new console session.
func (db *DB) CreateAdminSession(ctx context.Context, s *app.AdminSession) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	if s.ID == "" || s.UserID == "" {
		return app.Errorf(app.EINVALID, "store: create admin session: id and userid are required")
	}
	row := adminSessionRow{ID: s.ID, UserID: s.UserID, CreatedAt: ts(s.CreatedAt), ExpiresAt: ts(s.ExpiresAt)}
	if row.CreatedAt.IsZero() {
		row.CreatedAt = db.timestamp()
	}
	return storeErr("create admin session", db.gdb.WithContext(ctx).Create(&row).Error, "", "会话已存在")
}

// FindAdminSession returns the session with id, or ENOTFOUND.
func (db *DB) FindAdminSession(ctx context.Context, id string) (*app.AdminSession, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	var row adminSessionRow
	if err := db.gdb.WithContext(ctx).Where("id = ?", id).Take(&row).Error; err != nil {
		return nil, storeErr("find admin session", err, msgSessionNotFound, "")
	}
	return row.toApp(), nil
}

// RevokeAdminSession marks session id revoked at at (an already revoked one keeps its time);
// ENOTFOUND if there is no such session.
func (db *DB) RevokeAdminSession(ctx context.Context, id string, at time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	res := db.gdb.WithContext(ctx).Model(&adminSessionRow{}).Where("id = ?", id).
		Update("revoked_at", gorm.Expr("COALESCE(revoked_at, ?)", ts(at)))
	if res.Error != nil {
		return storeErr("revoke admin session", res.Error, "", "")
	}
	if res.RowsAffected == 0 {
		return app.Errorf(app.ENOTFOUND, msgSessionNotFound)
	}
	return nil
}

// PurgeAdminSessions deletes the sessions that expired before before; dryRun only counts.
func (db *DB) PurgeAdminSessions(ctx context.Context, before time.Time, dryRun bool) (int, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	q := db.gdb.WithContext(ctx).Model(&adminSessionRow{}).Where("expires_at < ?", ts(before))
	if dryRun {
		var n int64
		err := q.Count(&n).Error
		return int(n), storeErr("purge admin sessions", err, "", "")
	}
	res := q.Delete(&adminSessionRow{})
	return int(res.RowsAffected), storeErr("purge admin sessions", res.Error, "", "")
}

// CountBindingsByStatus counts bindings per status.
func (db *DB) CountBindingsByStatus(ctx context.Context) (map[app.Status]int, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	var rows []struct {
		Status string
		N      int
	}
	err := db.gdb.WithContext(ctx).Model(&bindingRow{}).Select("status, COUNT(*) AS n").Group("status").Scan(&rows).Error
	if err != nil {
		return nil, storeErr("count bindings by status", err, "", "")
	}
	out := make(map[app.Status]int, len(rows))
	for _, r := range rows {
		out[app.Status(r.Status)] = r.N
	}
	return out, nil
}

// CountBindingsCreated counts the bindings created in each [bounds[i], bounds[i+1]): one COUNT
// per interval, each a range scan of idx_bindings_created_at that reads only the index. (One
// query with a conditional sum per interval evaluates every expression on every row: several
// times slower at enrolment volumes.)
func (db *DB) CountBindingsCreated(ctx context.Context, bounds []time.Time) ([]int, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	if len(bounds) < 2 {
		return nil, nil
	}
	out := make([]int, len(bounds)-1)
	for i := range out {
		var n int64
		err := db.gdb.WithContext(ctx).Model(&bindingRow{}).
			Where("created_at >= ? AND created_at < ?", ts(bounds[i]), ts(bounds[i+1])).Count(&n).Error
		if err != nil {
			return nil, storeErr("count bindings created", err, "", "")
		}
		out[i] = int(n)
	}
	return out, nil
}

// FindStalePending returns up to limit pending bindings created before before, oldest first, and
// how many there are.
func (db *DB) FindStalePending(ctx context.Context, before time.Time, limit int) ([]*app.Binding, int, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	q := db.gdb.WithContext(ctx).Model(&bindingRow{}).Where("status = ? AND created_at < ?", app.StatusPending, ts(before))
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, storeErr("count stale pending", err, "", "")
	}
	var rows []bindingRow
	if err := q.Order("created_at, id").Limit(limit).Find(&rows).Error; err != nil {
		return nil, 0, storeErr("find stale pending", err, "", "")
	}
	return toApps(rows, (*bindingRow).toApp), int(total), nil
}

// CountOutbox counts the undelivered app messages: those still retried (next_at set) and those
// given up on (next_at NULL).
func (db *DB) CountOutbox(ctx context.Context) (app.OutboxBacklog, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	var r struct {
		Waiting sql.NullInt64
		GivenUp sql.NullInt64
	}
	err := db.gdb.WithContext(ctx).Model(&outboxRow{}).
		Select("SUM(CASE WHEN next_at IS NOT NULL THEN 1 ELSE 0 END) AS waiting, " +
			"SUM(CASE WHEN next_at IS NULL THEN 1 ELSE 0 END) AS given_up").
		Where("sent_at IS NULL").Scan(&r).Error
	if err != nil {
		return app.OutboxBacklog{}, storeErr("count outbox", err, "", "")
	}
	return app.OutboxBacklog{Waiting: int(r.Waiting.Int64), GivenUp: int(r.GivenUp.Int64)}, nil
}

// prefixEnd is an upper bound for the strings starting with a prefix: every such string sorts
// below prefix+U+10FFFF in a binary collation (bytes on SQLite, code points in utf8mb4_bin).
const prefixEnd = "\U0010FFFF"

// searchColumns are the columns a console search looks at, each with an index.
var searchColumns = []string{"number", "userid", "mobile", "name"}

// SearchBindings returns up to limit bindings whose number, userid, mobile or name equals q or
// starts with it, ordered by number (newest binding first within a number). Each column is one
// range scan of its index ([q, q+U+10FFFF)), which LIKE would not give on SQLite; userids are
// also tried lower-cased, as the service creates them.
func (db *DB) SearchBindings(ctx context.Context, q string, limit int) ([]*app.Binding, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	if q == "" || limit <= 0 {
		return nil, nil
	}
	seen := map[int64]bool{}
	var rows []bindingRow
	for _, col := range searchColumns {
		values := []string{q}
		if col == "userid" && strings.ToLower(q) != q {
			values = append(values, strings.ToLower(q))
		}
		for _, v := range values {
			var found []bindingRow
			err := db.gdb.WithContext(ctx).Where(col+" >= ? AND "+col+" < ?", v, v+prefixEnd).
				Order(col + ", id DESC").Limit(limit).Find(&found).Error
			if err != nil {
				return nil, storeErr("search bindings", err, "", "")
			}
			for _, r := range found {
				if !seen[r.ID] {
					seen[r.ID] = true
					rows = append(rows, r)
				}
			}
		}
	}
	slices.SortFunc(rows, func(a, b bindingRow) int {
		if c := strings.Compare(a.Number, b.Number); c != 0 {
			return c
		}
		return int(b.ID - a.ID)
	})
	if len(rows) > limit {
		rows = rows[:limit]
	}
	return toApps(rows, (*bindingRow).toApp), nil
}

// FindBindingsByNumber returns every binding of number, newest first.
func (db *DB) FindBindingsByNumber(ctx context.Context, number string) ([]*app.Binding, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	var rows []bindingRow
	if err := db.gdb.WithContext(ctx).Where("number = ?", number).Order("id DESC").Find(&rows).Error; err != nil {
		return nil, storeErr("find bindings by number", err, "", "")
	}
	return toApps(rows, (*bindingRow).toApp), nil
}

// FindEventsByNumber returns the audit events of number, newest first; limit 0 means all.
func (db *DB) FindEventsByNumber(ctx context.Context, number string, limit int) ([]*app.Event, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	q := db.gdb.WithContext(ctx).Where("number = ?", number).Order("id DESC")
	if limit > 0 {
		q = q.Limit(limit)
	}
	var rows []eventRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, storeErr("find events by number", err, "", "")
	}
	return toApps(rows, (*eventRow).toApp), nil
}

// FindSMSCodes returns the codes sent to any of mobiles, or requested by requester when it is not
// "", newest first, up to limit.
func (db *DB) FindSMSCodes(ctx context.Context, mobiles []string, requester string, limit int) ([]*app.SMSCode, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	q := db.gdb.WithContext(ctx).Model(&smsCodeRow{})
	switch {
	case len(mobiles) > 0 && requester != "":
		q = q.Where("mobile IN ? OR requester = ?", mobiles, requester)
	case len(mobiles) > 0:
		q = q.Where("mobile IN ?", mobiles)
	case requester != "":
		q = q.Where("requester = ?", requester)
	default:
		return nil, nil
	}
	var rows []smsCodeRow
	if err := q.Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, storeErr("find sms codes", err, "", "")
	}
	return toApps(rows, (*smsCodeRow).toApp), nil
}
