package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

func TestPurgeInboundSeen(t *testing.T) {
	f := newFixture(t, 0)
	now := f.clock.now()
	for key, at := range map[string]time.Time{"old": now.Add(-25 * time.Hour), "recent": now.Add(-time.Hour)} {
		if _, err := f.db.MarkInboundSeen(f.ctx, key, at); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.svc.PurgeInboundSeen(f.ctx); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if first, err := f.db.MarkInboundSeen(f.ctx, "old", now); err != nil || !first {
		t.Fatalf("old record kept: %v %v", first, err)
	}
	if first, err := f.db.MarkInboundSeen(f.ctx, "recent", now); err != nil || first {
		t.Fatalf("recent record purged: %v %v", first, err)
	}
	if n, err := f.svc.PurgeInboundSeen(f.ctx); err != nil || n != 0 {
		t.Fatalf("second purge: %d %v", n, err)
	}
}

// TestRunBackground: one loop delivers the outbox, repairs stale intents and purges old de-dup
// records, until its context ends.
func TestRunBackground(t *testing.T) {
	f := newFixture(t, 0)
	f.svc.Now = nil // the loop runs on the real clock
	now := time.Now()
	if err := f.db.EnqueueMessage(f.ctx, app.OutboxMessage{DedupKey: "welcome:1", ToUser: "2021123456", Content: "欢迎", NextAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := f.sim.AddMember(wecomtest.Member{UserID: "2021123456", Name: "张三", Mobile: "13800001234", Department: []int64{2}, Status: 4}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.CreateIntent(f.ctx, &app.Intent{Op: app.OpBind, Number: "2021123456", UserID: "2021123456", Mobile: "13800001234",
		Name: "张三", Type: "student", Department: 2, CreatedAt: now.Add(-3 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.MarkInboundSeen(f.ctx, "old", now.Add(-25*time.Hour)); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.svc.RunBackground(ctx, 10*time.Millisecond)
	}()
	// Marking the old key again succeeds only once its record was purged (and then records it
	// afresh, which a later purge leaves alone).
	purged := false
	deadline := time.Now().Add(5 * time.Second)
	for {
		if !purged {
			first, err := f.db.MarkInboundSeen(f.ctx, "old", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			purged = first
		}
		if purged && len(f.sim.Messages()) > 0 && f.live("2021123456") != nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("after 5 s: purged %v, %d messages sent, binding %+v", purged, len(f.sim.Messages()), f.live("2021123456"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunBackground did not return after its context ended")
	}
	if msgs := f.sim.Messages(); len(msgs) != 1 || msgs[0].ToUser != "2021123456" || msgs[0].Content != "欢迎" {
		t.Fatalf("messages %+v", msgs)
	}
}
