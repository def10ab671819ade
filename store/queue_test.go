package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
)

func TestInboundSeen(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		long := "contacts:ev:sys:1700000000:change_contact:update_user:" + strings.Repeat("x", 200)
		for _, tc := range []struct {
			key  string
			at   time.Time
			want bool
		}{
			{"app:msg:1", t0, true},
			{"app:msg:1", t0.Add(time.Second), false},
			{"app:msg:2", t0.Add(time.Hour), true},
			{"App:msg:2", t0.Add(time.Hour), true}, // keys are case-sensitive
			{long + "a", t0.Add(2 * time.Hour), true},
			{long + "b", t0.Add(2 * time.Hour), true}, // long keys stay distinct
			{long + "a", t0.Add(2 * time.Hour), false},
		} {
			got, err := db.MarkInboundSeen(ctx, tc.key, tc.at)
			if err != nil || got != tc.want {
				t.Fatalf("MarkInboundSeen(%.20q) = %v, %v; want %v", tc.key, got, err, tc.want)
			}
		}
		n, err := db.PurgeInbound(ctx, t0.Add(time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("PurgeInbound = %d, %v; want 1", n, err)
		}
		// Purged keys are new again; kept ones are not.
		if got, _ := db.MarkInboundSeen(ctx, "app:msg:1", t0.Add(3*time.Hour)); !got {
			t.Fatal("purged key still seen")
		}
		if got, _ := db.MarkInboundSeen(ctx, "app:msg:2", t0.Add(3*time.Hour)); got {
			t.Fatal("kept key forgotten")
		}
	})
}

// TestInboundSeenConcurrent: of concurrent deliveries of one key exactly one is new.
func TestInboundSeenConcurrent(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		results := runConcurrently(20, func(int) error {
			return db.Tx(context.Background(), func(tx app.Store) error {
				seen, err := tx.MarkInboundSeen(context.Background(), "app:msg:42", t0)
				if err == nil && !seen {
					return app.Errorf(app.ECONFLICT, "seen")
				}
				return err
			})
		})
		wantOneWinner(t, results)
	})
}

func TestOutbox(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		enqueue := func(key string, next time.Time) {
			t.Helper()
			if err := db.EnqueueMessage(ctx, app.OutboxMessage{DedupKey: key, ToUser: "u1", Content: "欢迎 " + key, NextAt: next}); err != nil {
				t.Fatalf("EnqueueMessage %s: %v", key, err)
			}
		}
		claim := func(now time.Time, lease time.Duration, limit int) []string {
			t.Helper()
			ms, err := db.ClaimMessages(ctx, "w1", now, now.Add(lease), limit)
			if err != nil {
				t.Fatalf("ClaimMessages: %v", err)
			}
			keys := []string{}
			for _, m := range ms {
				keys = append(keys, m.DedupKey)
			}
			return keys
		}

		enqueue("welcome:1", time.Time{}) // due now (t0)
		enqueue("welcome:1", time.Time{}) // a duplicate: silently ignored
		enqueue("welcome:2", t0.Add(-time.Minute))
		enqueue("welcome:3", t0.Add(time.Hour))
		wantCode(t, db.EnqueueMessage(ctx, app.OutboxMessage{ToUser: "u"}), app.EINVALID)

		wantEqual(t, "first claim", claim(t0, time.Minute, 1), []string{"welcome:2"})
		wantEqual(t, "second claim", claim(t0, time.Minute, 10), []string{"welcome:1"})
		wantEqual(t, "while leased", claim(t0.Add(30*time.Second), time.Minute, 10), []string{})
		wantEqual(t, "zero limit", claim(t0.Add(2*time.Minute), time.Minute, 0), []string{})

		// Both leases ran out without news, so both messages are handed out again.
		ms, err := db.ClaimMessages(ctx, "w2", t0.Add(2*time.Minute), t0.Add(3*time.Minute), 10)
		if err != nil || len(ms) != 2 {
			t.Fatalf("claim after lease = %v, %v", ms, err)
		}
		m1, m2 := ms[1], ms[0]
		if m1.DedupKey != "welcome:1" || m1.Content != "欢迎 welcome:1" || m1.ToUser != "u1" || !m1.CreatedAt.Equal(t0) {
			t.Fatalf("claimed message = %+v", m1)
		}
		if err := db.MarkMessageSent(ctx, m2.ID, t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		longErr := strings.Repeat("错", 2000)
		// Only the lease holder records a failure.
		wantCode(t, db.MarkMessageFailed(ctx, m1.ID, "w1", "late", t0.Add(10*time.Minute), time.Time{}), app.ECONFLICT)
		if err := db.MarkMessageFailed(ctx, m1.ID, "w2", longErr, t0.Add(10*time.Minute), t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		// A failure ends the lease, but the message waits for its next time.
		wantEqual(t, "before retry", claim(t0.Add(9*time.Minute), time.Minute, 10), []string{})
		ms, err = db.ClaimMessages(ctx, "w3", t0.Add(10*time.Minute), t0.Add(11*time.Minute), 10)
		if err != nil || len(ms) != 1 || ms[0].ID != m1.ID {
			t.Fatalf("retry claim = %v, %v", ms, err)
		}
		if ms[0].Attempts != 1 || ms[0].LastError != strings.Repeat("错", 1024) || !ms[0].NextAt.Equal(t0.Add(10*time.Minute)) ||
			ms[0].UnsureAt == nil || !ms[0].UnsureAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("after failure: attempts %d, error %d chars, next %v, unsure %v", ms[0].Attempts, len([]rune(ms[0].LastError)), ms[0].NextAt, ms[0].UnsureAt)
		}
		// Given up (zero next) and sent messages are never claimed again; the first unsure
		// attempt is kept.
		if err := db.MarkMessageFailed(ctx, m1.ID, "w3", "boom", time.Time{}, t0.Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "after give-up", claim(t0.Add(30*time.Minute), time.Minute, 10), []string{})
		wantEqual(t, "much later", claim(t0.Add(2*time.Hour), time.Minute, 10), []string{"welcome:3"})

		wantCode(t, db.MarkMessageSent(ctx, 1<<40, t0), app.ENOTFOUND)
		wantCode(t, db.MarkMessageFailed(ctx, 1<<40, "w", "x", t0, time.Time{}), app.ENOTFOUND)
		_ = clk
	})
}

