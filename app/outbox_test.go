package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// queueWelcome adds member userID to WeCom and queues one message to it.
func (f *fixture) queueWelcome(userID string) {
	f.t.Helper()
	if err := f.sim.AddMember(wecomtest.Member{UserID: userID, Name: "张三", Mobile: "13800001234", Department: []int64{2}, Status: 1}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.EnqueueMessage(f.ctx, app.OutboxMessage{DedupKey: "welcome:" + userID, ToUser: userID, Content: "欢迎"}); err != nil {
		f.t.Fatal(err)
	}
}

// due counts the outbox messages that could be claimed an hour from now.
func (f *fixture) due() int {
	f.t.Helper()
	t := f.clock.now().Add(time.Hour)
	ms, err := f.db.ClaimMessages(f.ctx, "probe", t, t, 100)
	if err != nil {
		f.t.Fatal(err)
	}
	return len(ms)
}

// TestOutboxUnknownOutcome: a send whose outcome is unknown is resent with WeCom's duplicate
// check (WeCom drops the resend of a message it delivered), and only within that check's
// window: after that it is given up rather than risk a second delivery.
func TestOutboxUnknownOutcome(t *testing.T) {
	f := newFixture(t, shortTimeout)
	f.queueWelcome("u1")
	f.sim.Inject("message/send", 100, wecomtest.Fault{Drop: true}) // delivered, never answered
	sends := 0
	for range 30 {
		if _, err := f.svc.DeliverOutbox(f.ctx); err != nil {
			t.Fatal(err)
		}
		sends = f.sim.CallCount("message/send")
		f.clock.advance(31 * time.Minute) // past the longest backoff
	}
	if got := len(f.sim.Messages()); got != 1 {
		t.Fatalf("delivered %d times", got)
	}
	// First attempt at 0, then one every 31 minutes of the test clock while inside 4 h - 10 min.
	if sends < 5 || sends > 8 {
		t.Fatalf("%d sends: want resends only within the 4 h duplicate check window", sends)
	}
	if f.due() != 0 {
		t.Fatal("the message is still due after the window")
	}
	if d := f.sim.Duplicates(); d != sends-1 {
		t.Fatalf("%d resends dropped by WeCom, want %d", d, sends-1)
	}
}

// failingMarks is a store whose MarkMessageSent fails as the database would while it is away.
type failingMarks struct {
	app.Store
	fail int // calls left to fail
	seen int
}

func (s *failingMarks) MarkMessageSent(ctx context.Context, id int64, at time.Time) error {
	s.seen++
	if s.fail > 0 {
		s.fail--
		return app.Wrap(app.EUNAVAILABLE, errors.New("connection refused"), "系统繁忙")
	}
	return s.Store.MarkMessageSent(ctx, id, at)
}

// TestOutboxRecordRetried: a message sent while the database does not answer is recorded sent
// later, by retrying the record, never the send.
func TestOutboxRecordRetried(t *testing.T) {
	f := newFixture(t, 0)
	fm := &failingMarks{Store: f.db, fail: 6}
	f.svc.Store = fm
	f.queueWelcome("u1")
	if n, err := f.svc.DeliverOutbox(f.ctx); err != nil || n != 1 {
		t.Fatalf("first round: %d %v", n, err)
	}
	if fm.seen != 4 {
		t.Fatalf("record tried %d times, want 4", fm.seen)
	}
	f.clock.advance(2 * time.Minute) // the lease has run out: the message is claimable again
	for range 3 {
		if _, err := f.svc.DeliverOutbox(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.sim.CallCount("message/send"); n != 1 {
		t.Fatalf("%d sends: the send must not be retried", n)
	}
	if f.due() != 0 {
		t.Fatal("the message is still due: not recorded sent")
	}
}
