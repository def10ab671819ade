package store

import (
	"context"
	"time"

	"github.com/wecampus/wecampus/app"
)

// finishedFlowRow records a member flow that has finished (bound, migrated, verified, unbound),
// until the flow's cookie would have expired anyway, so that the cookie cannot be replayed.
type finishedFlowRow struct {
	ID        string    `gorm:"primaryKey;size:64;not null"`
	ExpiresAt time.Time `gorm:"not null;index:idx_finished_flows_expires_at"`
}

func (finishedFlowRow) TableName() string { return "finished_flows" }

const msgFlowFinished = "该操作已完成。"

// FinishFlow records flow id as finished until expires. Of two concurrent calls for one id
// exactly one succeeds; the other, and any later one, gets ECONFLICT.
func (db *DB) FinishFlow(ctx context.Context, id string, expires time.Time) error {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	if id == "" {
		return app.Errorf(app.EINVALID, "store: finish flow: empty id")
	}
	err := db.gdb.WithContext(ctx).Create(&finishedFlowRow{ID: id, ExpiresAt: ts(expires)}).Error
	return storeErr("finish flow", err, "", msgFlowFinished)
}

// FlowFinished reports whether flow id was recorded as finished.
func (db *DB) FlowFinished(ctx context.Context, id string) (bool, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	var n int64
	err := db.gdb.WithContext(ctx).Model(&finishedFlowRow{}).Where("id = ?", id).Count(&n).Error
	if err != nil {
		return false, storeErr("flow finished", err, "", "")
	}
	return n > 0, nil
}

// PurgeFinishedFlows deletes the records of flows whose cookies expired before before; with
// dryRun it only counts.
func (db *DB) PurgeFinishedFlows(ctx context.Context, before time.Time, dryRun bool) (int, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	q := db.gdb.WithContext(ctx).Model(&finishedFlowRow{}).Where("expires_at < ?", ts(before))
	if dryRun {
		var n int64
		err := q.Count(&n).Error
		return int(n), storeErr("purge finished flows", err, "", "")
	}
	res := q.Delete(&finishedFlowRow{})
	return int(res.RowsAffected), storeErr("purge finished flows", res.Error, "", "")
}