// TestOutboxLease: a lease is renewed only by its holder; one that ran out and was claimed by
// another worker cannot be renewed (the first worker skips the message); a message marked sent
// keeps its first time, whoever marks it.
func TestOutboxLease(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		if err := db.EnqueueMessage(ctx, app.OutboxMessage{DedupKey: "welcome:9", ToUser: "u", Content: "c", NextAt: t0}); err != nil {
			t.Fatal(err)
		}
		ms, err := db.ClaimMessages(ctx, "a", t0, t0.Add(time.Minute), 10)
		if err != nil || len(ms) != 1 {
			t.Fatalf("claim: %v %v", ms, err)
		}
		id := ms[0].ID
		if err := db.RenewMessageLease(ctx, id, "a", t0.Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		wantCode(t, db.RenewMessageLease(ctx, id, "b", t0.Add(2*time.Minute)), app.ECONFLICT)
		if got, _ := db.ClaimMessages(ctx, "b", t0.Add(90*time.Second), t0.Add(3*time.Minute), 10); len(got) != 0 {
			t.Fatal("claimed while the renewed lease runs")
		}
		if got, _ := db.ClaimMessages(ctx, "b", t0.Add(3*time.Minute), t0.Add(4*time.Minute), 10); len(got) != 1 {
			t.Fatal("not claimable after the lease ran out")
		}
		wantCode(t, db.RenewMessageLease(ctx, id, "a", t0.Add(5*time.Minute)), app.ECONFLICT)
		if err := db.MarkMessageSent(ctx, id, t0.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkMessageSent(ctx, id, t0.Add(4*time.Minute)); err != nil {
			t.Fatal(err)
		}
		wantCode(t, db.RenewMessageLease(ctx, id, "b", t0.Add(5*time.Minute)), app.ECONFLICT)
		wantCode(t, db.MarkMessageFailed(ctx, id, "b", "late", t0.Add(time.Hour), time.Time{}), app.ECONFLICT)
		wantCode(t, db.RenewMessageLease(ctx, 1<<40, "a", t0), app.ENOTFOUND)
	})
}

