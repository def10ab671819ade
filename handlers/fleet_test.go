package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// Multi-replica tests (issue 10): two or three replicas on one database without Redis. The
// database alone makes them act as one service: one welcome message per activation, one member
// per bind race, one repair per intent, one delivery per outbox message.

// TestFleetWelcomeOnce: each member's join is reported twice, subscribe to replica A and
// change_contact update_user Status 1 to replica B, at the same time; both replicas deliver the
// outbox at the same time. Each member gets one welcome message.
func TestFleetWelcomeOnce(t *testing.T) {
	fleetKinds(t, func(t *testing.T, mysql bool) {
		f := newFleet(t, fleetSpec{replicas: 2, mysql: mysql})
		const members = 20
		users := make([]string, members)
		for i := range users {
			users[i] = fmt.Sprintf("20210000%02d", i)
			f.seedBinding(users[i], "学生", fmt.Sprintf("138000000%02d", i), app.StatusPending)
		}
		a, b := f.replicas[0], f.replicas[1]
		got := make([]response, 2*members)
		concurrently(2*members, func(i int) {
			u := users[i/2]
			if i%2 == 0 {
				got[i] = a.post(a.event(&app.Inbound{FromUser: u, MsgType: "event", Event: "subscribe", AgentID: "1000002"}))
				return
			}
			got[i] = b.post(b.event(&app.Inbound{Channel: app.ChannelContacts, FromUser: "sys", MsgType: "event",
				Event: "change_contact", ChangeType: "update_user", UserID: u, Status: 1}))
		})
		for i, r := range got {
			if r.status != http.StatusOK {
				t.Fatalf("delivery %d: status %d", i, r.status)
			}
		}
		concurrently(2, func(i int) {
			if _, err := f.replicas[i].svc.DeliverOutbox(context.Background()); err != nil {
				t.Errorf("replica %d outbox: %v", i, err)
			}
		})
		counts := f.messagesTo()
		most := 0
		for _, u := range users {
			if counts[u] != 1 {
				t.Errorf("%s got %d welcome messages", u, counts[u])
			}
			most = max(most, counts[u])
			if b := f.liveBinding(u); b == nil || b.Status != app.StatusActive {
				t.Errorf("binding of %s: %+v", u, b)
			}
		}
		t.Logf("FIGURE welcome: %d activations reported twice each on two replicas: %d messages, at most %d per activation, %d dropped as duplicates",
			members, len(f.sim.Messages()), most, f.sim.Duplicates())
	})
}

// TestFleetBindRace: twenty browsers of one person submit the same number at once, spread over
// three replicas: one member, one binding, one user/create, and no 500.
func TestFleetBindRace(t *testing.T) {
	fleetKinds(t, func(t *testing.T, mysql bool) {
		f := newFleet(t, fleetSpec{replicas: 3, mysql: mysql})
		f.sim.SetLatency(20 * time.Millisecond) // widen the window
		const n, rounds = 20, 3
		seen := statusCount{}
		for round := range rounds {
			number := fmt.Sprintf("202112345%d", round)
			ms := make([]*member, n)
			for i := range ms {
				ms[i] = pin(f.person(number, "张三", "student"), i%3)
			}
			got := make([]response, n)
			concurrently(n, func(i int) {
				got[i] = ms[i].post("/bind/mobile", url.Values{"mobile": {fmt.Sprintf("1380012340%d", round)}})
			})
			created := 0
			for i, r := range got {
				seen[r.status]++
				switch {
				case r.status == http.StatusOK && strings.Contains(r.page(), "注册成功"):
					created++
				case r.status == http.StatusOK && strings.Contains(r.page(), "已绑定"):
				case r.status == http.StatusConflict && strings.Contains(r.page(), "正在为你办理"):
				default:
					t.Errorf("round %d answer %d (replica %d): status %d\n%s", round, i, i%3, r.status, r.body)
				}
			}
			if created != 1 {
				t.Errorf("round %d: %d answers say created", round, created)
			}
			if b := f.liveBinding(number); b == nil {
				t.Errorf("round %d: no binding", round)
			}
		}
		if got := len(f.sim.Members()); got != rounds {
			t.Errorf("WeCom members: %d for %d races", got, rounds)
		}
		if c := f.sim.CallCount("user/create"); c != rounds {
			t.Errorf("user/create calls = %d for %d races", c, rounds)
		}
		if f.sim.CallCount("user/update") != 0 || f.sim.CallCount("batch/invite") != 0 {
			t.Error("losers of a race wrote to WeCom")
		}
		if got := f.tally(); got.LiveBindings != rounds || got.OpenIntents != 0 {
			t.Errorf("stored: %v", got)
		}
		if o := f.orphans(); len(o) != 0 {
			t.Errorf("orphans: %v", o)
		}
		t.Logf("FIGURE race: %d races of %d browsers over 3 replicas: %d members, %d user/create; answers %v (500s: %d)",
			rounds, n, len(f.sim.Members()), f.sim.CallCount("user/create"), seen, seen.fiveHundreds())
	})
}

