package store_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/store/storetest"
)

// t0 is where every test clock starts.
var t0 = time.Date(2025, 9, 1, 8, 0, 0, 0, time.UTC)

// clock is a settable clock for the store's timestamps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testLogger sends the store's log to the test log at warning level and above.
func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Helper()
	w.tb.Log(string(p))
	return len(p), nil
}

// MustOpenDB opens a migrated SQLite database in a fresh file through the production Open and
// Migrate, with a clock starting at t0; it is closed when the test ends.
func MustOpenDB(tb testing.TB) (*store.DB, *clock) {
	tb.Helper()
	return mustOpen(tb, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(tb.TempDir(), "wecampus.db")})
}

// MustOpenMySQL is MustOpenDB on MariaDB/MySQL: it creates a fresh database on the server of
// TEST_MYSQL_DSN, migrates it, and drops it when the test ends. It skips when TEST_MYSQL_DSN is
// unset.
func MustOpenMySQL(tb testing.TB) (*store.DB, *clock) {
	tb.Helper()
	return mustOpen(tb, store.Config{Driver: store.DriverMySQL, DSN: mustCreateMySQLDatabase(tb)})
}

func mustOpen(tb testing.TB, cfg store.Config) (*store.DB, *clock) {
	tb.Helper()
	clk := &clock{t: t0}
	db, err := store.Open(context.Background(), cfg, clk.Now, testLogger(tb))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	if err := db.Migrate(context.Background()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return db, clk
}

// mustCreateMySQLDatabase creates an empty database wecampus_test_<random> on the server of
// TEST_MYSQL_DSN, drops it when the test ends, and returns a DSN for it.
func mustCreateMySQLDatabase(tb testing.TB) string {
	tb.Helper()
	return storetest.FreshMySQLDSN(tb)
}

// forEachDB runs fn against SQLite and, when TEST_MYSQL_DSN is set, MariaDB/MySQL, each with a
// fresh migrated database.
func forEachDB(t *testing.T, fn func(t *testing.T, db *store.DB, clk *clock)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		db, clk := MustOpenDB(t)
		fn(t, db, clk)
	})
	t.Run("mysql", func(t *testing.T) {
		db, clk := MustOpenMySQL(t)
		fn(t, db, clk)
	})
}

// wantCode fails the test unless err carries the app error code want ("" for no error).
func wantCode(tb testing.TB, err error, want string) {
	tb.Helper()
	if got := app.ErrorCode(err); got != want {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, want, err)
	}
}

// wantEqual fails the test unless got and want are deeply equal.
func wantEqual[T any](tb testing.TB, what string, got, want T) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  store.Config
	}{
		{"UnknownDriver", store.Config{Driver: "postgres", DSN: "x"}},
		{"EmptySQLitePath", store.Config{Driver: store.DriverSQLite}},
		{"SQLiteDirMissing", store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "no", "such", "dir.db")}},
		{"BadMySQLDSN", store.Config{Driver: store.DriverMySQL, DSN: "not a dsn"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := store.Open(ctx, tc.cfg, nil, nil)
			if err == nil {
				_ = db.Close()
				t.Fatal("Open succeeded, want an error")
			}
		})
	}
}

// TestOpenHonoursContext: a server that accepts but never answers does not hang Open.
func TestOpenHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close() // held open, silent, until the test ends
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	db, err := store.Open(ctx, store.Config{Driver: store.DriverMySQL, DSN: "u:p@tcp(" + ln.Addr().String() + ")/x"}, nil, nil)
	if err == nil {
		_ = db.Close()
		t.Fatal("Open succeeded against a silent server")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %v despite a 300ms context", d)
	}
}

func TestOpenMemory(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: ":memory:"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// The single connection keeps the in-memory database alive between statements.
	b := &app.Binding{Number: "1", UserID: "u1", Mobile: "13800000001", Status: app.StatusPending}
	if err := db.CreateBinding(ctx, b, app.Event{Kind: app.EventBound}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindBindingByID(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateTwice(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		b := &app.Binding{Number: "2025001", UserID: "u1", Mobile: "13800000001", Status: app.StatusActive}
		if err := db.CreateBinding(ctx, b, app.Event{Kind: app.EventBound}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := db.Migrate(ctx); err != nil {
				t.Fatalf("Migrate again: %v", err)
			}
		}
		got, err := db.FindLiveBinding(ctx, "number", "2025001")
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "binding after migrations", got, b)
		// The live keys survive: a second live binding of the number is still refused.
		err = db.CreateBinding(ctx, &app.Binding{Number: "2025001", Status: app.StatusPending}, app.Event{})
		wantCode(t, err, app.ECONFLICT)
	})
}