// TestClaimMessagesConcurrent: concurrent workers never get the same message.
func TestClaimMessagesConcurrent(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		const messages = 30
		for i := range messages {
			if err := db.EnqueueMessage(ctx, app.OutboxMessage{DedupKey: fmt.Sprint("m", i), ToUser: "u", Content: "c"}); err != nil {
				t.Fatal(err)
			}
		}
		var (
			mu      sync.Mutex
			claimed []int64
		)
		results := runConcurrently(6, func(int) error {
			for {
				ms, err := db.ClaimMessages(ctx, "w", t0, t0.Add(time.Minute), 4)
				if err != nil || len(ms) == 0 {
					return err
				}
				mu.Lock()
				for _, m := range ms {
					claimed = append(claimed, m.ID)
				}
				mu.Unlock()
			}
		})
		for _, err := range results {
			if err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(claimed)
		if len(claimed) != messages || len(slices.Compact(claimed)) != messages {
			t.Fatalf("claimed %d messages (%d distinct), want each of %d once", len(claimed), len(slices.Compact(claimed)), messages)
		}
	})
}

func TestSMSCodes(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		create := func(mobile string, purpose app.Purpose, ip string) *app.SMSCode {
			t.Helper()
			c := &app.SMSCode{Mobile: mobile, Purpose: purpose, Hash: "h-" + mobile + string(purpose), IP: ip, ExpiresAt: clk.Now().Add(5 * time.Minute)}
			if err := db.CreateSMSCode(ctx, c); err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Minute)
			return c
		}
		first := create("13800000001", "verify", "10.0.0.1")
		create("13800000001", "unbind", "10.0.0.1")
		latest := create("13800000001", "verify", "10.0.0.2")
		create("13800000002", "verify", "10.0.0.1")

		if first.ID == 0 || !first.CreatedAt.Equal(t0) {
			t.Fatalf("filled in %+v", first)
		}
		got, err := db.LatestSMSCode(ctx, "13800000001", "verify")
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "latest code", got, latest)
		_, err = db.LatestSMSCode(ctx, "13800000001", "migrate")
		wantCode(t, err, app.ENOTFOUND)
		if got, err := db.LatestSMSCode(ctx, "13800000001", ""); err != nil || got.ID != latest.ID {
			t.Fatalf("latest of any purpose = %+v, %v; want id %d", got, err, latest.ID)
		}

		for _, tc := range []struct {
			name  string
			count func() (int, error)
			want  int
		}{
			{"MobileAll", func() (int, error) { return db.CountSMSCodes(ctx, "13800000001", t0) }, 3},
			{"MobileSince", func() (int, error) { return db.CountSMSCodes(ctx, "13800000001", t0.Add(time.Minute)) }, 2},
			{"MobileNone", func() (int, error) { return db.CountSMSCodes(ctx, "13800000009", t0) }, 0},
			{"IPAll", func() (int, error) { return db.CountSMSCodesByIP(ctx, "10.0.0.1", t0) }, 3},
			{"IPSince", func() (int, error) { return db.CountSMSCodesByIP(ctx, "10.0.0.1", t0.Add(90*time.Second)) }, 1},
		} {
			n, err := tc.count()
			if err != nil || n != tc.want {
				t.Errorf("%s = %d, %v; want %d", tc.name, n, err, tc.want)
			}
		}

		for want := 1; want <= 3; want++ {
			n, err := db.ClaimSMSAttempt(ctx, latest.ID, 3, clk.Now())
			if err != nil || n != want {
				t.Fatalf("ClaimSMSAttempt = %d, %v; want %d", n, err, want)
			}
		}
		_, err = db.ClaimSMSAttempt(ctx, latest.ID, 3, clk.Now())
		wantCode(t, err, app.ECONFLICT) // out of guesses
		_, err = db.ClaimSMSAttempt(ctx, first.ID, 5, first.ExpiresAt)
		wantCode(t, err, app.ECONFLICT) // expired
		_, err = db.ClaimSMSAttempt(ctx, 1<<40, 5, clk.Now())
		wantCode(t, err, app.ENOTFOUND)

		if err := db.UseSMSCode(ctx, latest.ID, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		wantCode(t, db.UseSMSCode(ctx, latest.ID, t0.Add(time.Hour)), app.ECONFLICT)
		wantCode(t, db.UseSMSCode(ctx, 1<<40, t0), app.ENOTFOUND)
		got, err = db.LatestSMSCode(ctx, "13800000001", "verify")
		if err != nil {
			t.Fatal(err)
		}
		if got.Attempts != 3 || got.UsedAt == nil || !got.UsedAt.Equal(t0.Add(time.Hour)) {
			t.Fatalf("after attempts and use: %+v", got)
		}
	})
}

