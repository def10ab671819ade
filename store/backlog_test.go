package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/store"
)

// TestBacklog: sent and given-up messages and closed intents are not counted; a leased message is
// still pending; the oldest times are those of the oldest unfinished rows.
func TestBacklog(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *store.DB, clk *clock) {
		ctx := context.Background()
		b, err := db.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "empty backlog", b, app.Backlog{})

		for _, key := range []string{"sent", "pending", "given-up", "leased"} {
			if err := db.EnqueueMessage(ctx, app.OutboxMessage{DedupKey: key, ToUser: "u", Content: key}); err != nil {
				t.Fatal(err)
			}
			clk.Add(time.Minute)
		}
		msgs, err := db.ClaimMessages(ctx, "w", clk.Now(), clk.Now().Add(time.Minute), 10)
		if err != nil || len(msgs) != 4 {
			t.Fatalf("ClaimMessages = %d, %v", len(msgs), err)
		}
		ids := map[string]int64{}
		for _, m := range msgs {
			ids[m.DedupKey] = m.ID
		}
		if err := db.MarkMessageSent(ctx, ids["sent"], clk.Now()); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkMessageFailed(ctx, ids["pending"], "w", "busy", clk.Now().Add(time.Minute), time.Time{}); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkMessageFailed(ctx, ids["given-up"], "w", "gone", time.Time{}, time.Time{}); err != nil {
			t.Fatal(err)
		}

		var intents []*app.Intent
		for _, number := range []string{"closed", "open-1", "open-2"} {
			in := &app.Intent{Op: app.OpBind, Number: number, UserID: number}
			if err := db.CreateIntent(ctx, in); err != nil {
				t.Fatal(err)
			}
			intents = append(intents, in)
			clk.Add(time.Second)
		}
		if err := db.CloseIntent(ctx, intents[0].ID, "bound", clk.Now()); err != nil {
			t.Fatal(err)
		}

		b, err = db.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "backlog", b, app.Backlog{
			OutboxPending: 2, OutboxOldest: t0.Add(time.Minute), // "pending" (and "leased")
			IntentsOpen: 2, IntentOldest: intents[1].CreatedAt,
		})
	})
}
