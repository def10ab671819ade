package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"gorm.io/gorm"
)

// inboundRow records one callback delivery for de-duplication of WeCom's retries.
type inboundRow struct {
	DedupKey string    `gorm:"primaryKey;size:191;not null"`
	SeenAt   time.Time `gorm:"not null;index:idx_inbound_seen_seen_at"`
}

func (inboundRow) TableName() string { return "inbound_seen" }

// maxKeyLen is the length of the unique key columns (inbound_seen.dedup_key, outbox.dedup_key):
// 191 utf8mb4 characters fit MySQL's 767-byte index limit of older row formats.
const maxKeyLen = 191

// uniqueKey returns k, or a digest of it when k is too long for a key column, so that long keys
// are still unique instead of failing or being cut to collide.
func uniqueKey(k string) string {
	if len(k) <= maxKeyLen {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// MarkInboundSeen records a callback delivery key; it reports false when the key was already
// recorded. Inside Tx a concurrent delivery of the same key waits for this transaction and then
// sees the key, so the guarded effects happen once.
func (db *DB) MarkInboundSeen(ctx context.Context, key string, at time.Time) (bool, error) {
	ctx, cancel := db.deadline(ctx)
	defer cancel()
	row := inboundRow{DedupKey: uniqueKey(key), SeenAt: ts(at)}
	// A plain INSERT: a duplicate aborts only this statement on MySQL and SQLite, so an
	// enclosing transaction goes on.
	err := db.gdb.WithContext(ctx).Create(&row).Error
	switch {
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return false, nil
	case err != nil:
		return false, storeErr("mark inbound seen", err, "", "")
	}
	return true, nil
}

// PurgeInbound deletes de-duplication records older than before and returns how many.
func (db *DB) PurgeInbound(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := db.bulkDeadline(ctx)
	defer cancel()
	res := db.gdb.WithContext(ctx).Where("seen_at < ?", ts(before)).Delete(&inboundRow{})
	if res.Error != nil {
		return 0, storeErr("purge inbound", res.Error, "", "")
	}
	return res.RowsAffected, nil
}