// TestSMSConcurrent: of 20 concurrent guesses exactly max are counted, each with its own
// number; a code is used once.
func TestSMSConcurrent(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		c := &app.SMSCode{Mobile: "13800000001", Purpose: "verify", Hash: "h", ExpiresAt: t0.Add(time.Hour)}
		if err := db.CreateSMSCode(ctx, c); err != nil {
			t.Fatal(err)
		}
		var (
			mu     sync.Mutex
			counts []int
		)
		refused := 0
		for _, err := range runConcurrently(20, func(int) error {
			n, err := db.ClaimSMSAttempt(ctx, c.ID, 5, t0)
			mu.Lock()
			defer mu.Unlock()
			if app.ErrorCode(err) == app.ECONFLICT {
				refused++
				return nil
			}
			counts = append(counts, n)
			return err
		}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(counts)
		wantEqual(t, "attempt counts", counts, []int{1, 2, 3, 4, 5})
		wantEqual(t, "refused guesses", refused, 15)

		wantOneWinner(t, runConcurrently(10, func(int) error { return db.UseSMSCode(ctx, c.ID, t0) }))
	})
}

func TestIntents(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		create := func(number string) (*app.Intent, error) {
			in := &app.Intent{Op: app.OpBind, Number: number, UserID: "u" + number, Mobile: "138", Name: "王五", Type: "staff", Department: 3, RebindFrom: 7}
			err := db.CreateIntent(ctx, in)
			clk.Add(time.Second)
			return in, err
		}
		a, err := create("a")
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == 0 || !a.CreatedAt.Equal(t0) {
			t.Fatalf("filled in %+v", a)
		}
		_, err = create("a")
		wantCode(t, err, app.ECONFLICT)
		b, err := create("b")
		if err != nil {
			t.Fatal(err)
		}
		_, err = create("")
		wantCode(t, err, app.EINVALID)

		got, err := db.FindOpenIntent(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "open intent", got, a)
		_, err = db.FindOpenIntent(ctx, "zzz")
		wantCode(t, err, app.ENOTFOUND)

		open, err := db.FindOpenIntents(ctx, t0.Add(time.Hour))
		if err != nil || len(open) != 2 || open[0].ID != a.ID || open[1].ID != b.ID {
			t.Fatalf("FindOpenIntents = %v, %v", open, err)
		}
		open, err = db.FindOpenIntents(ctx, b.CreatedAt) // strictly before
		if err != nil || len(open) != 1 || open[0].ID != a.ID {
			t.Fatalf("FindOpenIntents(before b) = %v, %v", open, err)
		}

		if err := db.CloseIntent(ctx, a.ID, "bound", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		wantCode(t, db.CloseIntent(ctx, a.ID, "repaired", t0.Add(2*time.Minute)), app.ECONFLICT)
		wantCode(t, db.CloseIntent(ctx, 1<<40, "x", t0), app.ENOTFOUND)
		_, err = db.FindOpenIntent(ctx, "a")
		wantCode(t, err, app.ENOTFOUND)
		open, err = db.FindOpenIntents(ctx, t0.Add(time.Hour))
		if err != nil || len(open) != 1 || open[0].ID != b.ID {
			t.Fatalf("FindOpenIntents after close = %v, %v", open, err)
		}
		// The number may have a new open intent now.
		a2, err := create("a")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := db.FindOpenIntent(ctx, "a"); err != nil || got.ID != a2.ID {
			t.Fatalf("FindOpenIntent = %+v, %v", got, err)
		}
	})
}

