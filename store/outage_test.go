package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
	"github.com/wecampus/wecampus/store/storetest"
)

// TestClosedStoreUnavailable: a store whose pool is closed answers EUNAVAILABLE, not an
// internal error.
func TestClosedStoreUnavailable(t *testing.T) {
	db, _ := MustOpenDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := db.FindLiveBinding(context.Background(), "number", "1")
	wantCode(t, err, app.EUNAVAILABLE)
	err = db.Tx(context.Background(), func(tx app.Store) error {
		_, err := tx.MarkInboundSeen(context.Background(), "k", t0)
		return err
	})
	wantCode(t, err, app.EUNAVAILABLE)
}

// TestMySQLOutage: with MariaDB behind a proxy, every call ends within the call timeout with
// EUNAVAILABLE while the database is blackholed or cut, and the same store works again once it
// is back, without a restart.
func TestMySQLOutage(t *testing.T) {
	dsn, proxy := storetest.ProxiedMySQLDSN(t)
	ctx := context.Background()
	const callTimeout = time.Second
	db, err := store.Open(ctx, store.Config{Driver: store.DriverMySQL, DSN: dsn, CallTimeout: callTimeout}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"read": func() error {
			_, err := db.FindLiveBinding(ctx, "number", "1")
			return err
		},
		"write": func() error { return db.AppendEvent(ctx, app.Event{Kind: "test", Actor: app.ActorSystem}) },
		"tx": func() error {
			return db.Tx(ctx, func(tx app.Store) error {
				_, err := tx.MarkInboundSeen(ctx, time.Now().String(), time.Now())
				return err
			})
		},
	}
	check := func(phase, want string) {
		t.Helper()
		for name, call := range calls {
			start := time.Now()
			err := call()
			took := time.Since(start)
			if want == "" && app.ErrorCode(err) == app.ENOTFOUND {
				err = nil
			}
			if got := app.ErrorCode(err); got != want {
				t.Fatalf("%s %s: code %q, want %q (%v)", phase, name, got, want, err)
			}
			if took > callTimeout+time.Second {
				t.Fatalf("%s %s took %v (call timeout %v)", phase, name, took, callTimeout)
			}
			t.Logf("%s %s: %q in %v", phase, name, app.ErrorCode(err), took.Round(time.Millisecond))
		}
	}
	check("up", "")
	proxy.Blackhole()
	check("blackholed", app.EUNAVAILABLE)
	proxy.Cut()
	check("cut", app.EUNAVAILABLE)
	proxy.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for calls["read"]() != nil && app.ErrorCode(calls["read"]()) != app.ENOTFOUND {
		if time.Now().After(deadline) {
			t.Fatal("the store did not recover")
		}
		time.Sleep(100 * time.Millisecond)
	}
	check("restored", "")
}

// TestTxIdleTimeout: a transaction of many calls may take longer than the call timeout in all,
// as long as no wait between its calls does; one left idle longer is rolled back.
func TestTxIdleTimeout(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: t.TempDir() + "/tx.db", CallTimeout: 200 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = db.Tx(ctx, func(tx app.Store) error {
		for i := range 10 {
			time.Sleep(50 * time.Millisecond)
			if _, err := tx.MarkInboundSeen(ctx, fmt.Sprint("busy", i), t0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("busy transaction: %v after %v", err, time.Since(start))
	}
	err = db.Tx(ctx, func(tx app.Store) error {
		if _, err := tx.MarkInboundSeen(ctx, "idle", t0); err != nil {
			return err
		}
		time.Sleep(400 * time.Millisecond)
		_, err := tx.MarkInboundSeen(ctx, "idle2", t0)
		return err
	})
	wantCode(t, err, app.EUNAVAILABLE)
	if first, err := db.MarkInboundSeen(ctx, "idle", t0); err != nil || !first {
		t.Fatalf("the idle transaction was not rolled back: %v %v", first, err)
	}
}