// TestMigrateConcurrently starts two stores on one empty database, as two replicas would.
func TestMigrateConcurrently(t *testing.T) {
	run := func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range errs {
			wg.Go(func() {
				db, err := store.Open(ctx, cfg, nil, testLogger(t))
				if err != nil {
					errs[i] = err
					return
				}
				defer db.Close()
				errs[i] = db.Migrate(ctx)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("migration %d: %v", i, err)
			}
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		run(t, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "w.db")})
	})
	t.Run("mysql", func(t *testing.T) {
		run(t, store.Config{Driver: store.DriverMySQL, DSN: mustCreateMySQLDatabase(t)})
	})
}

func TestTx(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		t.Run("RollbackOnError", func(t *testing.T) {
			var id int64
			err := db.Tx(ctx, func(tx app.Store) error {
				b := &app.Binding{Number: "tx1", UserID: "tx1", Mobile: "1", Status: app.StatusPending}
				if err := tx.CreateBinding(ctx, b, app.Event{Kind: app.EventBound}); err != nil {
					return err
				}
				id = b.ID
				if seen, err := tx.MarkInboundSeen(ctx, "tx:key", t0); err != nil || !seen {
					t.Fatalf("MarkInboundSeen = %v, %v", seen, err)
				}
				return app.Errorf(app.EINVALID, "abort")
			})
			wantCode(t, err, app.EINVALID)
			_, err = db.FindBindingByID(ctx, id)
			wantCode(t, err, app.ENOTFOUND)
			if seen, err := db.MarkInboundSeen(ctx, "tx:key", t0); err != nil || !seen {
				t.Fatalf("key survived the rollback: MarkInboundSeen = %v, %v", seen, err)
			}
		})
		t.Run("CommitAndNested", func(t *testing.T) {
			var outer, inner int64
			err := db.Tx(ctx, func(tx app.Store) error {
				b := &app.Binding{Number: "tx2", UserID: "tx2", Mobile: "2", Status: app.StatusPending}
				if err := tx.CreateBinding(ctx, b, app.Event{Kind: app.EventBound}); err != nil {
					return err
				}
				outer = b.ID
				return tx.Tx(ctx, func(tx app.Store) error {
					// The nested Tx sees the outer transaction's write.
					if _, err := tx.FindBindingByID(ctx, outer); err != nil {
						return err
					}
					b := &app.Binding{Number: "tx3", UserID: "tx3", Mobile: "3", Status: app.StatusPending}
					err := tx.CreateBinding(ctx, b, app.Event{Kind: app.EventBound})
					inner = b.ID
					return err
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []int64{outer, inner} {
				if _, err := db.FindBindingByID(ctx, id); err != nil {
					t.Fatalf("binding %d after commit: %v", id, err)
				}
			}
		})
		t.Run("FailedMethodLeavesNothing", func(t *testing.T) {
			// A store method that fails inside Tx is undone on its own; the caller may go on.
			var id int64
			err := db.Tx(ctx, func(tx app.Store) error {
				b := &app.Binding{Number: "tx4", UserID: "tx4", Mobile: "4", Status: app.StatusPending}
				if err := tx.CreateBinding(ctx, b, app.Event{Kind: app.EventBound}); err != nil {
					return err
				}
				id = b.ID
				// The binding update would apply, but the event's binding does not exist.
				_, err := tx.UpdateBinding(ctx, b.ID, app.BindingUpdate{Status: app.Ptr(app.StatusActive)},
					app.Event{Kind: app.EventActivated, BindingID: 1 << 40})
				if err == nil {
					t.Fatal("UpdateBinding with a dangling event succeeded")
				}
				err = tx.CreateBinding(ctx, &app.Binding{Number: "tx4", Status: app.StatusPending}, app.Event{})
				wantCode(t, err, app.ECONFLICT)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.FindBindingByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != app.StatusPending {
				t.Fatalf("status = %s, want the failed update undone (pending)", got.Status)
			}
			evs, err := db.FindEvents(ctx, id)
			if err != nil || len(evs) != 1 {
				t.Fatalf("events = %d, %v; want only the creation event", len(evs), err)
			}
		})
	})
}
