// Package storetest opens real, migrated stores for other packages' tests: a fresh SQLite file,
// or a fresh database on the MariaDB/MySQL server named by TEST_MYSQL_DSN (dropped when the test
// ends). Tests that need MariaDB skip without TEST_MYSQL_DSN; .ci/run always sets it.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"

	"github.com/wecampus/wecampus/store"
)

// Kinds are the store drivers a test can run on.
var Kinds = []string{store.DriverSQLite, store.DriverMySQL}

// Open opens a fresh migrated store of the given driver with the clock now (nil: time.Now); it
// is closed, and a MariaDB database dropped, when tb ends. A MySQL store skips tb when
// TEST_MYSQL_DSN is unset.
func Open(tb testing.TB, driver string, now func() time.Time) *store.DB {
	tb.Helper()
	cfg := store.Config{Driver: driver}
	switch driver {
	case store.DriverSQLite:
		cfg.DSN = filepath.Join(tb.TempDir(), "wecampus.db")
	case store.DriverMySQL:
		cfg.DSN = FreshMySQLDSN(tb)
	default:
		tb.Fatalf("storetest: unknown driver %q", driver)
	}
	if now == nil {
		now = time.Now
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg, now, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("storetest: open %s: %v", driver, err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		tb.Fatalf("storetest: migrate %s: %v", driver, err)
	}
	return db
}

// FreshMySQLDSN creates an empty database on the TEST_MYSQL_DSN server and returns a DSN for
// it; the database is dropped when tb ends. The DSN's user needs CREATE and DROP rights; the
// database named in TEST_MYSQL_DSN itself is never used. It skips tb when TEST_MYSQL_DSN is
// unset.
func FreshMySQLDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("TEST_MYSQL_DSN")
	if dsn == "" {
		tb.Skip("TEST_MYSQL_DSN is not set")
	}
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		tb.Fatalf("TEST_MYSQL_DSN: %v", err)
	}
	cfg.DBName = ""
	server, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = server.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	name := "wecampus_test_" + hex.EncodeToString(b[:])
	if _, err := server.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		tb.Fatalf("storetest: create database (TEST_MYSQL_DSN needs CREATE and DROP rights): %v", err)
	}
	// Registered before the caller's Open cleanup, so it runs after the store is closed.
	tb.Cleanup(func() {
		if _, err := server.Exec("DROP DATABASE " + name); err != nil {
			tb.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}
