package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// migrationRow records a named migration step that has been applied.
type migrationRow struct {
	Name      string    `gorm:"primaryKey;size:191;not null"`
	AppliedAt time.Time `gorm:"not null"`
}

func (migrationRow) TableName() string { return "schema_migrations" }

// tables are created or extended by AutoMigrate, parents before children.
var tables = []any{
	&migrationRow{},
	&bindingRow{},
	&eventRow{},
	&inboundRow{},
	&outboxRow{},
	&smsCodeRow{},
	&intentRow{},
	&finishedFlowRow{},
	&adminSessionRow{},
}

// mysqlTableOptions apply to tables created on MySQL: utf8mb4 for names, and a binary collation
// so that comparisons behave as on SQLite (case-sensitive; userids are lower-cased explicitly
// where WeCom ignores case).
const mysqlTableOptions = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// A migrationStep is a named change AutoMigrate cannot make: a backfill, a rename, a data fix.
// Steps run once each, in order, after AutoMigrate, and are recorded in schema_migrations. Each
// must be idempotent, because MySQL commits DDL implicitly and a step may be cut short.
type migrationStep struct {
	name string
	run  func(tx *gorm.DB) error
}

// migrationSteps is append-only: never reorder, rename or remove a step.
var migrationSteps = []migrationStep{
	{name: "0001_live_keys", run: syncLiveKeys},
}

// syncLiveKeys derives bindings.live_* and intents.open_number from the other columns, for rows
// written by anything but this package (an import, a hand-made fix). It fails on rows that
// break the one-live-binding rule, which must then be resolved by hand.
func syncLiveKeys(tx *gorm.DB) error {
	stmts := []struct {
		sql  string
		args []any
	}{
		{"UPDATE bindings SET live_number = NULL, live_userid = NULL, live_mobile = NULL WHERE status NOT IN ?",
			[]any{liveStatuses}},
		{"UPDATE bindings SET live_number = NULLIF(number, ''), live_userid = NULLIF(LOWER(userid), ''), " +
			"live_mobile = NULLIF(mobile, '') WHERE status IN ?", []any{liveStatuses}},
		{"UPDATE intents SET open_number = NULL WHERE done_at IS NOT NULL", nil},
		{"UPDATE intents SET open_number = NULLIF(number, '') WHERE done_at IS NULL", nil},
	}
	for _, s := range stmts {
		if err := tx.Exec(s.sql, s.args...).Error; err != nil {
			return err
		}
	}
	return nil
}

// Migrate creates or upgrades the schema; it is idempotent. Concurrent runs (two replicas
// starting together) take turns: on MySQL through a named lock, on SQLite through the write
// lock of an immediate transaction.
func (db *DB) Migrate(ctx context.Context) error {
	if db.inTx {
		return errors.New("store: migrate: called inside a transaction")
	}
	gdb := db.gdb.WithContext(ctx)
	if db.driver != DriverMySQL {
		return gdb.Transaction(db.migrate)
	}
	// A named lock belongs to a connection, so everything runs on one.
	return gdb.Connection(func(conn *gorm.DB) error {
		conn = conn.Session(&gorm.Session{}) // reusable: Connection hands out a one-shot handle
		const lock = "CONCAT('wecampus_migrate.', DATABASE())"
		if err := migrateLock(conn, lock); err != nil {
			return err
		}
		defer func() {
			// Released even when ctx is done: the connection returns to the pool afterwards.
			err := conn.WithContext(context.WithoutCancel(ctx)).Exec("SELECT RELEASE_LOCK(" + lock + ")").Error
			if err != nil {
				db.log.Error("store: migrate: release lock", "err", err)
			}
		}()
		return db.migrate(conn)
	})
}

// migrateLock waits up to a minute for the named lock, in waits shorter than the connection's
// read timeout (the server sends nothing while GET_LOCK waits).
func migrateLock(conn *gorm.DB, lock string) error {
	for range 6 {
		var got sql.NullInt64
		if err := conn.Raw("SELECT GET_LOCK(" + lock + ", 10)").Scan(&got).Error; err != nil {
			return fmt.Errorf("store: migrate: lock: %w", err)
		}
		if got.Int64 == 1 {
			return nil
		}
	}
	return errors.New("store: migrate: another migration is still running")
}

// migrate runs AutoMigrate and then every step not yet recorded.
func (db *DB) migrate(tx *gorm.DB) error {
	auto := tx
	if db.driver == DriverMySQL {
		auto = tx.Set("gorm:table_options", mysqlTableOptions)
	}
	if err := auto.AutoMigrate(tables...); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	var done []string
	if err := tx.Model(&migrationRow{}).Pluck("name", &done).Error; err != nil {
		return fmt.Errorf("store: migrate: read applied steps: %w", err)
	}
	for _, step := range migrationSteps {
		if slices.Contains(done, step.name) {
			continue
		}
		err := tx.Transaction(func(tx *gorm.DB) error {
			if err := step.run(tx); err != nil {
				return err
			}
			return tx.Create(&migrationRow{Name: step.name, AppliedAt: db.timestamp()}).Error
		})
		if err != nil {
			return fmt.Errorf("store: migrate %s: %w", step.name, err)
		}
		db.log.Info("store: applied migration step", "step", step.name)
	}
	return nil
}
