package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
)

// runConcurrently runs fn(i) for i in [0, n) in n goroutines released together, and returns
// their errors by i.
func runConcurrently(n int, fn func(i int) error) []error {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// wantOneWinner fails the test unless exactly one result is nil and all others are ECONFLICT.
func wantOneWinner(tb testing.TB, results []error) {
	tb.Helper()
	wins := 0
	for _, err := range results {
		switch app.ErrorCode(err) {
		case "":
			wins++
		case app.ECONFLICT:
		default:
			tb.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		tb.Fatalf("%d of %d succeeded, want exactly 1 (the rest ECONFLICT)", wins, len(results))
	}
}

// TestConcurrentCreateBinding: of many simultaneous bindings of one number (or one mobile)
// exactly one is stored; the database, not a read-then-write check, decides.
func TestConcurrentCreateBinding(t *testing.T) {
	const n = 20
	run := func(t *testing.T, dbs ...*store.DB) {
		ctx := context.Background()
		t.Run("SameNumber", func(t *testing.T) {
			wantOneWinner(t, runConcurrently(n, func(i int) error {
				b := &app.Binding{Number: "2025000", UserID: fmt.Sprint("n", i), Mobile: fmt.Sprint("139", i), Status: app.StatusPending}
				return dbs[i%len(dbs)].CreateBinding(ctx, b, app.Event{Kind: app.EventBound})
			}))
		})
		t.Run("SameMobile", func(t *testing.T) {
			wantOneWinner(t, runConcurrently(n, func(i int) error {
				b := &app.Binding{Number: fmt.Sprint("m", i), UserID: fmt.Sprint("m", i), Mobile: "13800000000", Status: app.StatusActive}
				return dbs[i%len(dbs)].CreateBinding(ctx, b, app.Event{Kind: app.EventBound})
			}))
		})
		t.Run("SameUserIDAnyCase", func(t *testing.T) {
			wantOneWinner(t, runConcurrently(n, func(i int) error {
				userID := "Same"
				if i%2 == 1 {
					userID = "sAME"
				}
				b := &app.Binding{Number: fmt.Sprint("u", i), UserID: userID, Mobile: fmt.Sprint("137", i), Status: app.StatusPending}
				return dbs[i%len(dbs)].CreateBinding(ctx, b, app.Event{Kind: app.EventBound})
			}))
		})
		all, err := dbs[0].FindBindings(ctx, app.BindingFilter{})
		if err != nil || len(all) != 3 {
			t.Fatalf("%d bindings stored (%v), want 3", len(all), err)
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		run(t, db)
	})
	t.Run("sqlite-two-handles", func(t *testing.T) {
		// Two stores on one file, as the service and the CLI would be.
		path := filepath.Join(t.TempDir(), "shared.db")
		a, _ := mustOpen(t, store.Config{Driver: store.DriverSQLite, DSN: path})
		b, _ := mustOpen(t, store.Config{Driver: store.DriverSQLite, DSN: path})
		run(t, a, b)
	})
	t.Run("mysql", func(t *testing.T) {
		db, _ := MustOpenMySQL(t)
		run(t, db)
	})
}

// TestConcurrentActivation: of simultaneous pending→active transitions exactly one wins, and
// only the winner's event is recorded.
func TestConcurrentActivation(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		b := mustCreate(t, db, newBinding("act"))
		wantOneWinner(t, runConcurrently(20, func(i int) error {
			_, err := db.UpdateBinding(ctx, b.ID, app.BindingUpdate{
				Status:   app.Ptr(app.StatusActive),
				IfStatus: []app.Status{app.StatusPending},
			}, app.Event{Kind: app.EventActivated, Actor: app.ActorWeCom, Detail: fmt.Sprint("worker ", i)})
			return err
		}))
		evs, err := db.FindEvents(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[1].Kind != app.EventActivated {
			t.Fatalf("events = %+v, want creation + one activation", evs)
		}
		got, err := db.FindBindingByID(ctx, b.ID)
		if err != nil || got.Status != app.StatusActive {
			t.Fatalf("binding = %+v, %v", got, err)
		}
	})
}