// seedMessages adds n members to WeCom and queues one message to each; it returns their userids.
func (f *fleet) seedMessages(n int) []string {
	f.t.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("m%03d", i)
		if err := f.sim.AddMember(wecomtest.Member{UserID: users[i], Name: "成员", Mobile: fmt.Sprintf("139000%05d", i), Department: []int64{2}}); err != nil {
			f.t.Fatal(err)
		}
		if err := f.db.EnqueueMessage(context.Background(), app.OutboxMessage{DedupKey: "welcome:" + users[i], ToUser: users[i], Content: "欢迎 " + users[i]}); err != nil {
			f.t.Fatal(err)
		}
	}
	return users
}

// deliverAll runs DeliverOutbox on every replica at once, rounds times.
func (f *fleet) deliverAll(rounds int) {
	for range rounds {
		concurrently(len(f.replicas), func(i int) {
			if _, err := f.replicas[i].svc.DeliverOutbox(context.Background()); err != nil {
				f.t.Logf("replica %d outbox: %v", i, err)
			}
		})
	}
}

// deliverUntil runs DeliverOutbox on every replica at once, each again and again as a background
// loop with a short tick would, until n messages were delivered (or 30 s passed).
func (f *fleet) deliverUntil(n int) {
	deadline := time.Now().Add(30 * time.Second)
	concurrently(len(f.replicas), func(i int) {
		for len(f.sim.Messages()) < n && time.Now().Before(deadline) {
			if _, err := f.replicas[i].svc.DeliverOutbox(context.Background()); err != nil {
				f.t.Logf("replica %d outbox: %v", i, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// wantOneEach fails unless every user got exactly one message.
func (f *fleet) wantOneEach(users []string) {
	f.t.Helper()
	counts := f.messagesTo()
	for _, u := range users {
		if counts[u] != 1 {
			f.t.Errorf("%s got %d messages", u, counts[u])
		}
	}
	n, err := f.db.ClaimMessages(context.Background(), "check", f.clock.Now().Add(time.Hour), f.clock.Now().Add(2*time.Hour), 1000)
	if err != nil || len(n) != 0 {
		f.t.Errorf("messages still due: %d %v", len(n), err)
	}
}

// TestFleetOutboxOnce: two workers deliver one outbox; every message is delivered once, also when
// each send outlives the lease, and when a send is applied but its answer comes after the
// timeout (the resend is dropped by WeCom's duplicate check).
func TestFleetOutboxOnce(t *testing.T) {
	fleetKinds(t, func(t *testing.T, mysql bool) {
		t.Run("SlowSendsOutliveTheLease", func(t *testing.T) {
			f := newFleet(t, fleetSpec{replicas: 2, mysql: mysql})
			for _, r := range f.replicas {
				r.svc.OutboxLease = 150 * time.Millisecond
			}
			users := f.seedMessages(24)
			f.sim.SetLatency(250 * time.Millisecond) // every send takes longer than a lease
			start := time.Now()
			f.deliverUntil(len(users))
			time.Sleep(300 * time.Millisecond) // a second delivery would come now
			f.wantOneEach(users)
			t.Logf("FIGURE outbox slow: %d messages, 2 workers, lease 150ms, sends 250ms: %d delivered, %d resends dropped, in %v",
				len(users), len(f.sim.Messages()), f.sim.Duplicates(), time.Since(start).Round(time.Millisecond))
		})
		t.Run("AppliedButTimedOut", func(t *testing.T) {
			f := newFleet(t, fleetSpec{replicas: 2, mysql: mysql, env: []envOption{withWeComTimeout(300 * time.Millisecond)}})
			users := f.seedMessages(3)
			f.sim.Inject("message/send", 1, wecomtest.Fault{Latency: time.Second}) // applied, answered late
			f.deliverAll(1)
			if len(f.sim.Messages()) != 3 {
				t.Fatalf("delivered %d", len(f.sim.Messages()))
			}
			for range 4 { // the retries of the unknown one, 10 s, 20 s, ... later
				f.clock.Advance(time.Minute)
				f.deliverAll(1)
			}
			f.wantOneEach(users)
			if d := f.sim.Duplicates(); d != 1 {
				t.Errorf("%d resends dropped by the duplicate check, want 1", d)
			}
			t.Logf("FIGURE outbox unknown outcome: %d message/send calls for 3 messages, %d delivered, %d dropped as duplicates",
				f.sim.CallCount("message/send"), len(f.sim.Messages()), f.sim.Duplicates())
		})
	})
}

// TestFleetOutboxDatabaseBlink: the database goes away while a send is in flight and stays away
// longer than the worker retries the record. When it is back, the other worker takes the message
// over (the lease ran out) and sends it again: WeCom's duplicate check drops that resend. The
// message is delivered once and recorded sent (the first worker's record is kept for later and
// does no harm).
func TestFleetOutboxDatabaseBlink(t *testing.T) {
	f := newFleet(t, fleetSpec{replicas: 2, proxy: true, callTimeout: 500 * time.Millisecond})
	if f.proxy == nil {
		t.Skip("needs MariaDB")
	}
	for _, r := range f.replicas {
		r.svc.OutboxLease = time.Second
	}
	users := f.seedMessages(1)
	f.sim.Inject("message/send", 1, wecomtest.Fault{Latency: 300 * time.Millisecond})
	go func() {
		time.Sleep(150 * time.Millisecond)
		f.proxy.Cut()
		time.Sleep(4 * time.Second)
		f.proxy.Restore()
	}()
	if n, err := f.replicas[0].svc.DeliverOutbox(context.Background()); n != 1 {
		t.Fatalf("replica A sent %d: %v", n, err)
	}
	time.Sleep(4 * time.Second) // the database is back, A's lease has run out
	f.clock.Advance(time.Second)
	if _, err := f.replicas[1].svc.DeliverOutbox(context.Background()); err != nil {
		t.Fatalf("replica B: %v", err)
	}
	if _, err := f.replicas[0].svc.DeliverOutbox(context.Background()); err != nil {
		t.Fatalf("replica A: %v", err)
	}
	f.wantOneEach(users)
	if c, d := f.sim.CallCount("message/send"), f.sim.Duplicates(); c != 2 || d != 1 {
		t.Errorf("message/send calls %d, dropped as duplicates %d: want B's resend dropped", c, d)
	}
	t.Logf("FIGURE outbox blink: database cut 4s during a send: %d message/send calls, %d delivered, %d dropped as duplicates",
		f.sim.CallCount("message/send"), len(f.sim.Messages()), f.sim.Duplicates())
}

// TestFleetRepairOnce: a 换绑 left open by a dead replica after it released the old member is
// repaired by two replicas at once: one user/create, one invitation (by that create).
func TestFleetRepairOnce(t *testing.T) {
	fleetKinds(t, func(t *testing.T, mysql bool) {
		f := newFleet(t, fleetSpec{replicas: 2, mysql: mysql})
		ctx := context.Background()
		old := f.seedBinding(oldNumber, "张三", heldMobile, app.StatusActive)
		deadIntent(f, app.OpRebind, newNumber, heldMobile, old.ID, -time.Second)
		deleteMember(t, f, oldNumber) // the dead replica's user/delete went through
		f.clock.Advance(time.Minute)
		counts := make([]int, 2)
		concurrently(2, func(i int) {
			for range 3 {
				n, err := f.replicas[i].svc.RepairIntents(ctx)
				if err != nil {
					t.Errorf("replica %d: %v", i, err)
				}
				counts[i] += n
			}
		})
		if counts[0]+counts[1] != 1 {
			t.Errorf("repaired %v times", counts)
		}
		if c, u, b := f.sim.CallCount("user/create"), f.sim.CallCount("user/update"), f.sim.CallCount("batch/invite"); c != 1 || u != 0 || b != 0 {
			t.Errorf("user/create %d, user/update %d, batch/invite %d", c, u, b)
		}
		if inv := f.sim.Invites(); len(inv) != 1 {
			t.Errorf("invitations: %+v", inv)
		}
		if b := f.liveBinding(newNumber); b == nil || b.Status != app.StatusPending {
			t.Errorf("new binding: %+v", b)
		}
		if b := f.binding(old.ID); b.Status != app.StatusRebound || b.ReboundTo == 0 {
			t.Errorf("old binding: %+v", b)
		}
		t.Logf("FIGURE repair: one stale 换绑 intent, 2 replicas x 3 repair runs: repaired %d time(s), user/create %d, invitations %d",
			counts[0]+counts[1], f.sim.CallCount("user/create"), len(f.sim.Invites()))
	})
}

// deadIntent stores an open intent as a replica that died while working on it leaves it: its
// claim runs out after claimLeft (negative: ran out already).
func deadIntent(f *fleet, op app.IntentOp, number, mobile string, from int64, claimLeft time.Duration) *app.Intent {
	f.t.Helper()
	now := f.clock.Now()
	until := now.Add(claimLeft)
	in := &app.Intent{Op: op, Number: number, UserID: number, Mobile: mobile, Name: "张三", Type: "student",
		Department: 2, RebindFrom: from, CreatedAt: now.Add(-time.Second), ClaimOwner: "dead", ClaimUntil: &until, Tries: 1}
	if err := f.db.CreateIntent(context.Background(), in); err != nil {
		f.t.Fatal(err)
	}
	return in
}

// deleteMember deletes a member directly in the simulator (as a write that went through).
func deleteMember(t *testing.T, f *fleet, userID string) {
	t.Helper()
	c := f.replicas[0].svc.WeCom
	if err := c.DeleteUser(context.Background(), userID); err != nil {
		t.Fatal(err)
	}
}

// TestFleetKillMidBind: replica A dies during user/create, after WeCom applied it (its request
// never finishes, its claim is left behind). The member's retry on replica B at once is told how
// long to wait; B's background repair stores the binding within one repair cycle after A's claim
// ran out; the retry then shows it. One user/create, no other write.
func TestFleetKillMidBind(t *testing.T) {
	fleetKinds(t, func(t *testing.T, mysql bool) {
		f := newFleet(t, fleetSpec{replicas: 2, mysql: mysql, env: []envOption{withWeComTimeout(2 * time.Second)}})
		m := f.person("2021123456", "张三", "student")
		onA := &member{e: m.e, c: m.c, last: m.last}                // the same browser, on a second tab
		f.sim.Inject("user/create", 1, wecomtest.Fault{Drop: true}) // applied; A hangs until it "dies"
		dead := make(chan response, 1)
		go func() { dead <- pin(onA, 0).post("/bind/mobile", url.Values{"mobile": {"13800001234"}}) }()
		waitFor(t, "the create to reach WeCom", func() bool { _, ok := f.sim.Member("2021123456"); return ok })

		r := pin(m, 1).post("/bind/mobile", url.Values{"mobile": {"13800001234"}})
		mustStatus(t, "retry while A holds the claim", r, http.StatusConflict)
		mustContain(t, "retry while A holds the claim", r.page(), "正在为你办理绑定，请约 30 秒后")

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go f.replicas[1].svc.RunBackground(ctx, 20*time.Millisecond)
		f.clock.Advance(31 * time.Second) // A's claim has run out
		start := time.Now()
		waitFor(t, "B's repair", func() bool { return f.liveBinding("2021123456") != nil })
		t.Logf("FIGURE kill mid-bind: binding stored by replica B %v after A's claim ran out (repair every 30 s: within one cycle)",
			time.Since(start).Round(time.Millisecond))
		r = pin(m, 1).post("/bind/mobile", url.Values{"mobile": {"13800001234"}})
		mustStatus(t, "retry after the repair", r, http.StatusOK)
		mustContain(t, "retry after the repair", r.page(), "已绑定")
		<-dead // A's request ends when its WeCom call times out; it finds the binding stored
		if w := f.writeCalls(); w != 1 {
			t.Errorf("%d WeCom writes, want the one user/create", w)
		}
		if got := f.tally(); got.LiveBindings != 1 || got.OpenIntents != 0 {
			t.Errorf("stored: %v", got)
		}
	})
}

// TestFleetRetryAfterKillDuringRebind: a replica dies during the user/create of a 换绑, after
// WeCom applied it. The person retries at once on another replica: told the wait; after the
// claim ran out the retry reads WeCom and completes the 换绑 without a second user/create, an
// update or a second invitation.
func TestFleetRetryAfterKillDuringRebind(t *testing.T) {
	fleetKinds(t, func(t *testing.T, mysql bool) {
		f := newFleet(t, fleetSpec{replicas: 2, mysql: mysql})
		ctx := context.Background()
		old := f.seedBinding(oldNumber, "张三", heldMobile, app.StatusActive)
		deleteMember(t, f, oldNumber)
		if _, err := f.db.UpdateBinding(ctx, old.ID, app.BindingUpdate{Status: app.Ptr(app.StatusRebound), Reason: app.Ptr("换绑至 " + newNumber)},
			app.Event{Kind: app.EventRebound, Actor: app.ActorMember}); err != nil {
			t.Fatal(err)
		}
		deadIntent(f, app.OpRebind, newNumber, heldMobile, old.ID, 30*time.Second)
		if err := f.sim.AddMember(wecomtest.Member{UserID: newNumber, Name: "张三", Mobile: heldMobile, Department: []int64{2}, Status: 4, ToInvite: true}); err != nil {
			t.Fatal(err)
		}
		p := &app.Person{Number: newNumber, Name: "张三", Type: "student", UserID: newNumber, Department: 2, Label: "学生"}
		b := f.replicas[1].svc
		calls, writes := len(f.sim.Calls()), f.writeCalls()
		fl := app.Flow{ID: "flow-of-the-retry", Expires: f.clock.Now().Add(15 * time.Minute)}
		_, err := b.Rebind(ctx, fl, p, old.ID, heldMobile, "")
		if app.ErrorCode(err) != app.EUNAVAILABLE || !strings.Contains(app.ErrorMessage(err), "请约 30 秒后") {
			t.Fatalf("retry at once: %v", err)
		}
		if n := len(f.sim.Calls()) - calls; n != 0 {
			t.Fatalf("%d WeCom calls while the dead replica's claim runs", n)
		}
		f.clock.Advance(31 * time.Second)
		res, err := b.Rebind(ctx, fl, p, old.ID, heldMobile, "")
		if err != nil || res.Binding == nil || res.Binding.Status != app.StatusPending {
			t.Fatalf("retry after the claim ran out: %+v %v", res, err)
		}
		if w := f.writeCalls() - writes; w != 0 {
			t.Errorf("%d WeCom writes: the member created by the dead replica must be adopted as it is", w)
		}
		if nb := f.liveBinding(newNumber); nb == nil {
			t.Error("no new binding")
		}
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