// TestIntentClaims: a claim is taken by one claimer only while the tries it read hold and no claim
// runs; renewed and released by its owner only; released, it records when the intent settles.
func TestIntentClaims(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		until := t0.Add(30 * time.Second)
		in := &app.Intent{Op: app.OpBind, Number: "n1", UserID: "n1", ClaimOwner: "a", ClaimUntil: &until, Tries: 1, CreatedAt: t0}
		if err := db.CreateIntent(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := db.FindOpenIntent(ctx, "n1")
		if err != nil || got.ClaimOwner != "a" || got.Tries != 1 || !got.ClaimUntil.Equal(until) || got.SettleAt != nil {
			t.Fatalf("read back: %+v %v", got, err)
		}
		wantCode(t, db.ClaimIntent(ctx, in.ID, 1, "b", t0.Add(10*time.Second), t0.Add(40*time.Second)), app.ECONFLICT)
		wantCode(t, db.RenewIntentClaim(ctx, in.ID, "b", t0.Add(time.Minute)), app.ECONFLICT)
		if err := db.RenewIntentClaim(ctx, in.ID, "a", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		// Ran out: the first of two claimers that read tries 1 wins.
		wantOneWinner(t, runConcurrently(8, func(i int) error {
			return db.ClaimIntent(ctx, in.ID, 1, fmt.Sprint("c", i), t0.Add(2*time.Minute), t0.Add(3*time.Minute))
		}))
		got, _ = db.FindOpenIntent(ctx, "n1")
		if got.Tries != 2 || !strings.HasPrefix(got.ClaimOwner, "c") {
			t.Fatalf("after the claim: %+v", got)
		}
		wantCode(t, db.ReleaseIntent(ctx, in.ID, "a", t0.Add(2*time.Minute), time.Time{}), app.ECONFLICT)
		settle := t0.Add(4 * time.Minute)
		if err := db.ReleaseIntent(ctx, in.ID, got.ClaimOwner, t0.Add(150*time.Second), settle); err != nil {
			t.Fatal(err)
		}
		got, _ = db.FindOpenIntent(ctx, "n1")
		if got.ClaimOwner != "" || !got.ClaimUntil.Equal(t0.Add(150*time.Second)) || got.SettleAt == nil || !got.SettleAt.Equal(settle) {
			t.Fatalf("after the release: %+v", got)
		}
		// Released: claimable at once, with the tries read.
		wantCode(t, db.ClaimIntent(ctx, in.ID, 1, "d", t0.Add(151*time.Second), t0.Add(4*time.Minute)), app.ECONFLICT)
		if err := db.ClaimIntent(ctx, in.ID, 2, "d", t0.Add(151*time.Second), t0.Add(4*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := db.CloseIntent(ctx, in.ID, "bound", t0.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		wantCode(t, db.RenewIntentClaim(ctx, in.ID, "d", t0.Add(5*time.Minute)), app.ECONFLICT)
		wantCode(t, db.ClaimIntent(ctx, 1<<40, 0, "x", t0, t0), app.ENOTFOUND)
	})
}

func TestIntentsConcurrent(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		wantOneWinner(t, runConcurrently(20, func(int) error {
			return db.CreateIntent(context.Background(), &app.Intent{Op: app.OpBind, Number: "same"})
		}))
	})
}

// TestIntentsDeadlockVictims: while one transaction closes a number's intent, many requests try
// to open a new one for it and wait on its lock. InnoDB then picks deadlock victims among the
// waiters; the store runs a victim's transaction again, so each waiter gets a plain answer: one
// new intent, and ECONFLICT for the others, never an unavailable database.
func TestIntentsDeadlockVictims(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, _ *clock) {
		ctx := context.Background()
		for round := range 5 {
			number := fmt.Sprint("race", round)
			first := &app.Intent{Op: app.OpBind, Number: number}
			if err := db.CreateIntent(ctx, first); err != nil {
				t.Fatal(err)
			}
			closing := make(chan struct{})
			go func() {
				_ = db.Tx(ctx, func(tx app.Store) error {
					err := tx.CloseIntent(ctx, first.ID, "bound", t0)
					close(closing)
					time.Sleep(200 * time.Millisecond) // the others queue up on the lock
					return err
				})
			}()
			<-closing
			results := runConcurrently(12, func(int) error {
				return db.CreateIntent(ctx, &app.Intent{Op: app.OpBind, Number: number})
			})
			wantOneWinner(t, results)
		}
	})
}
