package app_test

import (
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
)

// TestBacklog: the ages are measured on the service's clock from the oldest unfinished rows.
func TestBacklog(t *testing.T) {
	f := newFixture(t, 0)
	b, err := f.svc.Backlog(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.OutboxPending != 0 || b.IntentsOpen != 0 || b.OutboxAge() != 0 || b.IntentAge() != 0 || !b.At.Equal(f.clock.now()) {
		t.Fatalf("empty backlog = %+v", b)
	}

	if err := f.db.EnqueueMessage(f.ctx, app.OutboxMessage{DedupKey: "welcome:1", ToUser: "u1", Content: "欢迎"}); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(time.Minute)
	if err := f.db.CreateIntent(f.ctx, &app.Intent{Op: app.OpBind, Number: "20250001", UserID: "20250001"}); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(10 * time.Minute)

	b, err = f.svc.Backlog(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.OutboxPending != 1 || b.OutboxAge() != 11*time.Minute {
		t.Errorf("outbox: %d pending, oldest %v old", b.OutboxPending, b.OutboxAge())
	}
	if b.IntentsOpen != 1 || b.IntentAge() != 10*time.Minute {
		t.Errorf("intents: %d open, oldest %v old", b.IntentsOpen, b.IntentAge())
	}

	if _, err := (&app.Service{}).Backlog(f.ctx); err == nil {
		t.Error("a service without a store read a backlog")
	}
}
