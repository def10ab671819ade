package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/wecampus/wecampus/app"
)

// purgeBatch bounds one purge transaction, so that a first purge of years of history neither
// holds locks for long nor builds one huge statement.
const purgeBatch = 500

// PurgeBindings forgets the mobile, name and person key of bindings that left the live set (unbound or
// migrated) before before: both become "", and each such binding gets an audit event. Number,
// userid, status, times and the audit trail stay. With dryRun it only counts.
func (db *DB) PurgeBindings(ctx context.Context, before time.Time, dryRun bool) (int, error) {
	released := []string{string(app.StatusUnbound), string(app.StatusRebound)}
	scope := func(tx *gorm.DB) *gorm.DB {
		return tx.Model(&bindingRow{}).
			Where("status IN ? AND updated_at < ? AND (mobile <> '' OR name <> '' OR person_key <> '')", released, ts(before))
	}
	if dryRun {
		ctx, cancel := db.bulkDeadline(ctx)
		defer cancel()
		var n int64
		err := scope(db.gdb.WithContext(ctx)).Count(&n).Error
		return int(n), storeErr("purge bindings", err, "", "")
	}
	total := 0
	for {
		n, err := db.purgeBindingBatch(ctx, scope)
		total += n
		if err != nil || n < purgeBatch {
			return total, storeErr("purge bindings", err, "", "")
		}
	}
}

// purgeBindingBatch purges up to purgeBatch bindings in one transaction, with its own deadline.
func (db *DB) purgeBindingBatch(ctx context.Context, scope func(*gorm.DB) *gorm.DB) (int, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	var rows []bindingRow
	err := db.transaction(ctx, func(tx *gorm.DB) error {
		if err := scope(tx).Order("id").Limit(purgeBatch).Find(&rows).Error; err != nil {
			return err
		}
		now := db.timestamp()
		for i := range rows {
			b := &rows[i]
			// updated_at is kept: it dates the release that the retention period counts from.
			err := tx.Model(&bindingRow{}).Where("id = ?", b.ID).
				UpdateColumns(map[string]any{"mobile": "", "name": "", "person_key": ""}).Error
			if err != nil {
				return err
			}
			ev := app.Event{Kind: app.EventPurged, Actor: app.ActorSystem,
				Detail: "retention: mobile and name removed"}
			if err := appendEvent(tx, b, ev, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(rows), nil
}

// PurgeSMSCodes deletes SMS code rows (hashes, mobiles, IPs) created before before. With dryRun
// it only counts.
func (db *DB) PurgeSMSCodes(ctx context.Context, before time.Time, dryRun bool) (int, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	q := db.gdb.WithContext(ctx).Model(&smsCodeRow{}).Where("created_at < ?", ts(before))
	if dryRun {
		var n int64
		err := q.Count(&n).Error
		return int(n), storeErr("purge sms codes", err, "", "")
	}
	res := q.Delete(&smsCodeRow{})
	return int(res.RowsAffected), storeErr("purge sms codes", res.Error, "", "")
}

// ForgetSMSIPs blanks the requesting IP of SMS code rows created before before: the IP is kept
// only as long as the per-IP limit counts it. With dryRun it only counts.
func (db *DB) ForgetSMSIPs(ctx context.Context, before time.Time, dryRun bool) (int, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	q := db.gdb.WithContext(ctx).Model(&smsCodeRow{}).Where("created_at < ? AND ip <> ''", ts(before))
	if dryRun {
		var n int64
		err := q.Count(&n).Error
		return int(n), storeErr("forget sms ips", err, "", "")
	}
	res := q.UpdateColumn("ip", "")
	return int(res.RowsAffected), storeErr("forget sms ips", res.Error, "", "")
}
